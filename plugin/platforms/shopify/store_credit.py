"""Store credit in a Shopify shop: credit a customer's account, find that credit again, debit it back.

Admin API 2026-10 takes no idempotency key or note on `storeCreditAccountCredit` (notes arrive in 2027-01), so a
credit is recognised by what we choose for it: its amount, currency and expiry instant, which the caller makes
unique among the member's store-credit redemptions. See docs/store-credit.md and decision 0019.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

CREDIT = """mutation LoyaltyStoreCreditCredit($id: ID!, $creditInput: StoreCreditAccountCreditInput!) {
  storeCreditAccountCredit(id: $id, creditInput: $creditInput) {
    storeCreditAccountTransaction {
      id
      amount { amount currencyCode }
      balanceAfterTransaction { amount currencyCode }
      expiresAt
      remainingAmount { amount currencyCode }
    }
    userErrors { field code message }
  }
}"""

DEBIT = """mutation LoyaltyStoreCreditDebit($id: ID!, $debitInput: StoreCreditAccountDebitInput!) {
  storeCreditAccountDebit(id: $id, debitInput: $debitInput) {
    storeCreditAccountTransaction {
      id
      amount { amount currencyCode }
      balanceAfterTransaction { amount currencyCode }
    }
    userErrors { field code message }
  }
}"""

# The customer's accounts and their latest transactions, newest first. `query` narrows them (the search syntax's
# expires_at comparators); what comes back is matched exactly here, so a looser filter is never trusted.
ACCOUNTS = """query LoyaltyStoreCreditAccounts($id: ID!, $query: String, $first: Int!) {
  customer(id: $id) {
    storeCreditAccounts(first: 10) {
      nodes {
        id
        balance { amount currencyCode }
        transactions(first: $first, reverse: true, query: $query) {
          nodes {
            __typename
            amount { amount currencyCode }
            balanceAfterTransaction { amount currencyCode }
            createdAt
            origin { __typename }
            ... on StoreCreditAccountCreditTransaction { id expiresAt remainingAmount { amount currencyCode } }
            ... on StoreCreditAccountDebitTransaction { id }
          }
        }
      }
    }
  }
}"""
RECENT_TRANSACTIONS = 50  # a debit being looked for was made minutes ago: it is among the latest


@dataclass(frozen=True)
class CreditRequest:
    customer_id: int
    amount: Decimal
    currency: str
    expires_at: datetime  # whole seconds, unique for this member: the credit's fingerprint


@dataclass(frozen=True)
class Credit:
    transaction_id: str
    amount: Decimal
    remaining: Decimal  # what is still unspent of it
    balance_after: Decimal | None  # the account's balance right after it (None when found by a look-up)
    balance_now: Decimal | None  # the account's balance when looked up (None when just made)

    @property
    def spent(self) -> Decimal:
        return self.amount - self.remaining


class InsufficientFunds(AdminAPIError):
    """The account no longer holds enough to debit: the customer spent the credit."""


def _once(client: AdminClient) -> AdminClient:
    """The client, trying only once: the client retries a 5xx or a timeout, which after a credit or a debit that
    the shop applied would apply it twice. The caller looks in the account before it tries again."""
    return dataclasses.replace(client, max_attempts=1)


def customer_gid(customer_id: int) -> str:
    return f"gid://shopify/Customer/{customer_id}"


def credit(client: AdminClient, request: CreditRequest) -> Credit:
    """Add the credit to the customer's account in `currency` (Shopify makes the account if needed)."""
    variables = {
        "id": customer_gid(request.customer_id),
        "creditInput": {
            "creditAmount": {"amount": str(request.amount), "currencyCode": request.currency},
            "expiresAt": _iso(request.expires_at),
            "notify": False,  # the widget shows the new balance; a separate email per redemption is noise
        },
    }
    result = _once(client).graphql(CREDIT, variables).get("storeCreditAccountCredit") or {}
    made = _transaction_or_raise(result)
    return Credit(
        made["id"],
        _amount(made["amount"]),
        _amount(made.get("remainingAmount") or made["amount"]),
        _amount(made["balanceAfterTransaction"]),
        None,
    )


def find_credit(client: AdminClient, request: CreditRequest) -> Credit | None:
    """The credit this request made, if the shop holds it: same amount, currency and expiry instant."""
    expiry = request.expires_at.astimezone(UTC)
    start, end = _iso(expiry - timedelta(seconds=1)), _iso(expiry + timedelta(seconds=1))
    window = f"expires_at:>='{start}' AND expires_at:<='{end}'"
    account = _account(client, request.customer_id, request.currency, window, RECENT_TRANSACTIONS)
    if account is None:
        return None
    for node in account["transactions"]["nodes"]:
        if node.get("__typename") != "StoreCreditAccountCreditTransaction" or not node.get("expiresAt"):
            continue
        if _instant(node["expiresAt"]) == expiry and _amount(node["amount"]) == request.amount:
            remaining = _amount(node.get("remainingAmount") or node["amount"])
            return Credit(node["id"], request.amount, remaining, None, _amount(account["balance"]))
    return None


def find_debit(client: AdminClient, customer_id: int, currency: str, amount: Decimal, since: datetime) -> str | None:
    """A debit we made of `amount` since `since` (one made by an app or staff, not spent at checkout), if any."""
    account = _account(client, customer_id, currency, None, RECENT_TRANSACTIONS)
    for node in (account or {}).get("transactions", {}).get("nodes", []):
        if node.get("__typename") != "StoreCreditAccountDebitTransaction" or node.get("origin"):
            continue  # a debit with an origin was spent on an order
        if abs(_amount(node["amount"])) == amount and _instant(node["createdAt"]) >= since:
            return node["id"]
    return None


def debit(client: AdminClient, customer_id: int, currency: str, amount: Decimal) -> Decimal:
    """Take `amount` back from the customer's account; returns the balance after. InsufficientFunds if spent."""
    variables = {
        "id": customer_gid(customer_id),
        "debitInput": {"debitAmount": {"amount": str(amount), "currencyCode": currency}},
    }
    result = _once(client).graphql(DEBIT, variables).get("storeCreditAccountDebit") or {}
    errors = result.get("userErrors") or []
    if any(e.get("code") in ("INSUFFICIENT_FUNDS", "ACCOUNT_NOT_FOUND") for e in errors):
        raise InsufficientFunds(_describe(errors))
    return _amount(_transaction_or_raise(result)["balanceAfterTransaction"])


def balance(client: AdminClient, customer_id: int, currency: str) -> Decimal:
    """The customer's store-credit balance in `currency` now (zero without an account)."""
    account = _account(client, customer_id, currency, None, 1)
    return _amount(account["balance"]) if account else Decimal("0")


def _account(client: AdminClient, customer_id: int, currency: str, query: str | None, first: int) -> dict | None:
    variables = {"id": customer_gid(customer_id), "query": query, "first": first}
    customer = client.graphql(ACCOUNTS, variables).get("customer")
    if not customer:
        raise AdminAPIError(f"customer {customer_id} does not exist in the shop")
    for account in (customer.get("storeCreditAccounts") or {}).get("nodes") or []:
        if (account.get("balance") or {}).get("currencyCode") == currency:
            return account
    return None


def _transaction_or_raise(result: dict[str, Any]) -> dict[str, Any]:
    errors = result.get("userErrors") or []
    if errors:
        raise AdminAPIError(_describe(errors))
    made = result.get("storeCreditAccountTransaction")
    if not made or not made.get("id"):
        raise AdminAPIError("the shop returned no store-credit transaction")
    return made


def _describe(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('field')}: {e.get('message')} ({e.get('code')})" for e in errors)


def _amount(money: dict[str, Any]) -> Decimal:
    return Decimal(str(money["amount"]))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
