"""Discount codes in a Shopify shop: create (basic or free shipping), find by code, delete.

Since API version 2025-10 (we pin 2026-10), Shopify takes the customer restriction as `context` (DiscountContextInput);
`customerSelection` is its deprecated predecessor. See docs/decisions/0005-discount-codes.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from plugin.platforms.shopify.admin import AdminAPIError, AdminClient
from plugin.programme.rewards import Reward

CREATE_BASIC = """mutation LoyaltyCreateBasicCode($basicCodeDiscount: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $basicCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""

CREATE_FREE_SHIPPING = """mutation LoyaltyFreeShipping($freeShippingCodeDiscount: DiscountCodeFreeShippingInput!) {
  discountCodeFreeShippingCreate(freeShippingCodeDiscount: $freeShippingCodeDiscount) {
    codeDiscountNode { id }
    userErrors { field code message }
  }
}"""

FIND_BY_CODE = """query LoyaltyFindCode($code: String!) {
  codeDiscountNodeByCode(code: $code) {
    id
    codeDiscount {
      __typename
      ... on DiscountCodeBasic { asyncUsageCount }
      ... on DiscountCodeFreeShipping { asyncUsageCount }
    }
  }
}"""

VARIANT_PRICE = """query LoyaltyVariantPrice($id: ID!) {
  productVariant(id: $id) { id price }
}"""

ITEMS = """query LoyaltyRewardItems($ids: [ID!]!) {
  nodes(ids: $ids) { id __typename }
}"""
ITEMS_PER_QUERY = 250  # the most ids Shopify's nodes query takes at once

DELETE = """mutation LoyaltyDeleteCode($id: ID!) {
  discountCodeDelete(id: $id) {
    deletedCodeDiscountId
    userErrors { field code message }
  }
}"""


@dataclass(frozen=True)
class ShopCode:
    discount_id: str
    used: int


@dataclass(frozen=True)
class CodeRequest:
    code: str
    reward: Reward
    customer_id: int
    starts_at: datetime
    ends_at: datetime | None


class CodeTaken(Exception):
    """The shop already has a discount with this code."""


def find(client: AdminClient, code: str) -> ShopCode | None:
    node = client.graphql(FIND_BY_CODE, {"code": code}).get("codeDiscountNodeByCode")
    if not node:
        return None
    return ShopCode(node["id"], int((node.get("codeDiscount") or {}).get("asyncUsageCount") or 0))


def create(client: AdminClient, request: CodeRequest) -> str:
    """Create the code; returns its discount id. Raises CodeTaken, or AdminAPIError for other refusals."""
    if request.reward.kind == "free_shipping":
        data = client.graphql(CREATE_FREE_SHIPPING, {"freeShippingCodeDiscount": free_shipping_input(request)})
        result = data.get("discountCodeFreeShippingCreate") or {}
    elif request.reward.kind == "free_product":
        price = variant_price(client, request.reward.variant_id)
        data = client.graphql(CREATE_BASIC, {"basicCodeDiscount": free_product_input(request, price)})
        result = data.get("discountCodeBasicCreate") or {}
    else:
        data = client.graphql(CREATE_BASIC, {"basicCodeDiscount": basic_input(request)})
        result = data.get("discountCodeBasicCreate") or {}
    errors = result.get("userErrors") or []
    if any(e.get("code") == "TAKEN" for e in errors):
        raise CodeTaken(request.code)
    if errors:
        raise AdminAPIError("; ".join(f"{e.get('field')}: {e.get('message')} ({e.get('code')})" for e in errors))
    node = result.get("codeDiscountNode") or {}
    if not node.get("id"):
        raise AdminAPIError("the shop returned no discount id")
    return node["id"]


def missing_items(client: AdminClient, ids: list[str]) -> set[str]:
    """Which of these collection, product or variant ids the shop does not hold (as that type)."""
    missing = set()
    for start in range(0, len(ids), ITEMS_PER_QUERY):
        asked = ids[start : start + ITEMS_PER_QUERY]
        found = client.graphql(ITEMS, {"ids": asked}).get("nodes") or []
        # Shopify answers in the order asked, null for an id it does not know.
        for wanted, node in zip(asked, [*found, *[None] * len(asked)], strict=False):
            if not node or node.get("id") != wanted or node.get("__typename") != wanted.split("/")[3]:
                missing.add(wanted)
    return missing


def delete(client: AdminClient, discount_id: str) -> None:
    result = client.graphql(DELETE, {"id": discount_id}).get("discountCodeDelete") or {}
    errors = [e for e in result.get("userErrors") or [] if e.get("code") != "NOT_FOUND"]
    if errors:
        raise AdminAPIError("; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors))


def _common(request: CodeRequest) -> dict[str, Any]:
    reward = request.reward
    return {
        "title": f"Loyalty reward: {reward.title} ({request.code})",
        "code": request.code,
        "startsAt": request.starts_at.isoformat(),
        "endsAt": request.ends_at.isoformat() if request.ends_at else None,
        "context": (
            {"customers": {"add": [f"gid://shopify/Customer/{request.customer_id}"]}}
            if reward.customer_only
            else {"all": "ALL"}
        ),
        "appliesOncePerCustomer": reward.single_use,
        "usageLimit": 1 if reward.single_use else None,
        "minimumRequirement": (
            {"subtotal": {"greaterThanOrEqualToSubtotal": str(reward.min_subtotal)}}
            if reward.min_subtotal is not None
            else None
        ),
    }


def basic_input(request: CodeRequest) -> dict[str, Any]:
    reward = request.reward
    if reward.kind == "fixed_amount":
        value: dict[str, Any] = {"discountAmount": {"amount": str(reward.amount), "appliesOnEachItem": False}}
    else:
        # GraphQL's percentage is a Float ratio (0.1 = 10 %); this is a rate, not money, and exact enough.
        value = {"percentage": float(reward.percent / 100)}
    return {**_common(request), "customerGets": {"value": value, "items": items_input(reward)}}


def items_input(reward: Reward) -> dict[str, Any]:
    """DiscountItemsInput: the chosen collections, or products and variants, or the whole order."""
    if reward.collection_ids:
        return {"collections": {"add": list(reward.collection_ids)}}
    if reward.product_ids or reward.variant_ids:
        products: dict[str, Any] = {}
        if reward.product_ids:
            products["productsToAdd"] = list(reward.product_ids)
        if reward.variant_ids:
            products["productVariantsToAdd"] = list(reward.variant_ids)
        return {"products": products}
    return {"all": True}


def variant_price(client: AdminClient, variant_id: str) -> Decimal:
    """The variant's price now; AdminAPIError when the shop no longer has it (the points then come back)."""
    variant = client.graphql(VARIANT_PRICE, {"id": variant_id}).get("productVariant")
    if not variant or variant.get("price") is None:
        raise AdminAPIError(f"{variant_id} no longer exists in the shop")
    return Decimal(str(variant["price"]))


def free_product_input(request: CodeRequest, price: Decimal) -> dict[str, Any]:
    """One unit of the variant free: its price off, split across that variant's units, so a cart with three of
    them gets one free, not three (a 100 % basic code would free every unit; Shopify's BXGY needs a purchase)."""
    value = {"discountAmount": {"amount": str(price), "appliesOnEachItem": False}}
    items = {"products": {"productVariantsToAdd": [request.reward.variant_id]}}
    return {**_common(request), "customerGets": {"value": value, "items": items}}


def free_shipping_input(request: CodeRequest) -> dict[str, Any]:
    return {**_common(request), "destination": {"all": True}}
