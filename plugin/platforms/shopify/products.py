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


COLLECTIONS_BY_ID = """query LoyaltyCollections($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Collection { id handle } }
}"""


def existing_collections(client: AdminClient, names: Iterable[str]) -> set[str]:
    """Which of these collection ids and handles the shop has: ids in one `nodes` query per 50, handles one
    aliased `collectionByHandle` field each, 50 to a query."""
    wanted = sorted(set(names))
    ids = [name for name in wanted if name.isdigit()]
    handles = [name for name in wanted if not name.isdigit()]
    found: set[str] = set()
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        data = client.graphql(COLLECTIONS_BY_ID, {"ids": [f"gid://shopify/Collection/{cid}" for cid in batch]})
        found.update(str(_numeric(node["id"])) for node in data.get("nodes") or [] if node and node.get("id"))
    for start in range(0, len(handles), BATCH):
        batch = handles[start : start + BATCH]
        fields = " ".join(f"c{i}: collectionByHandle(handle: $h{i}) {{ id }}" for i in range(len(batch)))
        params = ", ".join(f"$h{i}: String!" for i in range(len(batch)))
        data = client.graphql(
            f"query LoyaltyCollectionHandles({params}) {{ {fields} }}", {f"h{i}": h for i, h in enumerate(batch)}
        )
        found.update(handle for i, handle in enumerate(batch) if (data.get(f"c{i}") or {}).get("id"))
    return found
