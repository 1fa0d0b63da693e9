"""The programme's rules as pure functions: what an order earns, and what it still holds after refunds.

No Flask, no database. Money is Decimal in the shop's currency; points are integers; the one rounding
rule (round down) lives in `_points_for`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from plugin.programme.events import OrderSnapshot, RefundFacts

RULES_VERSION = "earn-1"  # bump when the meaning of these functions changes


@dataclass(frozen=True)
class ProgramSettings:
    """A shop's earning programme. Defaults are the programme every new shop starts with."""

    earn_points: int = 1
    earn_per_amount: Decimal = Decimal("1.00")
    include_shipping: bool = False
    include_taxes: bool = False
    include_tips: bool = False
    include_gift_cards: bool = False
    earn_on_test_orders: bool = False
    guest_orders_earn_by_email: bool = False
    pending_days: int = 0
    spent_points_policy: str = "allow_negative"  # or "stop_at_zero", "claw_back"
    version: int = 1

    @property
    def rule_version(self) -> str:
        return f"{RULES_VERSION}+settings-{self.version}"


@dataclass(frozen=True)
class LotLine:
    line_id: int
    quantity: int
    eligible: Decimal  # money this line contributes to earning, after discounts


@dataclass(frozen=True)
class Lot:
    """What one paid order earned, with everything needed to reverse it later without today's settings."""

    earn_points: int
    earn_per_amount: Decimal
    lines: tuple[LotLine, ...]
    shipping: Decimal
    tip: Decimal
    points: int
    rule_version: str
    available_at: datetime | None = None
    reason: str | None = None  # why nothing was earned, when nothing was
    excluded_lines: tuple[int, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "earn_points": self.earn_points,
            "earn_per_amount": str(self.earn_per_amount),
            "lines": [
                {"line_id": ln.line_id, "quantity": ln.quantity, "eligible": str(ln.eligible)} for ln in self.lines
            ],
            "shipping": str(self.shipping),
            "tip": str(self.tip),
            "points": self.points,
            "rule_version": self.rule_version,
            "available_at": self.available_at.isoformat() if self.available_at else None,
            "reason": self.reason,
            "excluded_lines": list(self.excluded_lines),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lot:
        return cls(
            earn_points=int(data["earn_points"]),
            earn_per_amount=Decimal(data["earn_per_amount"]),
            lines=tuple(
                LotLine(int(ln["line_id"]), int(ln["quantity"]), Decimal(ln["eligible"])) for ln in data["lines"]
            ),
            shipping=Decimal(data["shipping"]),
            tip=Decimal(data["tip"]),
            points=int(data["points"]),
            rule_version=data["rule_version"],
            available_at=datetime.fromisoformat(data["available_at"]) if data.get("available_at") else None,
            reason=data.get("reason"),
            excluded_lines=tuple(data.get("excluded_lines", ())),
        )


def build_lot(order: OrderSnapshot, settings: ProgramSettings, paid_at: datetime, *, has_member: bool) -> Lot:
    """How many points a paid order earns, and the eligible amounts that produced them."""
    reason = None
    if order.test and not settings.earn_on_test_orders:
        reason = "test order"
    elif not has_member:
        reason = "no customer on the order"

    lines: list[LotLine] = []
    excluded: list[int] = []
    for line in order.lines:
        if line.quantity <= 0:
            continue
        if line.gift_card and not settings.include_gift_cards:
            excluded.append(line.line_id)
            continue
        eligible = line.gross - line.discount
        if order.taxes_included and not settings.include_taxes:
            eligible -= line.tax
        elif settings.include_taxes and not order.taxes_included:
            eligible += line.tax
        lines.append(LotLine(line.line_id, line.quantity, max(eligible, Decimal(0))))

    shipping = Decimal(0)
    if settings.include_shipping:
        shipping = order.shipping
        if order.taxes_included and not settings.include_taxes:
            shipping -= order.shipping_tax
        elif settings.include_taxes and not order.taxes_included:
            shipping += order.shipping_tax
        shipping = max(shipping, Decimal(0))
    tip = order.tip if settings.include_tips else Decimal(0)

    available_at = paid_at + timedelta(days=settings.pending_days) if settings.pending_days else None
    lot = Lot(
        earn_points=settings.earn_points,
        earn_per_amount=settings.earn_per_amount,
        lines=tuple(lines),
        shipping=shipping,
        tip=tip,
        points=0,
        rule_version=settings.rule_version,
        available_at=available_at,
        reason=reason,
        excluded_lines=tuple(excluded),
    )
    if reason is not None:
        return lot
    return _with_points(lot, _points_for(lot, _remaining_amount(lot, ())))


def points_to_hold(lot: Lot | None, refunds: Iterable[RefundFacts], cancelled: bool) -> int:
    """The points an order should hold given every fact known about it, in whatever order they came.

    Refunds take back each refunded line's share of that line's eligible amount (by quantity), so several
    partial refunds that together refund everything take back exactly the award, and never more.
    """
    if lot is None or cancelled or lot.points == 0:
        return 0
    return min(_points_for(lot, _remaining_amount(lot, refunds)), lot.points)


def _remaining_amount(lot: Lot, refunds: Iterable[RefundFacts]) -> Fraction:
    refunded_quantity: Counter[int] = Counter()
    refunded_shipping = Decimal(0)
    for refund in refunds:
        refunded_quantity.update(refund.line_quantities)
        refunded_shipping += refund.shipping
    remaining = Fraction(0)
    for line in lot.lines:
        kept = max(line.quantity - refunded_quantity[line.line_id], 0)
        remaining += Fraction(line.eligible) * kept / line.quantity
    remaining += Fraction(max(lot.shipping - refunded_shipping, Decimal(0)))
    remaining += Fraction(lot.tip)
    return remaining


def _points_for(lot: Lot, amount: Fraction) -> int:
    # The only rounding in the programme: points are rounded down, computed exactly (no floats).
    return int(amount * lot.earn_points / Fraction(lot.earn_per_amount)) if amount > 0 else 0


def _with_points(lot: Lot, points: int) -> Lot:
    return Lot(**{**lot.__dict__, "points": points})
