"""Shopify customer metafields: balances as `loyalty.points` and the next expiry as `loyalty.next_expiry`."""

from __future__ import annotations

import json
from collections.abc import Sequence

from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

METAFIELDS_SET = """mutation LoyaltyBalances($metafields: [MetafieldsSetInput!]!) {
  metafieldsSet(metafields: $metafields) {
    metafields { id }
    userErrors { field message code }
  }
}"""
PER_CALL = 25  # metafieldsSet takes at most 25 metafields at once


def balance_metafield(customer_id: int, points: int) -> dict[str, str]:
    return {
        "ownerId": f"gid://shopify/Customer/{customer_id}",
        "namespace": "loyalty",
        "key": "points",
        "type": "number_integer",
        "value": str(points),
    }


def next_expiry_metafield(customer_id: int, next_expiry: dict | None) -> dict[str, str]:
    """`loyalty.next_expiry`: {"date": "2027-01-31", "points": 120}, or {"date": null, "points": 0} when none."""
    value = next_expiry or {"date": None, "points": 0}
    return {
        "ownerId": f"gid://shopify/Customer/{customer_id}",
        "namespace": "loyalty",
        "key": "next_expiry",
        "type": "json",
        "value": json.dumps({"date": value["date"], "points": value["points"]}, separators=(",", ":")),
    }


def push_balances(client: AdminClient, balances: Sequence[tuple]) -> None:
    """Set (customer id, points) pairs, or (customer id, points, next expiry) triples (two metafields each), at
    most PER_CALL metafields in one call; raises AdminAPIError if any is refused."""
    metafields = []
    for customer_id, points, *rest in balances:
        metafields.append(balance_metafield(customer_id, points))
        if rest:
            metafields.append(next_expiry_metafield(customer_id, rest[0]))
    if len(metafields) > PER_CALL:
        raise ValueError(f"metafieldsSet takes at most {PER_CALL} metafields, not {len(metafields)}")
    result = client.graphql(METAFIELDS_SET, {"metafields": metafields}).get("metafieldsSet") or {}
    if result.get("userErrors"):
        raise AdminAPIError(f"metafieldsSet refused: {result['userErrors']}")
