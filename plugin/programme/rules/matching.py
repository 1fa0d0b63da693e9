"""Which order lines a rule applies to: by product, variant, product type, vendor, product tag or collection."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from plugin.programme import explanations
from plugin.programme.rules.core import LineFacts


@dataclass(frozen=True)
class Match:
    """An empty match is every line; otherwise a line matches when any listed fact does."""

    product_ids: frozenset[int] = frozenset()
    variant_ids: frozenset[int] = frozenset()
    product_types: frozenset[str] = frozenset()
    vendors: frozenset[str] = frozenset()
    tags: frozenset[str] = frozenset()
    collections: frozenset[str] = frozenset()

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Match:
        data = data or {}
        return cls(
            product_ids=frozenset(int(x) for x in data.get("product_ids", ())),
            variant_ids=frozenset(int(x) for x in data.get("variant_ids", ())),
            product_types=frozenset(str(x).casefold() for x in data.get("product_types", ())),
            vendors=frozenset(str(x).casefold() for x in data.get("vendors", ())),
            tags=frozenset(str(x).casefold() for x in data.get("tags", ())),
            collections=frozenset(str(x) for x in data.get("collections", ())),
        )

    @cached_property
    def everything(self) -> bool:  # remembered: asked for every line of every order
        return not (self.product_ids or self.variant_ids or self.needs_products)

    @cached_property
    def needs_products(self) -> bool:
        """Whether lines can only be matched once their product is in the cache."""
        return bool(self.product_types or self.vendors or self.tags or self.collections)

    @property
    def needs_collections(self) -> bool:
        return bool(self.collections)

    def matches(self, line: LineFacts) -> bool:
        if self.everything:
            return True
        if line.product_id in self.product_ids or line.variant_id in self.variant_ids:
            return True
        product = line.product
        if product is None:
            return False
        keys = product.match_keys
        return bool(
            keys[0] in self.product_types
            or keys[1] in self.vendors
            or not self.tags.isdisjoint(keys[2])
            or (product.collections is not None and not self.collections.isdisjoint(product.collections))
        )

    @cached_property
    def description(self) -> list[str | dict[str, Any]]:
        """What the match names, as explanation parts: types and vendors as typed, the rest from the catalogue."""
        parts: list[str | dict[str, Any]] = [
            *sorted(self.product_types),
            *sorted(self.vendors),
            *(explanations.detail("match_tag", value=t) for t in sorted(self.tags)),
            *(explanations.detail("match_collection", value=c) for c in sorted(self.collections)),
        ]
        if self.product_ids:
            parts.append(explanations.detail("match_products", count=len(self.product_ids)))
        if self.variant_ids:
            parts.append(explanations.detail("match_variants", count=len(self.variant_ids)))
        return parts or [explanations.detail("match_everything")]
