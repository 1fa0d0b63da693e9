"""The chaos replay's seeded event list: Shopify-shaped payloads, duplicates, shuffling, and how to sign them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

SHOP = "chaos-shop.myshopify.com"
CURRENCY = "USD"
CENT = Decimal("0.01")
# The rewards catalogue the run installs. The oracle takes each reward's cost from here, not from the app.
REWARDS = [
    {"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00"},
    {"id": "12-off", "kind": "fixed_amount", "points": 1100, "amount": "12.00"},
    {"id": "free-ship", "kind": "free_shipping", "points": 300},
]
REWARD_COST = {reward["id"]: reward["points"] for reward in REWARDS}
CUSTOMER_BASE = 7_310_000_000  # Shopify ids are 64-bit: keep ours above 2**32
ORDER_BASE = 5_640_000_000_000
REFUND_BASE = 9_120_000_000_000

# Shares of the distinct events (the rest are paid orders).
REFUNDED_ORDER_SHARE = 0.4  # orders that get 1-3 partial (sometimes in the end full) refunds
CANCELLED_ORDER_SHARE = 0.08
REDEMPTIONS_PER_ORDER = 0.08
SAME_ID_SHARE = 0.8  # of webhook duplicates: Shopify retrying the same delivery; the rest: same event, new id


@dataclass
class Send:
    """One request the senders make: a webhook delivery or an App Proxy redemption."""

    kind: str  # "webhook" or "redeem"
    topic: str = ""
    body: bytes = b""
    webhook_id: str = ""
    customer_id: int = 0
    reward_id: str = ""
    idempotency_key: str = ""
    duplicate: str | None = None  # None for an original; "same-id", "new-id" or "same-key" for a repeat


@dataclass
class Plan:
    customers: list[int]
    grants: dict[int, int]  # opening points per customer, given through the support API before the stream
    setup: list[Send]  # customers/create deliveries, sent (and processed) before the stream
    stream: list[Send]  # the shuffled stream, duplicates included
    counts: dict[str, int] = field(default_factory=dict)


def money(amount: Decimal) -> dict[str, Any]:
    """A `*_set` money bag in shop currency (amounts as strings: money is never a float)."""
    bag = {"amount": f"{amount:.2f}", "currency_code": CURRENCY}
    return {"shop_money": bag, "presentment_money": dict(bag)}


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return (Decimal(rng.randint(low, high)) * CENT).quantize(CENT)


def customer_payload(customer_id: int) -> dict[str, Any]:
    return {
        "id": customer_id,
        "email": f"chaos{customer_id}@example.com",
        "first_name": "Chaos",
        "last_name": f"Shopper {customer_id % 10_000}",
        "state": "enabled",
        "verified_email": True,
        "currency": CURRENCY,
        "tax_exempt": False,
        "created_at": "2026-11-20T09:00:00-05:00",
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer_id}",
    }


def _line(rng: random.Random, line_id: int) -> dict[str, Any]:
    quantity = rng.choice((1, 1, 2, 2, 3, 4, 5, 6))
    price = _cents(rng, 100, 25_000)
    gross = price * quantity
    # About a third of the lines carry a discount allocation of up to 30% of the line.
    discount = _cents(rng, 1, int(gross * 30)) if rng.random() < 0.35 else Decimal(0)
    tax = ((gross - discount) * Decimal("0.0825")).quantize(CENT)
    return {
        "id": line_id,
        "admin_graphql_api_id": f"gid://shopify/LineItem/{line_id}",
        "title": f"Product {line_id % 97}",
        "quantity": quantity,
        "current_quantity": quantity,
        "price": f"{price:.2f}",
        "price_set": money(price),
        "gift_card": False,
        "taxable": True,
        "total_discount": "0.00",
        "total_discount_set": money(Decimal(0)),
        "discount_allocations": (
            [{"amount": f"{discount:.2f}", "amount_set": money(discount), "discount_application_index": 0}]
            if discount
            else []
        ),
        "tax_lines": [{"price": f"{tax:.2f}", "price_set": money(tax), "rate": "0.0825", "title": "State tax"}],
    }


def order_payload(rng: random.Random, order_id: int, customer_id: int) -> dict[str, Any]:
    """An orders/paid body: several lines with quantities and line discounts, shipping and taxes (neither earns)."""
    lines = [_line(rng, order_id * 100 + n) for n in range(1, rng.randint(1, 4) + 1)]
    shipping = _cents(rng, 0, 1500) if rng.random() < 0.7 else Decimal(0)
    shipping_tax = (shipping * Decimal("0.0825")).quantize(CENT)

    def amount(bag: dict[str, Any]) -> Decimal:
        return Decimal(bag["shop_money"]["amount"])

    gross = sum((amount(ln["price_set"]) * ln["quantity"] for ln in lines), Decimal(0))
    discounts = sum((amount(a["amount_set"]) for ln in lines for a in ln["discount_allocations"]), Decimal(0))
    taxes = sum((amount(t["price_set"]) for ln in lines for t in ln["tax_lines"]), Decimal(0)) + shipping_tax
    subtotal = gross - discounts
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#C{order_id % 1_000_000}",
        "order_number": order_id % 1_000_000,
        "email": f"chaos{customer_id}@example.com",
        "currency": CURRENCY,
        "presentment_currency": CURRENCY,
        "financial_status": "paid",
        "test": False,
        "taxes_included": False,
        "total_tip_received": "0.00",
        "created_at": "2026-11-20T09:58:00-05:00",
        "processed_at": "2026-11-20T09:59:00-05:00",
        "cancelled_at": None,
        "cancel_reason": None,
        "customer": {
            "id": customer_id,
            "email": f"chaos{customer_id}@example.com",
            "first_name": "Chaos",
            "last_name": f"Shopper {customer_id % 10_000}",
        },
        "line_items": lines,
        "shipping_lines": (
            [
                {
                    "title": "Standard",
                    "price": f"{shipping:.2f}",
                    "price_set": money(shipping),
                    "discounted_price": f"{shipping:.2f}",
                    "discounted_price_set": money(shipping),
                    "is_removed": False,
                    "tax_lines": [{"price": f"{shipping_tax:.2f}", "price_set": money(shipping_tax), "rate": "0.0825"}],
                }
            ]
            if shipping
            else []
        ),
        "subtotal_price": f"{subtotal:.2f}",
        "subtotal_price_set": money(subtotal),
        "total_discounts": f"{discounts:.2f}",
        "total_discounts_set": money(discounts),
        "total_tax": f"{taxes:.2f}",
        "total_tax_set": money(taxes),
        "total_shipping_price_set": money(shipping),
        "total_price": f"{subtotal + shipping + taxes:.2f}",
        "total_price_set": money(subtotal + shipping + taxes),
        "refunds": [],
    }


def refund_payload(refund_id: int, order: dict[str, Any], quantities: dict[int, int], shipping: bool) -> dict[str, Any]:
    """A refunds/create body refunding `quantities` (line id -> units), and sometimes the shipping."""
    by_id = {ln["id"]: ln for ln in order["line_items"]}
    items = []
    refunded = Decimal(0)
    for line_id, quantity in quantities.items():
        unit = Decimal(by_id[line_id]["price"])
        subtotal = unit * quantity
        refunded += subtotal
        items.append(
            {
                "id": refund_id * 10 + len(items),
                "line_item_id": line_id,
                "quantity": quantity,
                "restock_type": "no_restock",
                "subtotal_set": money(subtotal),
                "total_tax_set": money(Decimal(0)),
            }
        )
    shipping_amount = Decimal(order["total_shipping_price_set"]["shop_money"]["amount"]) if shipping else Decimal(0)
    return {
        "id": refund_id,
        "order_id": order["id"],
        "admin_graphql_api_id": f"gid://shopify/Refund/{refund_id}",
        "created_at": "2026-11-21T12:00:00-05:00",
        "processed_at": "2026-11-21T12:00:00-05:00",
        "note": "chaos replay",
        "restock": False,
        "refund_line_items": items,
        "refund_shipping_lines": [{"subtotal_amount_set": money(shipping_amount)}] if shipping_amount else [],
        "order_adjustments": [],
        "transactions": [
            {"kind": "refund", "status": "success", "amount": f"{refunded + shipping_amount:.2f}", "currency": CURRENCY}
        ],
    }


def _refunds_for(rng: random.Random, order: dict[str, Any], next_refund_id) -> list[dict[str, Any]]:
    """1-3 partial refunds of line quantities; one order in five is refunded in full by the last of them."""
    left = {ln["id"]: ln["quantity"] for ln in order["line_items"]}
    refunds = []
    count, in_full = rng.randint(1, 3), rng.random() < 0.2
    for n in range(count):
        if in_full and n == count - 1:
            quantities = {line_id: remaining for line_id, remaining in left.items() if remaining}
        else:
            quantities = {
                line_id: rng.randint(1, remaining)
                for line_id, remaining in left.items()
                if remaining and rng.random() < 0.5
            }
            if not quantities and any(left.values()):
                quantities = {rng.choice([line_id for line_id, remaining in left.items() if remaining]): 1}
        if not quantities:
            break  # everything is refunded already
        for line_id, quantity in quantities.items():
            left[line_id] -= quantity
        refunds.append(refund_payload(next_refund_id(), order, quantities, shipping=rng.random() < 0.15))
    return refunds


def build(seed: int, events: int, customers: int, duplicate_share: float = 0.3) -> Plan:
    """`events` sends in all, `duplicate_share` of them repeats; shuffled with the seed."""
    rng = random.Random(seed)

    def webhook(topic: str, payload: dict[str, Any]) -> Send:
        return Send("webhook", topic=topic, body=json.dumps(payload).encode(), webhook_id=_uuid(rng))

    customer_ids = [CUSTOMER_BASE + n * 7 for n in range(1, customers + 1)]
    setup = [webhook("customers/create", customer_payload(c)) for c in customer_ids]
    refund_ids = iter(range(REFUND_BASE + 1, REFUND_BASE + 10 * events + 10))
    distinct_target = max(round(events * (1 - duplicate_share)), 1)

    originals: list[Send] = []
    counts = {"orders/paid": 0, "refunds/create": 0, "orders/cancelled": 0, "redeem": 0}
    redemptions: dict[int, list[str]] = {c: [] for c in customer_ids}
    order_number = 0
    while len(originals) < distinct_target:
        order_number += 1
        order = order_payload(rng, ORDER_BASE + order_number * 13, rng.choice(customer_ids))
        originals.append(webhook("orders/paid", order))
        counts["orders/paid"] += 1
        refunds = _refunds_for(rng, order, lambda: next(refund_ids)) if rng.random() < REFUNDED_ORDER_SHARE else []
        for refund in refunds:
            originals.append(webhook("refunds/create", refund))
            counts["refunds/create"] += 1
        if rng.random() < CANCELLED_ORDER_SHARE:
            # Shopify's orders/cancelled body is the order as it stands, refunds made so far included.
            cancelled = {
                **order,
                "cancelled_at": "2026-11-22T08:00:00-05:00",
                "cancel_reason": "customer",
                "financial_status": "refunded",
                "refunds": refunds,
            }
            originals.append(webhook("orders/cancelled", cancelled))
            counts["orders/cancelled"] += 1
        if rng.random() < REDEMPTIONS_PER_ORDER:
            redeemer, reward = rng.choice(customer_ids), rng.choice(REWARDS)["id"]
            key = f"chaos-{seed}-{len(originals)}-{_uuid(rng)[:8]}"
            originals.append(Send("redeem", customer_id=redeemer, reward_id=reward, idempotency_key=key))
            redemptions[redeemer].append(reward)
            counts["redeem"] += 1

    repeats: list[Send] = []
    for _ in range(max(events - len(originals), 0)):
        original = rng.choice(originals)
        if original.kind == "redeem":
            repeats.append(replace(original, duplicate="same-key"))
        elif rng.random() < SAME_ID_SHARE:
            repeats.append(replace(original, duplicate="same-id"))  # Shopify retrying one delivery
        else:
            repeats.append(replace(original, webhook_id=_uuid(rng), duplicate="new-id"))  # one event sent twice
    stream = originals + repeats
    rng.shuffle(stream)

    # Opening grants: every redemption the customer will make is affordable whenever it arrives, whatever
    # refunds and cancellations did first (an order never holds fewer than 0 points), plus a random extra.
    grants = {c: sum(REWARD_COST[r] for r in redemptions[c]) + rng.randint(1, 999) for c in customer_ids}
    counts |= {
        "distinct": len(originals),
        "duplicates": len(repeats),
        "duplicates_same_id": sum(1 for r in repeats if r.duplicate == "same-id"),
        "duplicates_new_id": sum(1 for r in repeats if r.duplicate == "new-id"),
        "duplicates_same_key": sum(1 for r in repeats if r.duplicate == "same-key"),
    }
    return Plan(customer_ids, grants, setup, stream, counts)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def webhook_headers(send: Send, secret: str, triggered_at: str) -> dict[str, str]:
    """The headers Shopify sends: base64 HMAC-SHA256 of the raw body with the app secret, and the delivery id."""
    signature = base64.b64encode(hmac.new(secret.encode(), send.body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": send.topic,
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Webhook-Id": send.webhook_id,
        "X-Shopify-Triggered-At": triggered_at,
        "X-Shopify-API-Version": "2025-10",
    }


def proxy_params(customer_id: int, secret: str, timestamp: int) -> list[tuple[str, str]]:
    """The query Shopify's App Proxy adds: hex HMAC-SHA256 over the sorted `key=value` pairs, no separator."""
    params = [
        ("shop", SHOP),
        ("logged_in_customer_id", str(customer_id)),
        ("path_prefix", "/apps/loyalty"),
        ("timestamp", str(timestamp)),
    ]
    message = "".join(f"{key}={value}" for key, value in sorted(params))
    return [*params, ("signature", hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest())]
