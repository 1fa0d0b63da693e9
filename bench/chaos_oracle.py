"""Expected balances, computed from the sent events alone with the documented rule (no app code imported).

The rule (README, "The default programme"; plugin/programme/earning.py's docstrings): 1 point per 1.00 of each line's
price x quantity minus its line discounts, shipping and taxes excluded; a refund of k of a line's n units takes
back k/n of that line's eligible amount; an order holds floor(what remains) points; a cancelled order holds 0.
Everything is exact: Decimal amounts from the JSON strings, Fractions for the shares, integers for points.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Any


@dataclass(frozen=True)
class Expected:
    grant: int
    orders: int  # points held by the customer's orders at the end
    redeemed: int  # points spent on distinct redemptions

    @property
    def balance(self) -> int:
        return self.grant + self.orders - self.redeemed


def _shop_money(bag: dict[str, Any]) -> Decimal:
    return Decimal(bag["shop_money"]["amount"])


def order_points(order: dict[str, Any], refunded_units: dict[int, int], cancelled: bool) -> int:
    """The points one order holds, from its paid payload and the units refunded per line."""
    if cancelled or order.get("test") or not order.get("customer"):
        return 0
    if order.get("taxes_included"):
        raise ValueError("the oracle's rule covers tax-exclusive prices only; the plan sends no other kind")
    remaining = Fraction(0)
    for line in order["line_items"]:
        units = line["quantity"]
        if line.get("gift_card") or units <= 0:
            continue
        discount = sum((_shop_money(a["amount_set"]) for a in line.get("discount_allocations", [])), Decimal(0))
        eligible = max(Fraction(_shop_money(line["price_set"]) * units - discount), Fraction(0))
        kept = max(units - refunded_units.get(line["id"], 0), 0)
        remaining += eligible * kept / units
    return math.floor(remaining)  # 1 point per 1.00, rounded down once per order


def expected_balances(sends: Iterable[Any], grants: dict[int, int], reward_cost: dict[str, int]) -> dict[int, Expected]:
    """Each customer's expected balance from every send of the stream, duplicates included.

    Repeats are recognised by Shopify's own identities, as a shop's events are: an order by its id, a refund by
    its id (a cancellation's body may embed refunds already sent on their own), a redemption by its key.
    """
    paid: dict[int, dict[str, Any]] = {}
    refunds: dict[int, dict[str, Any]] = {}
    cancelled: set[int] = set()
    redemptions: dict[tuple[int, str], str] = {}
    for send in sends:
        if send.kind == "redeem":
            known = redemptions.setdefault((send.customer_id, send.idempotency_key), send.reward_id)
            if known != send.reward_id:
                raise ValueError(f"key {send.idempotency_key} names two rewards")
            continue
        payload = json.loads(send.body, parse_float=Decimal)
        if send.topic == "orders/paid":
            paid[payload["id"]] = payload
        elif send.topic == "refunds/create":
            refunds[payload["id"]] = payload
        elif send.topic == "orders/cancelled":
            cancelled.add(payload["id"])
            for refund in payload.get("refunds", []):
                refunds[refund["id"]] = refund
        else:
            raise ValueError(f"the oracle does not know topic {send.topic}")

    refunded: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for refund in refunds.values():
        for item in refund["refund_line_items"]:
            refunded[refund["order_id"]][item["line_item_id"]] += item["quantity"]

    earned: dict[int, int] = defaultdict(int)
    for order_id, order in paid.items():
        earned[order["customer"]["id"]] += order_points(order, refunded[order_id], order_id in cancelled)
    spent: dict[int, int] = defaultdict(int)
    for (customer_id, _key), reward_id in redemptions.items():
        spent[customer_id] += reward_cost[reward_id]
    return {c: Expected(grants.get(c, 0), earned[c], spent[c]) for c in sorted(set(grants) | set(earned) | set(spent))}
