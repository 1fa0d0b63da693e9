"""Member-level milestone rules as pure functions: spend thresholds and punch cards counted from order facts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from functools import lru_cache
from math import gcd
from typing import Any

from plugin.programme.earning import Lot
from plugin.programme.events import RefundFacts

RULES_VERSION = "milestones-1"  # bump when the meaning of these functions changes
CENT = Decimal("0.01")


@dataclass(frozen=True)
class OrderSpend:
    """One order's part in a member's history: the money that still counts, and the year it was paid in."""

    order_id: int
    year: int  # the calendar year of payment, in the shop's time zone
    spend: Fraction  # eligible merchandise after discounts, less what was refunded; 0 once cancelled


def order_spend(lot: Lot | None, refunds: Iterable[RefundFacts], cancelled: bool) -> Fraction:
    """The money an order still counts towards milestones: its lot's eligible lines less refunded quantities.

    Shipping and tips never count. A test order, an order with no lot yet (a product still unknown) and a
    cancelled order count nothing.
    """
    if lot is None or cancelled or lot.reason is not None:
        return Fraction(0)
    refunded: dict[int, int] = {}
    for refund in refunds:
        for line_id, quantity in refund.line_quantities.items():
            refunded[line_id] = refunded.get(line_id, 0) + quantity
    remaining = Fraction(0)
    for line in lot.lines:
        kept = max(line.quantity - refunded.get(line.line_id, 0), 0)
        remaining += Fraction(line.eligible) * kept / line.quantity
    return remaining


def local_year(paid_at: datetime, zone) -> int:
    return paid_at.astimezone(zone).year


def qualifying_spend(threshold: dict[str, Any], orders: Iterable[OrderSpend], year: int | None = None) -> Fraction:
    """The spend a threshold counts: lifetime, or the given calendar year's (this year's when measuring progress)."""
    if threshold["period"] == "lifetime":
        return _total(o.spend for o in orders)
    return _total(o.spend for o in orders if o.year == year)


def threshold_crossings(threshold: dict[str, Any], orders: Iterable[OrderSpend]) -> int:
    """How many times the member's spend has crossed the threshold, from every order fact known now.

    Lifetime: once per whole multiple of the amount (once at most unless `repeat`). Calendar year: the same,
    counted separately in each year, so a new year starts from nothing and earlier years keep their grants.
    """
    amount = _amount(threshold["amount"])
    if threshold["period"] == "lifetime":
        totals = [_total(o.spend for o in orders)]
    else:
        years: dict[int, list[Fraction]] = {}
        for o in orders:  # each year's spends in one pass (a pass per year before)
            years.setdefault(o.year, []).append(o.spend)
        totals = [_total(spends) for spends in years.values()]
    crossings = 0
    for total in totals:
        times = int(total // amount)
        crossings += times if threshold.get("repeat", True) else min(times, 1)
    return crossings


def punches(card: dict[str, Any], orders: Iterable[OrderSpend]) -> int:
    """The member's punches: orders that still count money, at least the card's minimum subtotal."""
    minimum = _amount(card.get("min_subtotal") or "0")
    low, high = minimum.numerator, minimum.denominator
    # spend >= minimum as integers (denominators are positive): Fraction's comparisons cost more than the rest.
    return sum(1 for o in orders if o.spend.numerator > 0 and o.spend.numerator * high >= low * o.spend.denominator)


def punch_card_grants(card: dict[str, Any], orders: Iterable[OrderSpend]) -> int:
    return punches(card, orders) // int(card["every"])


@lru_cache(maxsize=256)
def _amount(amount: Any) -> Fraction:
    """A programme's money amount as an exact Fraction (parsed once per amount, not once per member)."""
    return Fraction(Decimal(amount))


def _total(spends: Iterable[Fraction]) -> Fraction:
    """The exact sum of the spends, added as integers over a common denominator and made a Fraction once: Fraction's
    own + reduces (gcd) and builds an object at every step, and spends are nearly all whole cents."""
    numerator, denominator = 0, 1
    for spend in spends:
        top, bottom = spend.numerator, spend.denominator
        if bottom == denominator:
            numerator += top
        elif denominator % bottom == 0:
            numerator += top * (denominator // bottom)
        else:
            common = denominator // gcd(denominator, bottom) * bottom
            numerator = numerator * (common // denominator) + top * (common // bottom)
            denominator = common
    return Fraction(numerator, denominator)


def money(value: Fraction) -> str:
    """A money amount for people, rounded down to the cent (never up: "spend 0.00 more" would be a lie)."""
    return str((Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT, rounding=ROUND_DOWN))


def threshold_progress(threshold: dict[str, Any], orders: list[OrderSpend], today: date) -> dict[str, Any]:
    """What the widget shows: spend so far in the period, and how much more reaches the next grant."""
    amount = Fraction(Decimal(threshold["amount"]))
    spend = qualifying_spend(threshold, orders, today.year)
    reached = int(spend // amount)
    done = not threshold.get("repeat", True) and reached >= 1
    remaining = Fraction(0) if done else amount * (reached + 1) - spend
    return {
        "id": threshold["id"],
        "title": threshold.get("title") or "",
        "period": threshold["period"],
        "amount": threshold["amount"],
        "points": threshold["points"],
        "spent": money(spend),
        "remaining": money(remaining) if not done else None,
        "reached": reached,
        "complete": done,
    }


def punch_card_progress(card: dict[str, Any], orders: list[OrderSpend]) -> dict[str, Any]:
    count = punches(card, orders)
    every = int(card["every"])
    return {
        "id": card["id"],
        "title": card.get("title") or "",
        "every": every,
        "points": card["points"],
        "min_subtotal": card.get("min_subtotal"),
        "punches": count % every,
        "cards_completed": count // every,
    }
