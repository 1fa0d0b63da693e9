"""Shopify product look-ups for the product cache: one batched Admin GraphQL `nodes` query per 50 products."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from plugin.platforms.shopify.admin import AdminClient
from plugin.programme.events import ProductFacts

BATCH = 50  # ids per query: keeps each query's cost well under the bucket's 1,000 points

PRODUCTS_BY_ID = """query LoyaltyProducts($ids: [ID!]!) {
  nodes(ids: $ids) {
    ... on Product {
      id
      productType
      vendor
      tags
      collections(first: 100) { nodes { id handle } }
    }
  }
}"""


def fetch(client: AdminClient, product_ids: Iterable[int]) -> tuple[list[ProductFacts], set[int]]:
    """The products' facts, and the ids the shop does not know (deleted, or never its own)."""
    wanted = sorted(set(product_ids))
    found: list[ProductFacts] = []
    for start in range(0, len(wanted), BATCH):
        batch = wanted[start : start + BATCH]
        data = client.graphql(PRODUCTS_BY_ID, {"ids": [f"gid://shopify/Product/{pid}" for pid in batch]})
        found.extend(product_facts(node) for node in data.get("nodes") or [] if node and node.get("id"))
    return found, set(wanted) - {p.product_id for p in found}


def product_facts(node: dict[str, Any]) -> ProductFacts:
    collections = (node.get("collections") or {}).get("nodes") or []
    return ProductFacts(
        product_id=_numeric(node["id"]),
        product_type=node.get("productType") or "",
        vendor=node.get("vendor") or "",
        tags=frozenset(str(tag).casefold() for tag in node.get("tags") or ()),
        # A rule may name a collection by its numeric id or by its handle.
        collections=frozenset(name for c in collections for name in (str(_numeric(c["id"])), c.get("handle")) if name),
    )


def _numeric(gid: str) -> int:
    return int(str(gid).rsplit("/", 1)[-1])
