"""A small fake Shopify Admin API for the demo and end-to-end tests: discount codes and store-credit accounts,
with injectable failures.

Run: `python -m plugin.devtools.fake_shop --port 5001 [--fail-rate 0.2]`, and point SHOPIFY_API_BASE_URL at it.
It answers only the GraphQL operations the app uses, recognised by name. State lives in memory.
"""

from __future__ import annotations

import argparse
import itertools
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, jsonify, request

DEMO_ITEMS = (
    "gid://shopify/Collection/1",
    "gid://shopify/Collection/2",
    "gid://shopify/Product/1",
    "gid://shopify/Product/2",
    "gid://shopify/ProductVariant/11",
    "gid://shopify/ProductVariant/12",
)


@dataclass
class FakeShopState:
    token: str | None = None  # when set, calls with another X-Shopify-Access-Token get 401
    fail_rate: float = 0.0  # share of calls that fail (a 500, a 429, a THROTTLED answer, or a slow answer)
    slow_seconds: float = 2.0  # how long a "slow" answer takes (longer than the client's read timeout)
    seed: int = 7
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    creates: dict[str, int] = field(default_factory=dict)  # successful creations per code, to prove "once"
    metafields: dict[str, str] = field(default_factory=dict)  # "ownerId namespace.key" -> value
    metafield_writes: int = 0
    orders: list[dict[str, Any]] = field(default_factory=list)  # GraphQL Order nodes the orders query serves
    throttle_orders: int = 0  # answer this many orders queries THROTTLED before serving them
    order_pages: int = 0  # orders pages served
    # Catalogue ids the nodes query knows (collections, products, variants), for rewards that apply to items.
    items: set[str] = field(default_factory=lambda: set(DEMO_ITEMS))
    # Faults on the next calls, in this order, for tests that need them exactly (fail_rate is random):
    throttle_next: int = 0  # answer THROTTLED without doing anything
    error_next: int = 0  # answer 500 without doing anything
    lose_next_replies: int = 0  # do a mutation, then answer 504 as if the reply were lost on the way
    prices: dict[str, str] = field(default_factory=lambda: {"gid://shopify/ProductVariant/11": "12.50"})
    customer_tags: dict[str, list[str]] = field(default_factory=dict)  # customer gid -> tags (tagsAdd/tagsRemove)
    tier_errors_next: int = 0  # answer this many tier pushes (LoyaltyTier) 500, doing nothing
    # Store-credit accounts: customer gid -> currency -> {"id", "transactions": [...]}, newest transaction last.
    # A credit keeps what is left of it ("remaining"); debits spend the soonest-expiring credit first, as Shopify's.
    store_credit: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    credits_made: int = 0  # store-credit credit transactions created, to prove "once"
    debits_made: int = 0  # debits made through the API (not spent at checkout)
    calls: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # injected failures by kind, so a run can report them
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)


def create_fake_shop(state: FakeShopState | None = None) -> Flask:
    state = state or FakeShopState()
    app = Flask(__name__)
    app.extensions["fake_shop"] = state

    @app.post("/admin/api/<version>/graphql.json")
    def graphql(version: str):
        with state.lock:
            state.calls += 1  # every call, refused ones too
        if state.token and request.headers.get("X-Shopify-Access-Token") != state.token:
            return jsonify({"errors": "[API] Invalid API key or access token"}), 401
        with state.lock:
            roll = state.random.random()
            failure = state.random.choice(("500", "429", "throttled", "slow")) if roll < state.fail_rate else None
            body_peek = request.get_json(silent=True) or {}
            if state.tier_errors_next > 0 and "LoyaltyTier" in body_peek.get("query", ""):
                state.tier_errors_next, failure = state.tier_errors_next - 1, "500"
            elif state.throttle_next > 0:
                state.throttle_next, failure = state.throttle_next - 1, "throttled"
            elif state.error_next > 0:
                state.error_next, failure = state.error_next - 1, "500"
            if failure:
                state.failures[failure] = state.failures.get(failure, 0) + 1
        if failure == "500":
            return "Internal Server Error", 500
        if failure == "429":
            return jsonify({"errors": "Exceeded 2 calls per second for api client."}), 429, {"Retry-After": "0.2"}
        if failure == "throttled":
            return jsonify(_throttled())
        body = request.get_json(silent=True) or {}
        answer = _answer(state, body.get("query", ""), body.get("variables") or {})
        with state.lock:
            lost = state.lose_next_replies > 0 and body.get("query", "").lstrip().startswith("mutation")
            if lost:
                state.lose_next_replies -= 1
        if lost:
            return "Gateway Timeout", 504  # the mutation is done; the caller never hears so
        if failure == "slow":
            time.sleep(state.slow_seconds)  # the work is done, but the answer arrives too late
        return jsonify(answer)

    @app.get("/_fake/codes")
    def codes():
        with state.lock:
            return jsonify(
                {
                    "codes": list(state.codes.values()),
                    "creates": state.creates,
                    "calls": state.calls,
                    "failures": state.failures,
                }
            )

    @app.get("/_fake/metafields")
    def metafields():
        with state.lock:
            return jsonify({"metafields": state.metafields, "writes": state.metafield_writes})

    @app.get("/_fake/customers")
    def customers():
        with state.lock:
            return jsonify({"tags": state.customer_tags, "metafields": state.metafields})

    @app.post("/_fake/codes/<code>/use")
    def use(code: str):
        with state.lock:
            state.codes[code]["used"] += 1
            return jsonify(state.codes[code])

    @app.get("/_fake/store-credit")
    def store_credit_accounts():
        with state.lock:
            accounts = {
                owner: {currency: _account_node(account, currency) for currency, account in by_currency.items()}
                for owner, by_currency in state.store_credit.items()
            }
            return jsonify({"accounts": accounts, "credits": state.credits_made, "debits": state.debits_made})

    @app.post("/_fake/store-credit/<int:customer_id>/spend")
    def spend_store_credit(customer_id: int):
        """The shopper spends store credit at checkout: a debit with an order as its origin."""
        wanted = request.get_json(force=True)
        with state.lock:
            result = _debit(state, f"gid://shopify/Customer/{customer_id}", wanted, origin="OrderTransaction")
        return jsonify(result)

    @app.post("/_fake/config")
    def configure():
        changes = request.get_json(force=True)
        with state.lock:
            for key in ("fail_rate", "slow_seconds", "token", "tier_errors_next"):
                if key in changes:
                    setattr(state, key, changes[key])
        return jsonify({"fail_rate": state.fail_rate, "slow_seconds": state.slow_seconds})

    return app


def _throttled() -> dict[str, Any]:
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 10,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
            }
        },
    }


def _answer(state: FakeShopState, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    if "discountCodeBasicCreate" in query:
        return {"data": {"discountCodeBasicCreate": _create(state, variables["basicCodeDiscount"], "basic")}}
    if "discountCodeFreeShippingCreate" in query:
        created = _create(state, variables["freeShippingCodeDiscount"], "free_shipping")
        return {"data": {"discountCodeFreeShippingCreate": created}}
    if "codeDiscountNodeByCode" in query:
        with state.lock:
            found = state.codes.get(variables["code"])
        node = None
        if found and not found["deleted"]:
            node = {
                "id": found["id"],
                "codeDiscount": {"__typename": "DiscountCodeBasic", "asyncUsageCount": found["used"]},
            }
        return {"data": {"codeDiscountNodeByCode": node}}
    if "LoyaltyVariantPrice" in query:
        with state.lock:
            gid = variables["id"]
            known = gid in state.items and gid in state.prices
            node = {"id": gid, "price": state.prices[gid]} if known else None
        return {"data": {"productVariant": node}}
    if "LoyaltyRewardItems" in query:
        with state.lock:
            known = set(state.items)
        nodes = [{"id": gid, "__typename": gid.split("/")[3]} if gid in known else None for gid in variables["ids"]]
        return {"data": {"nodes": nodes}}
    if "LoyaltyStoreCreditCredit" in query:
        with state.lock:
            return {"data": {"storeCreditAccountCredit": _credit(state, variables["id"], variables["creditInput"])}}
    if "LoyaltyStoreCreditDebit" in query:
        with state.lock:
            debit_input = variables["debitInput"]["debitAmount"]
            return {"data": {"storeCreditAccountDebit": _debit(state, variables["id"], debit_input, origin=None)}}
    if "LoyaltyStoreCreditAccounts" in query:
        with state.lock:
            return {"data": {"customer": _customer_accounts(state, variables)}}
    if query.replace(" ", "") == "{shop{id}}":  # the uninstall confirmation: any accepted token may ask
        return {"data": {"shop": {"id": "gid://shopify/Shop/1"}}}
    if "LoyaltyOrdersUpdatedSince" in query:
        return _orders_page(state, variables)
    if "LoyaltyTier" in query:
        return _tier(state, query, variables)
    if "metafieldsSet" in query:
        with state.lock:
            for metafield in variables["metafields"]:
                state.metafields[f"{metafield['ownerId']} {metafield['namespace']}.{metafield['key']}"] = metafield[
                    "value"
                ]
                state.metafield_writes += 1
        return {"data": {"metafieldsSet": {"metafields": [{"id": "gid://shopify/Metafield/1"}], "userErrors": []}}}
    if "discountCodeDelete" in query:
        with state.lock:
            for found in state.codes.values():
                if found["id"] == variables["id"] and not found["deleted"]:
                    found["deleted"] = True
                    return {"data": {"discountCodeDelete": {"deletedCodeDiscountId": found["id"], "userErrors": []}}}
        errors = [{"field": ["id"], "code": "NOT_FOUND", "message": "Discount does not exist"}]
        return {"data": {"discountCodeDelete": {"deletedCodeDiscountId": None, "userErrors": errors}}}
    return {"errors": [{"message": "fake shop: unsupported operation"}]}


def _tier(state: FakeShopState, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    """A customer's tier push: tags removed, then added, then the `loyalty.tier` metafield set or deleted."""
    owner = variables["id"]
    data: dict[str, Any] = {}
    with state.lock:
        tags = set(state.customer_tags.get(owner, []))
        if "tagsRemove" in query:
            tags -= set(variables["remove"])
            data["tagsRemove"] = {"userErrors": []}
        if "tagsAdd" in query:
            tags |= set(variables["add"])
            data["tagsAdd"] = {"userErrors": []}
        state.customer_tags[owner] = sorted(tags)
        if "metafieldsSet" in query:
            for metafield in variables["metafields"]:
                state.metafields[f"{metafield['ownerId']} {metafield['namespace']}.{metafield['key']}"] = metafield[
                    "value"
                ]
                state.metafield_writes += 1
            data["metafieldsSet"] = {"metafields": [{"id": "gid://shopify/Metafield/2"}], "userErrors": []}
        if "metafieldsDelete" in query:
            for identifier in variables["identifiers"]:
                state.metafields.pop(f"{identifier['ownerId']} {identifier['namespace']}.{identifier['key']}", None)
            data["metafieldsDelete"] = {"deletedMetafields": [{"key": "tier"}], "userErrors": []}
    return {"data": data}


def _orders_page(state: FakeShopState, variables: dict[str, Any]) -> dict[str, Any]:
    """Orders with updatedAt >= the `updated_at:>=` in the search, oldest first; the cursor is an index."""
    with state.lock:
        if state.throttle_orders > 0:
            state.throttle_orders -= 1
            return _throttled()
        since = variables["query"].split("updated_at:>=", 1)[1].split()[0].strip("'\"")
        matching = sorted(
            (order for order in state.orders if _instant(order["updatedAt"]) >= _instant(since)),
            key=lambda order: _instant(order["updatedAt"]),
        )
        start = int(variables.get("cursor") or 0)
        end = start + int(variables["first"])
        state.order_pages += 1
    has_next = end < len(matching)
    page_info = {"hasNextPage": has_next, "endCursor": str(end) if has_next else None}
    return {"data": {"orders": {"nodes": matching[start:end], "pageInfo": page_info}}}


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _create(state: FakeShopState, discount: dict[str, Any], kind: str) -> dict[str, Any]:
    missing = [name for name in ("code", "title", "startsAt", "context") if not discount.get(name)]
    if missing:
        errors = [
            {"field": ["basicCodeDiscount", name], "code": "BLANK", "message": "can't be blank"} for name in missing
        ]
        return {"codeDiscountNode": None, "userErrors": errors}
    code = discount["code"]
    with state.lock:
        if code in state.codes:
            taken = [{"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]
            return {"codeDiscountNode": None, "userErrors": taken}
        node_id = f"gid://shopify/DiscountCodeNode/{next(state.ids)}"
        state.codes[code] = {"id": node_id, "code": code, "kind": kind, "input": discount, "used": 0, "deleted": False}
        state.creates[code] = state.creates.get(code, 0) + 1
    return {"codeDiscountNode": {"id": node_id}, "userErrors": []}


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": str(amount), "currencyCode": currency}


def _balance(account: dict[str, Any]) -> Decimal:
    return sum((t["remaining"] for t in account["transactions"] if t["kind"] == "credit"), Decimal("0"))


def _account_node(account: dict[str, Any], currency: str) -> dict[str, Any]:
    return {"id": account["id"], "balance": _money(_balance(account), currency)}


def _transaction_node(t: dict[str, Any], currency: str) -> dict[str, Any]:
    typename = "StoreCreditAccountCreditTransaction" if t["kind"] == "credit" else "StoreCreditAccountDebitTransaction"
    node = {
        "__typename": typename,
        "id": t["id"],
        "amount": _money(t["amount"] if t["kind"] == "credit" else -t["amount"], currency),
        "balanceAfterTransaction": _money(t["balance_after"], currency),
        "createdAt": t["created_at"],
        "origin": {"__typename": t["origin"]} if t["origin"] else None,
    }
    if t["kind"] == "credit":
        node["expiresAt"] = t["expires_at"]
        node["remainingAmount"] = _money(t["remaining"], currency)
    return node


def _credit(state: FakeShopState, owner: str, credit_input: dict[str, Any]) -> dict[str, Any]:
    amount = Decimal(str(credit_input["creditAmount"]["amount"]))
    currency = credit_input["creditAmount"]["currencyCode"]
    if amount <= 0:
        errors = [{"field": ["creditInput", "creditAmount"], "code": "NEGATIVE_OR_ZERO_AMOUNT", "message": "bad"}]
        return {"storeCreditAccountTransaction": None, "userErrors": errors}
    account = state.store_credit.setdefault(owner, {}).setdefault(
        currency, {"id": f"gid://shopify/StoreCreditAccount/{next(state.ids)}", "transactions": []}
    )
    made = {
        "kind": "credit",
        "id": f"gid://shopify/StoreCreditAccountCreditTransaction/{next(state.ids)}",
        "amount": amount,
        "remaining": amount,
        "expires_at": credit_input.get("expiresAt"),
        "created_at": _now(),
        "origin": None,
    }
    account["transactions"].append(made)
    made["balance_after"] = _balance(account)
    state.credits_made += 1
    return {"storeCreditAccountTransaction": _transaction_node(made, currency), "userErrors": []}


def _debit(state: FakeShopState, owner: str, money: dict[str, Any], origin: str | None) -> dict[str, Any]:
    amount, currency = Decimal(str(money["amount"])), money["currencyCode"]
    account = state.store_credit.get(owner, {}).get(currency)
    if account is None or _balance(account) < amount:
        code = "ACCOUNT_NOT_FOUND" if account is None else "INSUFFICIENT_FUNDS"
        errors = [{"field": ["debitInput", "debitAmount"], "code": code, "message": code.lower()}]
        return {"storeCreditAccountTransaction": None, "userErrors": errors}
    left = amount
    credits = [t for t in account["transactions"] if t["kind"] == "credit" and t["remaining"] > 0]
    for credit in sorted(credits, key=lambda t: t["expires_at"] or "9999"):
        used = min(left, credit["remaining"])
        credit["remaining"] -= used
        left -= used
        if left == 0:
            break
    made = {
        "kind": "debit",
        "id": f"gid://shopify/StoreCreditAccountDebitTransaction/{next(state.ids)}",
        "amount": amount,
        "created_at": _now(),
        "origin": origin,
    }
    account["transactions"].append(made)
    made["balance_after"] = _balance(account)
    if origin is None:
        state.debits_made += 1
    return {"storeCreditAccountTransaction": _transaction_node(made, currency), "userErrors": []}


def _customer_accounts(state: FakeShopState, variables: dict[str, Any]) -> dict[str, Any]:
    """A customer's accounts with their transactions newest first, filtered by `expires_at:>=` / `<=` terms."""
    bounds = []
    for term in (variables.get("query") or "").split(" AND "):
        for operator in (">=", "<="):
            if term.strip().startswith(f"expires_at:{operator}"):
                bounds.append((operator, _instant(term.strip().split(operator, 1)[1].strip("'\""))))
    nodes = []
    for currency, account in state.store_credit.get(variables["id"], {}).items():
        chosen = []
        for t in reversed(account["transactions"]):
            expiry = _instant(t["expires_at"]) if t.get("expires_at") else None
            if bounds and (
                expiry is None or not all(expiry >= at if operator == ">=" else expiry <= at for operator, at in bounds)
            ):
                continue
            chosen.append(_transaction_node(t, currency))
        node = _account_node(account, currency)
        node["transactions"] = {"nodes": chosen[: int(variables.get("first") or 50)]}
        nodes.append(node)
    return {"id": variables["id"], "storeCreditAccounts": {"nodes": nodes}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5001)
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--token", default=None)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    state = FakeShopState(token=args.token, fail_rate=args.fail_rate, slow_seconds=args.slow_seconds, seed=args.seed)
    create_fake_shop(state).run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()
