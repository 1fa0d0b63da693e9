"""Points expiry, pure: lots consumed first-in first-out, when each lot expires, and what is due or coming.

A lot is a positive posting. Spending takes from the oldest available lots first (FIFO); a reversal takes first
from its own order's lots; an expire posting takes exactly the lot it names. So for every lot we know how much
is left and when it expires, and "120 points expire on 31 Jan" is exact. No I/O here: the service feeds postings.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

OFF, PER_LOT, INACTIVITY = "off", "per_lot", "inactivity"
POLICIES = (OFF, PER_LOT, INACTIVITY)
# What counts as activity for the inactivity policy: earning or spending (the words), not a refund.
ACTIVITY_KINDS = frozenset({"earn", "redeem"})


@dataclass(frozen=True)
class Policy:
    policy: str = OFF
    months: int | None = None
    reminder_days: tuple[int, ...] = ()

    @property
    def on(self) -> bool:
        return self.policy != OFF and bool(self.months)


@dataclass(frozen=True)
class Move:
    """One posting as expiry reads it."""

    posting_id: int
    kind: str
    points: int
    created_at: datetime
    available_at: datetime | None = None
    order_id: int | None = None
    expires_lot: int | None = None  # an expire posting: the lot (posting id) it took


@dataclass
class Lot:
    posting_id: int
    points: int
    available_from: datetime
    order_id: int | None
    kind: str
    remaining: int = field(default=0)

    def expires_on(self, months: int, zone: ZoneInfo) -> date:
        return add_months(self.available_from.astimezone(zone).date(), months)


def add_months(day: date, months: int) -> date:
    """The same day `months` later; the 31st of a shorter month becomes its last day (31 Aug + 6 = 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def lots(moves: Iterable[Move]) -> tuple[list[Lot], int]:
    """Every lot with what is left of it, and the debt (points spent beyond every lot), from postings in id order.

    Invariant: sum(remaining) - debt == the sum of the postings (the balance).
    """
    held: list[Lot] = []
    debt = 0
    for move in sorted(moves, key=lambda m: m.posting_id):
        if move.points > 0:
            lot = Lot(move.posting_id, move.points, move.available_at or move.created_at, move.order_id, move.kind)
            paid = min(debt, move.points)  # new points first pay what was spent beyond the lots
            debt -= paid
            lot.remaining = move.points - paid
            held.append(lot)
            continue
        owed = -move.points
        for lot in _consumption_order(held, move):
            if owed == 0:
                break
            taken = min(lot.remaining, owed)
            lot.remaining -= taken
            owed -= taken
        debt += owed
    return held, debt


def _consumption_order(held: list[Lot], move: Move) -> list[Lot]:
    if move.expires_lot is not None:
        return [lot for lot in held if lot.posting_id == move.expires_lot]
    fifo = sorted((lot for lot in held if lot.remaining > 0), key=lambda lot: (lot.available_from, lot.posting_id))
    if move.kind == "reverse" and move.order_id is not None:
        own = [lot for lot in fifo if lot.order_id == move.order_id]
        return own + [lot for lot in fifo if lot.order_id != move.order_id]
    return fifo


@dataclass(frozen=True)
class Expiry:
    """Points of one lot that expire (or, for a reminder, will) on `on`."""

    lot: Lot
    points: int
    on: date


def schedule(moves: list[Move], policy: Policy, zone: ZoneInfo, now: datetime) -> list[Expiry]:
    """Every lot's points that are still held, with the date they expire, oldest first (nothing if expiry is off).

    Pending points never expire before they are available: a lot's clock starts when it becomes available, and
    on inactivity only lots available by the expiry day go.
    """
    if not policy.on:
        return []
    held, _debt = lots(moves)
    alive = [lot for lot in held if lot.remaining > 0]
    if policy.policy == PER_LOT:
        found = [Expiry(lot, lot.remaining, lot.expires_on(policy.months, zone)) for lot in alive]
    else:
        active = [m.created_at for m in moves if m.kind in ACTIVITY_KINDS]
        if not active:
            return []
        on = add_months(max(active).astimezone(zone).date(), policy.months)
        found = [Expiry(lot, lot.remaining, max(on, lot.available_from.astimezone(zone).date())) for lot in alive]
    return sorted(found, key=lambda e: (e.on, e.lot.available_from, e.lot.posting_id))


def due(moves: list[Move], policy: Policy, zone: ZoneInfo, today: date, now: datetime) -> list[Expiry]:
    """What expires by `today` (the shop's local date): lots whose date has come and that are available now."""
    return [e for e in schedule(moves, policy, zone, now) if e.on <= today and e.lot.available_from <= now]


def inactivity_key(moves: list[Move]) -> int:
    """The last activity's posting id: an inactivity expiry is keyed by it, so it happens once per idle spell."""
    return max((m.posting_id for m in moves if m.kind in ACTIVITY_KINDS), default=0)


def upcoming(moves: list[Move], policy: Policy, zone: ZoneInfo, today: date, now: datetime) -> list[tuple[date, int]]:
    """The points that will expire, per future date, soonest first: [(date, points)]."""
    totals: dict[date, int] = {}
    for expiry in schedule(moves, policy, zone, now):
        if expiry.on > today:
            totals[expiry.on] = totals.get(expiry.on, 0) + expiry.points
    return sorted(totals.items())


def reminders(
    moves: list[Move], policy: Policy, zone: ZoneInfo, today: date, now: datetime
) -> list[tuple[date, int, int]]:
    """Reminders due today: (expiry date, points, days before), the nearest reminder day already reached.

    A run missed on the reminder's day still reminds the next day; of several reminder days passed at once
    (30 and 7, first run 5 days before), only the nearest is sent. The caller keys each by (date, days).
    """
    found = []
    for on, points in upcoming(moves, policy, zone, today, now):
        reached = [days for days in policy.reminder_days if (on - today).days <= days]
        if reached:
            found.append((on, points, min(reached)))
    return found
