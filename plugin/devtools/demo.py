"""Sample Shopify payloads for `loyalty simulate` and the demo shop, signed as Shopify would sign them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from plugin.config import DEFAULT_API_VERSION
from plugin.platforms.shopify.adapter import webhook_signature

DEMO_SHOP = "demo-shop.myshopify.com"
DEMO_TOKEN = "shpat_demo_token"  # the fake shop's token; never a real shop's


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    bag = {"amount": f"{amount:.2f}", "currency_code": currency}
    return {"shop_money": bag, "presentment_money": bag}


def sample_order(order_id: int, customer_id: int | None, amount: Decimal, currency: str = "USD") -> dict[str, Any]:
    """A paid order with one line of `amount`, plus 4.99 shipping and 10% tax (neither earns by default)."""
    tax = (amount / 10).quantize(Decimal("0.01"))
    shipping = Decimal("4.99")
    customer = None
    if customer_id is not None:
        customer = {
            "id": customer_id,
            "email": f"shopper{customer_id}@example.com",
            "first_name": "Demo",
            "last_name": f"Shopper {customer_id}",
        }
    return {
        "id": order_id,
        "name": f"#{order_id % 100000}",
        "email": customer["email"] if customer else "guest@example.com",
        "currency": currency,
        "presentment_currency": currency,
        "test": False,
        "taxes_included": False,
        "financial_status": "paid",
        "processed_at": datetime.now(UTC).isoformat(),
        "cancelled_at": None,
        "customer": customer,
        "subtotal_price_set": _money(amount, currency),
        "total_tax_set": _money(tax, currency),
        "line_items": [
            {
                "id": order_id * 10 + 1,
                "quantity": 1,
                "title": "Demo product",
                "price": f"{amount:.2f}",
                "price_set": _money(amount, currency),
                "gift_card": False,
                "discount_allocations": [],
                "tax_lines": [{"price_set": _money(tax, currency), "rate": "0.1", "title": "Tax"}],
            }
        ],
        "shipping_lines": [{"discounted_price_set": _money(shipping, currency), "is_removed": False, "tax_lines": []}],
        "refunds": [],
    }


def sample_refund(order_id: int, refund_id: int) -> dict[str, Any]:
    """A refund of the sample order's only line."""
    return {
        "id": refund_id,
        "order_id": order_id,
        "created_at": datetime.now(UTC).isoformat(),
        "refund_line_items": [{"line_item_id": order_id * 10 + 1, "quantity": 1}],
        "refund_shipping_lines": [],
        "order_adjustments": [],
    }


def signed_delivery(shop: str, topic: str, payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers Shopify would send for this payload."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": webhook_signature(body, secret),
        "X-Shopify-Webhook-Id": str(uuid.uuid4()),
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "X-Shopify-API-Version": DEFAULT_API_VERSION,
    }
    return body, headers
