"""VIP tiers as a pure function: a member's order facts and paid terms in, their tier and why out.

No database, no Flask. The tier is recomputed from every fact known, never incremented, so a refund, a
cancellation or a late delivery lands the member where the natural order would (docs/tiers.md).

Each counted order is a *qualification*: the member's metric in that order's period, up to and including it.
A qualification at tier T is kept until the end of the period after its own (retention), plus the shop's grace
days. The member's earned tier is the highest one a live qualification reaches.
"""

from __future__ import annotations

from bisect import bisect_right
from calendar import monthrange
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cached_property, lru_cache
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

METRICS = ("points", "spend", "orders")
PERIODS = ("lifetime", "calendar_year", "rolling_12_months")
# A count of paid orders over a rolling window is not offered: see docs/decisions/0022-tiers.md.
SUPPORTED_PERIODS = {
    "points": PERIODS,
    "spend": PERIODS,
    "orders": ("lifetime", "calendar_year"),
}
PAID_MODES = ("stack", "replace")
TIER_CONTRIBUTION_KIND = "tier"  # the lot contribution the tier multiplier adds; never counts toward a tier


@dataclass(frozen=True)
class Tier:
    tier_id: str
    name: str
    threshold: Decimal  # in the metric's unit: points, shop money or orders
    multiplier: Decimal = Decimal(1)
    entry_reward: int = 0
    birthday_reward: int = 0
    free_shipping: bool = False
    perks: tuple[str, ...] = ()
    tag: str = ""

    @property
    def customer_tag(self) -> str:
        return self.tag or f"loyalty-tier-{self.tier_id}"

    def benefits(self) -> list[str]:
        """The tier's benefits in words, for the widget and the admin."""
        out = []
        if self.multiplier != 1:
            out.append(f"{self.multiplier.normalize()}\u00d7 points")
        if self.entry_reward:
            out.append(f"{self.entry_reward} bonus points on reaching {self.name}")
        if self.birthday_reward:
            out.append(f"{self.birthday_reward} points on your birthday")
        if self.free_shipping:
            out.append("free shipping")
        out.extend(self.perks)
        return out


@dataclass(frozen=True)
class PaidPlan:
    tier_id: str
    skus: frozenset[str] = frozenset()
    product_tags: frozenset[str] = frozenset()
    months: int = 12
    mode: str = "stack"  # "stack": the higher of paid and earned; "replace": the paid tier while it lasts


@dataclass(frozen=True)
class TierProgramme:
    version: int
    metric: str
    period: str
    tiers: tuple[Tier, ...]  # by rising threshold
    grace_days: int = 0
    paid: PaidPlan | None = None
    free_shipping_on_leave: str = "deactivate"  # or "keep": a tier's free-shipping code when the member leaves

    def rank(self, tier_id: str | None) -> int:
        """0 for no tier, 1 for the lowest tier, ...; a tier no longer in the programme ranks 0."""
        for index, tier in enumerate(self.tiers):
            if tier.tier_id == tier_id:
                return index + 1
        return 0

    def tier(self, tier_id: str | None) -> Tier | None:
        return next((t for t in self.tiers if t.tier_id == tier_id), None)

    def reached(self, value: Decimal) -> int:
        """The rank a metric value reaches (0: below every threshold)."""
        return bisect_right(self.thresholds, value)

    @cached_property
    def thresholds(self) -> tuple[Decimal, ...]:
        return tuple(t.threshold for t in self.tiers)

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> TierProgramme:
        paid = data.get("paid")
        return cls(
            version=version,
            metric=data["metric"],
            period=data["period"],
            grace_days=int(data.get("grace_days", 0)),
            free_shipping_on_leave=data.get("free_shipping_on_leave", "deactivate"),
            tiers=tuple(
                Tier(
                    tier_id=t["id"],
                    name=t["name"],
                    threshold=Decimal(str(t["threshold"])),
                    multiplier=Decimal(str(t.get("multiplier", "1"))),
                    entry_reward=int(t.get("entry_reward", 0)),
                    birthday_reward=int(t.get("birthday_reward", 0)),
                    free_shipping=bool(t.get("free_shipping", False)),
                    perks=tuple(t.get("perks", ())),
                    tag=t.get("tag") or "",
                )
                for t in data["tiers"]
            ),
            paid=None
            if not paid
            else PaidPlan(
                tier_id=paid["tier"],
                skus=frozenset(paid.get("skus", ())),
                product_tags=frozenset(str(x).casefold() for x in paid.get("product_tags", ())),
                months=int(paid.get("months", 12)),
                mode=paid.get("mode", "stack"),
            ),
        )


@dataclass(frozen=True)
class OrderFact:
    """One paid order as tiers see it, after every refund and cancellation known."""

    order_id: int
    name: str
    paid_at: datetime
    spend: Decimal  # eligible money still kept
    points: int  # points the order still holds, without the tier multiplier's own
    counts: bool  # a paid order that is not cancelled nor wholly refunded

    def value(self, metric: str) -> Decimal:
        if metric == "orders":
            return Decimal(1) if self.counts else Decimal(0)
        if not self.counts:
            return Decimal(0)
        return self.spend if metric == "spend" else Decimal(self.points)


@dataclass(frozen=True)
class PaidTerm:
    """A purchase of the paid tier; `counts` is False once its order is cancelled or its marked lines refunded."""

    order_id: int
    paid_at: datetime
    months: int
    counts: bool


class Qualification(NamedTuple):
    """A counted order's reach: built for every paid order of every member the drain plans, so a named tuple (a
    quarter of a frozen dataclass's construction cost); read by field name only."""

    rank: int
    value: Decimal
    order_id: int
    order_name: str
    at: datetime
    period_key: str
    kept_until: datetime | None  # None: lifetime


@dataclass(frozen=True)
class TierStatus:
    """Where a member stands at `now`, and why."""

    tier_id: str | None
    rank: int
    earned_rank: int
    kept_until: datetime | None  # the earned tier is kept until then (retention plus grace); None: for good
    paid_until: datetime | None  # the paid tier's renewal date, when one is live
    value: Decimal  # the metric in the current period
    period_ends: datetime | None  # the end of the current period (None: lifetime or rolling)
    reason: str
    qualifications: tuple[Qualification, ...] = field(default=(), repr=False)

    def reached_in(self, period_key: str, rank: int) -> Qualification | None:
        """The first qualification in a period reaching at least `rank` (what an entry reward is keyed by)."""
        return next((q for q in self.qualifications if q.period_key == period_key and q.rank >= rank), None)


def add_months(moment: datetime, months: int, zone: ZoneInfo) -> datetime:
    """The same local time `months` calendar months later in the shop's zone (the 31st clamps to the month's end)."""
    local = moment.astimezone(zone)
    total = local.month - 1 + months
    year, month = local.year + total // 12, total % 12 + 1
    day = min(local.day, monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(UTC)


@lru_cache(maxsize=1024)
def _year_start(year: int, zone: ZoneInfo) -> datetime:
    return datetime.combine(date(year, 1, 1), time(0), zone).astimezone(UTC)


def period_key(programme: TierProgramme, moment: datetime, zone: ZoneInfo) -> str:
    """The period a moment falls in: 'lifetime', or the shop-local calendar year (also rolling's reward period)."""
    if programme.period == "lifetime":
        return "lifetime"
    return str(moment.astimezone(zone).year)


def _qualify(programme: TierProgramme, facts: list[OrderFact], zone: ZoneInfo):
    """(rank, running value, fact, period key, kept until) for each counted order, oldest first."""
    ordered = sorted((f for f in facts if f.counts), key=lambda f: (f.paid_at, f.order_id))
    metric, period = programme.metric, programme.period
    running = Decimal(0)
    start = 0  # rolling: the first order still inside the window
    current_year: int | None = None
    for fact in ordered:
        value = fact.value(metric)
        local_year = fact.paid_at.astimezone(zone).year if period != "lifetime" else 0
        if period == "calendar_year":
            if local_year != current_year:
                current_year, running = local_year, Decimal(0)
            running += value
            kept = _year_start(local_year + 2, zone)
        elif period == "rolling_12_months":
            running += value
            window_start = add_months(fact.paid_at, -12, zone)
            while ordered[start].paid_at <= window_start:
                running -= ordered[start].value(metric)
                start += 1
            kept = add_months(fact.paid_at, 12, zone)
        else:
            running += value
            kept = None
        key = "lifetime" if period == "lifetime" else str(local_year)
        yield programme.reached(running), running, fact, key, kept


def qualifications(programme: TierProgramme, facts: list[OrderFact], zone: ZoneInfo) -> list[Qualification]:
    """Each counted order's qualification: the metric in its period up to and including it, and how long it keeps."""
    if programme.period not in ("lifetime", "calendar_year"):
        return [
            Qualification(rank, running, fact.order_id, fact.name, fact.paid_at, key, kept)
            for rank, running, fact, key, kept in _qualify(programme, facts, zone)
        ]
    # _qualify's answer for a lifetime or calendar year, in one loop: run for every member of every drained batch
    # (decision 0073), and each year's key and end are worked out once, not once per order.
    metric, thresholds, calendar = programme.metric, programme.thresholds, programme.period == "calendar_year"
    found = []
    running = Decimal(0)
    year: int | None = None
    key, kept = "lifetime", None
    for fact in sorted((f for f in facts if f.counts), key=_natural):
        if calendar:
            local_year = fact.paid_at.astimezone(zone).year
            if local_year != year:
                year, running = local_year, Decimal(0)
                key, kept = str(local_year), _year_start(local_year + 2, zone)
        running += fact.value(metric)
        found.append(
            Qualification(bisect_right(thresholds, running), running, fact.order_id, fact.name, fact.paid_at, key, kept)
        )
    return found


def qualifications_with(
    programme: TierProgramme, quals: list[Qualification], new: OrderFact, zone: ZoneInfo
) -> list[Qualification] | None:
    """qualifications(programme, facts + [new], zone), from `quals` = qualifications(programme, facts, zone), when
    `new` counts and is paid after every counted fact (by paid at, then order id), for a lifetime or calendar year:
    then its qualification is the last one's running value plus its own (or its own, in a new year), and the rest
    are unchanged. None otherwise (an order paid before one known, a rolling period): the caller works them out
    anew. What the drain's member rules take after each round's new order (decision 0080)."""
    if programme.period not in ("lifetime", "calendar_year") or not new.counts:
        return None
    last = quals[-1] if quals else None
    if last is not None and (new.paid_at, new.order_id) <= (last.at, last.order_id):
        return None
    # As qualifications' loop would go on from its last fact: `running` added to in the same order, from
    # Decimal(0) at a new period (0 + value can differ from value in its exponent, which the stored reason shows).
    key, kept = "lifetime", None
    running = Decimal(0)
    if programme.period == "calendar_year":
        local_year = new.paid_at.astimezone(zone).year
        if last is not None and last.period_key == str(local_year):
            key, kept, running = last.period_key, last.kept_until, last.value
        else:
            key, kept = str(local_year), _year_start(local_year + 2, zone)
    elif last is not None:
        running = last.value
    running += new.value(programme.metric)
    reach = bisect_right(programme.thresholds, running)
    return [*quals, Qualification(reach, running, new.order_id, new.name, new.paid_at, key, kept)]


def _natural(fact: OrderFact) -> tuple[datetime, int]:
    """The natural order of a member's facts: by payment, then order id."""
    return fact.paid_at, fact.order_id


def tier_at(
    programme: TierProgramme,
    facts: list[OrderFact],
    now: datetime,
    zone: ZoneInfo,
    terms: list[PaidTerm] = (),  # type: ignore[assignment]
) -> str | None:
    """The tier id `status` gives, without its reasons and dates: what the preview computes for every member."""
    grace = timedelta(days=programme.grace_days)
    earned = 0
    for rank, _running, fact, _key, kept in _qualify(programme, facts, zone):
        if fact.paid_at > now:
            break
        if rank > earned and (kept is None or kept + grace > now):
            earned = rank
    return tier_with_paid(programme, earned, now, zone, terms)


def tier_with_paid(
    programme: TierProgramme,
    earned: int,
    now: datetime,
    zone: ZoneInfo,
    terms: list[PaidTerm] = (),  # type: ignore[assignment]
) -> str | None:
    """The tier id for an earned rank at `now`, with the paid tier stacked on it or replacing it while it lasts."""
    rank = earned
    if programme.paid and terms:
        paid_end = paid_until(programme, list(terms), zone)
        if paid_end is not None and paid_end > now:
            paid_rank = programme.rank(programme.paid.tier_id)
            rank = paid_rank if programme.paid.mode == "replace" else max(earned, paid_rank)
    return programme.tiers[rank - 1].tier_id if rank else None


def tiers_at_payments(
    programme: TierProgramme,
    facts: list[OrderFact],
    terms: list[PaidTerm],
    zone: ZoneInfo,
    orders: list[tuple[int, datetime]],
    quals: list[Qualification] | None = None,
) -> dict[int, tuple[int, datetime | None]]:
    """For each (order id, paid at): the rank the member held as that order was paid, before it counted, from
    every fact known now, and since when (None: unknown). `quals`: qualifications(programme, facts, zone), when
    the caller has them already. What the tier multiplier of that order uses, so an
    earlier order arriving late changes the later orders' multiplier exactly as the natural order would have."""
    grace = timedelta(days=programme.grace_days)
    if quals is None:
        quals = qualifications(programme, facts, zone)  # by (paid at, order id), as the natural order counts them
    paid_rank = programme.rank(programme.paid.tier_id) if programme.paid else 0
    # Each qualification's end with the grace added once, not once per order asked about; those below every tier
    # left out, as they never raise `earned`. Still in the natural order, so the first reaching a rank is `since`.
    ranked = [
        (q.at, q.order_id, q.rank, None if q.kept_until is None else q.kept_until + grace) for q in quals if q.rank
    ]
    out: dict[int, tuple[int, datetime | None]] = {}
    for order_id, paid_at in orders:
        before = (paid_at, order_id)
        earned, since = 0, None
        for at, q_order_id, q_rank, until in ranked:
            if at > paid_at or (at == paid_at and q_order_id >= order_id):  # (at, order id) >= before
                break
            if q_rank > earned and (until is None or until > paid_at):
                earned, since = q_rank, at
        rank = earned
        if paid_rank and terms:
            start, end = _paid_chain([t for t in terms if (t.paid_at, t.order_id) < before], zone)
            if end is not None and end > paid_at and (programme.paid.mode == "replace" or paid_rank > earned):  # type: ignore[union-attr]
                rank, since = paid_rank, start
        out[order_id] = (rank, since)
    return out


def _paid_chain(terms: list[PaidTerm], zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
    """When the current run of paid terms began and when it ends (paid_until, with its start)."""
    start: datetime | None = None
    end: datetime | None = None
    for term in sorted((t for t in terms if t.counts), key=lambda t: (t.paid_at, t.order_id)):
        if end is None or end < term.paid_at:
            start, end = term.paid_at, add_months(term.paid_at, term.months, zone)
        else:
            end = add_months(end, term.months, zone)
    return start, end


def counting_years(programme: TierProgramme, now: datetime, zone: ZoneInfo) -> list[int]:
    """Calendar-year periods whose qualifications still hold at `now`: a tier reached in year Y is kept until
    the start of year Y + 2, plus the grace period (as `_qualify` and `tier_at` say), and no later year has begun.

    Values never fall within a year (refunds are already netted in each order), so the rank a year gives at `now`
    is the rank its total up to `now` reaches: what the preview's per-member sums compute."""
    grace = timedelta(days=programme.grace_days)
    this_year = now.astimezone(zone).year
    first = this_year - 3 - programme.grace_days // 365
    return [year for year in range(first, this_year + 1) if _year_start(year + 2, zone) + grace > now]


def year_bounds(year: int, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """A shop-local calendar year as [start, end) instants in UTC."""
    return _year_start(year, zone), _year_start(year + 1, zone)


def current_value(programme: TierProgramme, facts: list[OrderFact], now: datetime, zone: ZoneInfo) -> Decimal:
    """The metric in the period that contains `now` (what progress to the next tier counts)."""

    if programme.period == "calendar_year":
        since = _year_start(now.astimezone(zone).year, zone)
        return sum((f.value(programme.metric) for f in facts if since <= f.paid_at <= now), Decimal(0))
    if programme.period == "rolling_12_months":
        since = add_months(now, -12, zone)
        return sum((f.value(programme.metric) for f in facts if since < f.paid_at <= now), Decimal(0))
    return sum((f.value(programme.metric) for f in facts if f.paid_at <= now), Decimal(0))


def period_end(programme: TierProgramme, now: datetime, zone: ZoneInfo) -> datetime | None:
    if programme.period != "calendar_year":
        return None
    return _year_start(now.astimezone(zone).year + 1, zone)


def paid_until(programme: TierProgramme, terms: list[PaidTerm], zone: ZoneInfo) -> datetime | None:
    """When the paid tier ends: each purchase that still counts extends it from the current end date."""
    end: datetime | None = None
    for term in sorted((t for t in terms if t.counts), key=lambda t: (t.paid_at, t.order_id)):
        start = term.paid_at if end is None or end < term.paid_at else end
        end = add_months(start, term.months, zone)
    return end


def status(
    programme: TierProgramme,
    facts: list[OrderFact],
    now: datetime,
    zone: ZoneInfo,
    terms: list[PaidTerm] = (),  # type: ignore[assignment]
    quals: list[Qualification] | None = None,
) -> TierStatus:
    """The member's tier at `now` from every fact known: earned (with retention and grace) and paid. `quals`:
    qualifications(programme, facts, zone), when the caller has them already."""
    grace = timedelta(days=programme.grace_days)
    quals = [q for q in (qualifications(programme, facts, zone) if quals is None else quals) if q.at <= now]
    live = [q for q in quals if q.kept_until is None or q.kept_until + grace > now]
    earned = max((q.rank for q in live), default=0)
    kept_until: datetime | None = None
    best: Qualification | None = None
    if earned:
        holding = [q for q in live if q.rank >= earned]
        forever = [q for q in holding if q.kept_until is None]
        kept_until = None if forever else max(q.kept_until for q in holding) + grace  # type: ignore[type-var]
        best = min(holding, key=lambda q: (q.at, q.order_id))
    paid_end = paid_until(programme, list(terms), zone) if programme.paid else None
    paid_live = paid_end is not None and paid_end > now
    paid_rank = programme.rank(programme.paid.tier_id) if programme.paid and paid_live else 0
    rank = paid_rank if paid_rank and programme.paid and programme.paid.mode == "replace" else max(earned, paid_rank)
    value = current_value(programme, facts, now, zone)
    tier = programme.tiers[rank - 1] if rank else None
    reason = _reason(programme, rank, earned, paid_rank, best, value, paid_end if paid_live else None, quals, now)
    return TierStatus(
        tier_id=tier.tier_id if tier else None,
        rank=rank,
        earned_rank=earned,
        kept_until=kept_until,
        paid_until=paid_end if paid_live else None,
        value=value,
        period_ends=period_end(programme, now, zone),
        reason=reason,
        qualifications=tuple(quals),
    )


def metric_text(programme: TierProgramme, value: Decimal) -> str:
    if programme.metric == "spend":
        return f"spend {value.quantize(Decimal('0.01'))}"
    unit = "points earned" if programme.metric == "points" else "paid orders"
    return f"{int(value)} {unit}"


def _reason(
    programme: TierProgramme,
    rank: int,
    earned: int,
    paid_rank: int,
    best: Qualification | None,
    value: Decimal,
    paid_end: datetime | None,
    quals: list[Qualification],
    now: datetime,
) -> str:
    if paid_rank and rank == paid_rank and (paid_rank >= earned or programme.paid.mode == "replace"):  # type: ignore[union-attr]
        return f"paid membership until {paid_end.date().isoformat()}"  # type: ignore[union-attr]
    if rank and best is not None:
        period = "" if best.period_key == "lifetime" else f" in {_period_words(programme, best)}"
        return f"{metric_text(programme, best.value)}{period} (order {best.order_name})"
    expired = [q for q in quals if q.rank > 0]
    if expired:
        return f"no qualification still kept: {metric_text(programme, value)} in the current period"
    return f"{metric_text(programme, value)}: below every tier"


def _period_words(programme: TierProgramme, qualification: Qualification) -> str:
    if programme.period == "rolling_12_months":
        return f"the 12 months to {qualification.at.date().isoformat()}"
    return qualification.period_key


@dataclass(frozen=True)
class Progress:
    """What the member still needs for the next tier, in the metric's unit, and by when (None: no deadline)."""

    next_tier: Tier
    needed: Decimal
    by: date | None


def progress(programme: TierProgramme, state: TierStatus, zone: ZoneInfo) -> Progress | None:
    """Progress to the tier above the one the member's current-period metric reaches (None at the top)."""
    reached = programme.reached(state.value)
    above = max(reached, state.earned_rank)
    if above >= len(programme.tiers):
        return None
    target = programme.tiers[above]
    by = None
    if state.period_ends is not None:
        by = (state.period_ends.astimezone(zone) - timedelta(seconds=1)).date()
    return Progress(target, max(target.threshold - state.value, Decimal(0)), by)
