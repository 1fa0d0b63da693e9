"""Customers looked up through the Admin API by id or exact email (the import's matching of unknown shoppers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from plugin.platforms.shopify.admin import AdminClient
from plugin.programme import events

CUSTOMERS_BY_ID = """query LoyaltyImportCustomersById($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Customer { id email firstName lastName } }
}"""
CUSTOMERS_BY_EMAIL = """query LoyaltyImportCustomersByEmail($first: Int!, $query: String!) {
  customers(first: $first, query: $query) { nodes { id email firstName lastName } }
}"""


def find_customers(
    client: AdminClient, ids: Sequence[int], emails: Sequence[str], pause: Callable[[], None]
) -> tuple[list[events.Customer], int]:
    """The shop's customers with these ids or exactly these emails, and the number of calls it took."""
    found: list[dict] = []
    calls = 0
    if ids:
        gids = [f"gid://shopify/Customer/{customer_id}" for customer_id in ids]
        found += [node for node in client.graphql(CUSTOMERS_BY_ID, {"ids": gids}).get("nodes") or [] if node]
        calls += 1
    if emails:
        if calls:
            pause()
        # Quotes and backslashes cannot be part of a search term; such an address is asked about without them
        # and still matched exactly below.
        search = " OR ".join(f'email:"{email.replace(chr(34), "").replace(chr(92), "")}"' for email in emails)
        answer = client.graphql(CUSTOMERS_BY_EMAIL, {"first": len(emails), "query": search})
        wanted = {email.strip().lower() for email in emails}
        # The search is fuzzy; only an exact (case-insensitive) address is a match.
        found += [node for node in (answer.get("customers") or {}).get("nodes") or [] if _email(node) in wanted]
        calls += 1
    return [_customer(node) for node in found], calls


def _customer(node: dict) -> events.Customer:
    return events.Customer(
        customer_id=int(str(node["id"]).rsplit("/", 1)[-1]),
        email=node.get("email"),
        first_name=node.get("firstName"),
        last_name=node.get("lastName"),
    )


def _email(node: dict) -> str:
    return str(node.get("email") or "").strip().lower()
