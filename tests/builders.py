"""Builders for realistic Shopify order and refund payloads (money in *_set bags, as Shopify sends it)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any


def money(shop_amount: str | Decimal, shop_currency: str = "USD", presentment: tuple[str, str] | None = None):
    """A `*_set` bag; `presentment` is (amount, currency) when the buyer paid in another currency."""
    shop_bag = {"amount": str(shop_amount), "currency_code": shop_currency}
    presented = {"amount": presentment[0], "currency_code": presentment[1]} if presentment else shop_bag
    return {"shop_money": shop_bag, "presentment_money": presented}


def line(
    line_id: int,
    unit_price: str,
    quantity: int = 1,
    *,
    discount: str = "0.00",
    tax: str = "0.00",
    gift_card: bool = False,
    currency: str = "USD",
    rate: Decimal = Decimal(1),
) -> dict[str, Any]:
    """A line item; `rate` converts shop money to a presentment currency (to prove we never read it)."""

    def bag(amount: str) -> dict[str, Any]:
        presented = (str((Decimal(amount) * rate).quantize(Decimal("0.01"))), "EUR") if rate != 1 else None
        return money(amount, currency, presented)

    return {
        "id": line_id,
        "quantity": quantity,
        "price": unit_price,  # Shopify documents the plain money fields as shop currency
        "price_set": bag(unit_price),
        "gift_card": gift_card,
        "total_discount": "0.00",
        "total_discount_set": bag("0.00"),
        "discount_allocations": [{"amount": discount, "amount_set": bag(discount)}] if discount != "0.00" else [],
        "tax_lines": [{"price": tax, "price_set": bag(tax), "rate": 0.1, "title": "Tax"}] if tax != "0.00" else [],
    }


def order(
    order_id: int,
    customer_id: int | None = 7001,
    lines: list[dict[str, Any]] | None = None,
    *,
    shipping: str = "0.00",
    shipping_tax: str = "0.00",
    currency: str = "USD",
    presentment_currency: str | None = None,
    test: bool = False,
    taxes_included: bool = False,
    tip: str = "0.00",
    cancelled_at: str | None = None,
    refunds: list[dict[str, Any]] | None = None,
    email: str | None = None,
) -> dict[str, Any]:
    lines = lines if lines is not None else [line(order_id * 10 + 1, "100.00")]
    customer = None
    if customer_id is not None:
        customer = {
            "id": customer_id,
            "email": email or f"c{customer_id}@example.com",
            "first_name": "Ada",
            "last_name": "Lovelace",
        }
    shipping_line = {
        "price": shipping,
        "price_set": money(shipping, currency),
        "discounted_price_set": money(shipping, currency),
        "is_removed": False,
        "tax_lines": [{"price_set": money(shipping_tax, currency)}] if shipping_tax != "0.00" else [],
    }
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_id}",
        "email": email or (customer["email"] if customer else "guest@example.com"),
        "currency": currency,
        "presentment_currency": presentment_currency or currency,
        "financial_status": "paid",
        "test": test,
        "taxes_included": taxes_included,
        "total_tip_received": tip,
        "processed_at": "2026-11-20T09:59:00-05:00",
        "cancelled_at": cancelled_at,
        "customer": customer,
        "line_items": lines,
        "shipping_lines": [shipping_line] if shipping != "0.00" else [],
        "refunds": refunds or [],
    }


def refund(
    refund_id: int,
    order_id: int,
    quantities: dict[int, int] | None = None,
    *,
    shipping: str = "0.00",
    currency: str = "USD",
) -> dict[str, Any]:
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": "2026-11-21T12:00:00-05:00",
        "refund_line_items": [
            {"line_item_id": line_id, "quantity": qty, "subtotal": 1.5, "restock_type": "no_restock"}
            for line_id, qty in (quantities or {}).items()
        ],
        "refund_shipping_lines": ([{"subtotal_amount_set": money(shipping, currency)}] if shipping != "0.00" else []),
        "order_adjustments": [],
        "transactions": [],
    }
