"""Builders for the earning-rule tests: orders with product facts, rule sets from JSON, lots and holdings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from plugin.programme.earning import Lot, ProgramSettings, build_lot, points_to_hold
from plugin.programme.events import OrderLine, OrderSnapshot, RefundFacts
from plugin.programme.rules import Product, rule_set, validate_rule_set

PAID_AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # Black Friday, 10:00 in New York
DEFAULT = ProgramSettings()

OUTERWEAR = Product(1, "Outerwear", "Acme", frozenset({"winter"}), frozenset({"11", "coats"}))
SHIRTS = Product(2, "Shirts", "Bolt", frozenset({"summer"}), frozenset({"22", "tops"}))
CATALOGUE = {p.product_id: p for p in (OUTERWEAR, SHIRTS)}


def line(line_id: int, gross: str, quantity: int = 1, *, product: int | None = None, variant: int | None = None):
    return OrderLine(line_id, quantity, Decimal(gross), product_id=product, variant_id=variant)


def snapshot(*lines: OrderLine, shipping: str = "0", name: str = "#1001") -> OrderSnapshot:
    return OrderSnapshot(
        order_id=1001, name=name, customer=None, email=None, currency="USD", test=False, taxes_included=False,
        lines=tuple(lines), shipping=Decimal(shipping),
    )  # fmt: skip


def rules(*rule_list: dict[str, Any], version: int = 5, **top: Any):
    return rule_set(validate_rule_set({"rules": list(rule_list), **top}), version)


def lot(
    order: OrderSnapshot,
    *rule_list: dict[str, Any],
    settings: ProgramSettings = DEFAULT,
    tags: frozenset[str] = frozenset(),
    paid_at: datetime = PAID_AT,
    products: dict[int, Product] | None = None,
    **top: Any,
) -> Lot:
    return build_lot(
        order, settings, paid_at, has_member=True, rules=rules(*rule_list, **top),
        products=CATALOGUE if products is None else products, member_tags=tags,
    )  # fmt: skip


def by_kind(built: Lot) -> dict[str, int]:
    totals: dict[str, int] = {}
    for c in built.contributions:
        totals[c.kind] = totals.get(c.kind, 0) + c.points
    return totals


def refund(refund_id: int, quantities: dict[int, int], shipping: str = "0") -> RefundFacts:
    return RefundFacts(refund_id, 1001, quantities, Decimal(shipping))


def held(built: Lot, *refunds: RefundFacts, cancelled: bool = False) -> int:
    return points_to_hold(built, refunds, cancelled)
