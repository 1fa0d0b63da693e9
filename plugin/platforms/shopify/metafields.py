"""Shopify customer metafields: members' balances written as `loyalty.points`, where themes can read them."""

from __future__ import annotations

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


def push_balances(client: AdminClient, balances: Sequence[tuple[int, int]]) -> None:
    """Set (customer id, points) pairs, at most PER_CALL in one call; raises AdminAPIError if any is refused."""
    if len(balances) > PER_CALL:
        raise ValueError(f"metafieldsSet takes at most {PER_CALL} metafields, not {len(balances)}")
    metafields = [balance_metafield(customer_id, points) for customer_id, points in balances]
    result = client.graphql(METAFIELDS_SET, {"metafields": metafields}).get("metafieldsSet") or {}
    if result.get("userErrors"):
        raise AdminAPIError(f"metafieldsSet refused: {result['userErrors']}")
