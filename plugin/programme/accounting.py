"""The programme's accounting, pure: roll-forward lines, breakage cohorts, contract liability and the GL journal.

Inputs are per-day sums of postings (kind, source, points); money is Decimal, points are integers. The method is
written down in docs/decisions/0023-programme-accounting.md and docs/reports.md.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

# Bonus sources with a line of their own; any other bonus source gets "issued.bonus.<source>".
BONUS_SOURCES = {
    "tier": "issued.tiers",
    "tiers": "issued.tiers",
    "referral": "issued.referrals",
    "referrals": "issued.referrals",
    "action": "issued.custom_actions",
    "custom_action": "issued.custom_actions",
    "survey": "issued.custom_actions",
    "support": "issued.support",
}
LINE_BY_KIND = {
    "earn": "issued.orders",
    "adjust": "issued.support",
    "import": "issued.imports",
    "reverse": "reversed",
    "redeem": "redeemed",
    "return": "returned",
    "expire": "expired",
    "forgive": "forgiven",
}
# The roll-forward's order: issued lines first (sorted), then these.
OUTFLOW_LINES = ("reversed", "redeemed", "returned", "expired", "forgiven")
LABELS = {
    "issued.orders": "Issued: orders",
    "issued.tiers": "Issued: tiers",
    "issued.referrals": "Issued: referrals",
    "issued.custom_actions": "Issued: custom actions",
    "issued.support": "Issued: support adjustments (net)",
    "issued.imports": "Issued: imported opening balances",
    "issued.bonus.tier_birthday": "Issued: tier birthday rewards",
    "reversed": "Reversed (refunds and cancellations)",
    "redeemed": "Redeemed",
    "returned": "Returned (rewards failed or cancelled)",
    "expired": "Expired",
    "forgiven": "Forgiven (refunds of points already spent)",
}

ACCOUNTS = {
    "liability": "2400 Contract liability - loyalty points",
    "sales": "4000 Sales revenue",
    "redeemed": "4010 Revenue - loyalty points redeemed",
    "breakage": "4020 Revenue - loyalty breakage",
}
ZERO_DECIMAL_CURRENCIES = frozenset({"JPY", "KRW", "CLP", "ISK", "VND", "UGX", "XAF", "XOF", "PYG", "RWF"})
RATE_PLACES = Decimal("0.0001")


def line_of(kind: str, source_type: str) -> str:
    """The roll-forward line a posting belongs to, from its kind and source."""
    if kind == "bonus":
        return BONUS_SOURCES.get(source_type, f"issued.bonus.{source_type}")
    return LINE_BY_KIND.get(kind, f"other.{kind}")


def label(line: str) -> str:
    if line in LABELS:
        return LABELS[line]
    if line.startswith("issued.bonus."):
        return f"Issued: bonus rule '{line.removeprefix('issued.bonus.')}'"
    return f"Other: {line.removeprefix('other.')}"


def money(points: int, value: Decimal, currency: str | None = None) -> Decimal:
    """Points at a value per point, rounded half up to the currency's minor unit."""
    return round_money(Decimal(points) * value, currency)


def round_money(amount: Decimal, currency: str | None = None) -> Decimal:
    places = Decimal(1) if (currency or "").upper() in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")
    return amount.quantize(places, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Movement:
    """Points of one line on one day (signed)."""

    day: date
    line: str
    points: int


def movements(rows: Iterable) -> list[Movement]:
    """Day rows (day, kind, source_type, points) folded into roll-forward lines."""
    sums: dict[tuple[date, str], int] = defaultdict(int)
    for row in rows:
        sums[(row.day, line_of(row.kind, row.source_type))] += row.points
    return [Movement(day, line, points) for (day, line), points in sorted(sums.items()) if points]


def ordered_lines(lines: Iterable[str]) -> list[str]:
    present = set(lines)
    issued = sorted(line for line in present if line.startswith("issued."))
    others = sorted(line for line in present if line.startswith("other."))
    return issued + [line for line in OUTFLOW_LINES if line in present] + others


@dataclass(frozen=True)
class RollForward:
    opening: int
    lines: dict[str, int]  # every line that moved, in ordered_lines order
    closing: int

    @property
    def issued(self) -> int:
        return sum(points for line, points in self.lines.items() if line.startswith("issued."))


def roll_forward(moves: list[Movement], start: date, end: date) -> RollForward:
    """Opening (before `start`), the lines of [start, end], and closing (the end of `end`)."""
    opening = sum(m.points for m in moves if m.day < start)
    lines: dict[str, int] = defaultdict(int)
    for m in moves:
        if start <= m.day <= end:
            lines[m.line] += m.points
    ordered = {line: lines[line] for line in ordered_lines(lines) if lines[line]}
    return RollForward(opening, ordered, opening + sum(ordered.values()))


# Breakage -------------------------------------------------------------------------------------------------------


def month_of(day: date) -> date:
    return day.replace(day=1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def month_end(month: date) -> date:
    return add_months(month, 1) - timedelta(days=1)


@dataclass(frozen=True)
class MonthFlows:
    """What one month did to the pool of points: granted (net), redeemed (net), otherwise consumed."""

    month: date
    granted: int
    redeemed: int
    consumed: int


def month_flows(moves: list[Movement], through: date) -> list[MonthFlows]:
    """Each month up to `through`: granted = issued + reversed + forgiven (and other kinds); redeemed = redeemed +
    returned, as a positive number; consumed = expired. A month whose granted is negative consumes it instead,
    and a month whose returns exceed its redemptions grants the excess."""
    sums: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for m in moves:
        if m.day > through:
            continue
        bucket = sums[month_of(m.day)]
        if m.line in ("redeemed", "returned"):
            bucket[1] -= m.points
        elif m.line == "expired":
            bucket[2] -= m.points
        else:
            bucket[0] += m.points
    flows = []
    for month in sorted(sums):
        granted, redeemed, consumed = sums[month]
        if redeemed < 0:
            granted, redeemed = granted - redeemed, 0
        if granted < 0:
            granted, consumed = 0, consumed - granted
        if consumed < 0:
            granted, consumed = granted - consumed, 0
        flows.append(MonthFlows(month, granted, redeemed, consumed))
    return flows


@dataclass(frozen=True)
class Cohort:
    month: date
    issued: int
    redeemed_12: int
    redeemed_24: int
    breakage_12: Decimal | None  # None until the cohort's 12 months have passed
    breakage_24: Decimal | None


@dataclass(frozen=True)
class Breakage:
    cohorts: list[Cohort]
    rate_12: Decimal | None
    rate_24: Decimal | None
    expected: Decimal  # the rate applied: the 24-month one, else the 12-month one, else 0
    basis: str  # "24_months", "12_months" or "no_mature_cohort"


def breakage(flows: list[MonthFlows], as_of: date) -> Breakage:
    """Cohorts by month of issue under first-in, first-out consumption of the shop's whole pool of points.

    Cohort m holds the points [G(<m), G(<=m)) of the cumulated granted points. Month by month, expiries consume
    the pool first, then redemptions; the points of cohort m that redemptions consumed by the end of month m+h are
    its redeemed_h, and 1 - redeemed_h / issued is its breakage after h months, once month m+h has ended by
    `as_of`. The rate is the points-weighted mean over the cohorts that have matured.
    """
    bounds: list[tuple[date, int, int]] = []  # cohort month, first point, end point (exclusive)
    cumulated = 0
    for flow in flows:
        if flow.granted > 0:
            bounds.append((flow.month, cumulated, cumulated + flow.granted))
            cumulated += flow.granted
    redeemed_spans: list[tuple[date, int, int]] = []  # month, first point, end point redeemed that month
    cursor = 0
    for flow in flows:
        cursor += flow.consumed
        redeemed_spans.append((flow.month, cursor, cursor + flow.redeemed))
        cursor += flow.redeemed

    def redeemed_by(first: int, end: int, month: date) -> int:
        return sum(
            max(0, min(end, span_end) - max(first, span_first))
            for span_month, span_first, span_end in redeemed_spans
            if span_month <= month
        )

    cohorts = []
    weights = {12: [0, 0], 24: [0, 0]}  # horizon: [issued, redeemed] over matured cohorts
    for month, first, end in bounds:
        issued = end - first
        redeemed = {h: redeemed_by(first, end, add_months(month, h)) for h in (12, 24)}
        shares: dict[int, Decimal | None] = {}
        for h in (12, 24):
            if month_end(add_months(month, h)) <= as_of:
                shares[h] = (1 - Decimal(redeemed[h]) / Decimal(issued)).quantize(RATE_PLACES, ROUND_HALF_UP)
                weights[h][0] += issued
                weights[h][1] += redeemed[h]
            else:
                shares[h] = None
        cohorts.append(Cohort(month, issued, redeemed[12], redeemed[24], shares[12], shares[24]))

    def rate(h: int) -> Decimal | None:
        issued, redeemed = weights[h]
        return (1 - Decimal(redeemed) / Decimal(issued)).quantize(RATE_PLACES, ROUND_HALF_UP) if issued else None

    rate_12, rate_24 = rate(12), rate(24)
    if rate_24 is not None:
        return Breakage(cohorts, rate_12, rate_24, rate_24, "24_months")
    if rate_12 is not None:
        return Breakage(cohorts, rate_12, rate_24, rate_12, "12_months")
    return Breakage(cohorts, rate_12, rate_24, Decimal(0), "no_mature_cohort")


def contract_liability(points: int, value: Decimal, expected_breakage: Decimal, currency: str | None) -> Decimal:
    """Deferred revenue: outstanding points x value per point x (1 - expected breakage), to the minor unit."""
    return round_money(Decimal(points) * value * (1 - expected_breakage), currency)


# The journal ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JournalLine:
    day: date
    account: str
    debit: Decimal
    credit: Decimal
    memo: str


def _entry(day: date, debit: str, credit: str, amount: Decimal, memo: str) -> list[JournalLine]:
    """Two lines (debit, credit); a negative amount swaps the accounts; nothing for zero."""
    if amount == 0:
        return []
    if amount < 0:
        debit, credit, amount = credit, debit, -amount
    zero = Decimal(0) * amount  # keeps the amount's exponent: 0.00
    return [
        JournalLine(day, ACCOUNTS[debit], amount, zero, memo),
        JournalLine(day, ACCOUNTS[credit], zero, amount, memo),
    ]


def journal(
    moves: list[Movement], start: date, end: date, value: Decimal, expected: Decimal, currency: str | None
) -> list[JournalLine]:
    """Month by month over [start, end], dated each month's last day (or `end`):

    1. deferral on issue: issued (all issued lines and forgiven) x value x (1 - b), Dr sales / Cr liability;
    2. reversal on refunds: reversed x value x (1 - b), Dr liability / Cr sales (the deferral undone);
    3. recognised on redemption: redeemed net of returns x value x (1 - b), Dr liability / Cr redeemed revenue;
    4. breakage in proportion to redemptions: the same points x value x b, Dr liability / Cr breakage revenue;
    5. remeasurement: whatever brings the liability to closing points x value x (1 - b) (expiries, and the
       breakage of step 4 already held back), Dr liability / Cr breakage revenue (or the reverse).
    """
    keep = 1 - expected
    lines: list[JournalLine] = []
    month = month_of(start)
    while month <= end:
        first, last = max(month, start), min(month_end(month), end)
        flow = roll_forward(moves, first, last)
        issued = flow.issued + flow.lines.get("forgiven", 0)
        reversed_ = -flow.lines.get("reversed", 0)
        redeemed = -(flow.lines.get("redeemed", 0) + flow.lines.get("returned", 0))
        opening = contract_liability(flow.opening, value, expected, currency)
        closing = contract_liability(flow.closing, value, expected, currency)
        deferred = round_money(Decimal(issued) * value * keep, currency)
        undone = round_money(Decimal(reversed_) * value * keep, currency)
        recognised = round_money(Decimal(redeemed) * value * keep, currency)
        broken = round_money(Decimal(redeemed) * value * expected, currency)
        remeasured = opening + deferred - undone - recognised - broken - closing
        at = f"at {value} per point"
        lines += _entry(last, "sales", "liability", deferred, f"{issued} points issued {at} x (1 - {expected})")
        lines += _entry(last, "liability", "sales", undone, f"{reversed_} points reversed {at} x (1 - {expected})")
        lines += _entry(
            last, "liability", "redeemed", recognised, f"{redeemed} points redeemed {at} x (1 - {expected})"
        )
        lines += _entry(
            last,
            "liability",
            "breakage",
            broken,
            f"breakage in proportion: {redeemed} points redeemed {at} x {expected}",
        )
        lines += _entry(
            last, "liability", "breakage", remeasured,
            f"remeasurement to {flow.closing} points outstanding {at} x (1 - {expected}) = {closing}",
        )  # fmt: skip
        month = add_months(month, 1)
    return lines
