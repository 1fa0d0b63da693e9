"""The programme's reports: liability roll-forward with its tie-out, breakage and deferred revenue, GL journal, KPIs.

Every door (admin API, CLI) loads its query with `ReportQuerySchema` and calls one function here. Figures come
from the per-day roll-ups (services/report_rollups.py) plus a few indexed queries, so each report stays within
seconds at a million members; docs/reports.md defines every figure.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import case, func, literal_column, select, text
from sqlalchemy.orm import Session

from plugin.models import (
    Member,
    Order,
    Posting,
    Redemption,
    Referral,
    ReferralVisit,
    ReportSettings,
    Shop,
    SurveyAnswer,
    TierMove,
    utcnow,
)
from plugin.programme import accounting
from plugin.programme import referrals as referral_rules
from plugin.programme.settings import stored_settings
from plugin.services import order_rollups, report_rollups
from plugin.services.errors import Invalid, summary

MAX_YEARS = 5
MAX_POINT_VALUE = Decimal("1000000")
# Dates a report can cover: near year 1 or 9999 the period's arithmetic (a month before, five years after) leaves
# Python's calendar and was a 500.
EARLIEST, LATEST = date(1970, 1, 1), date(2999, 12, 31)
_IN_RANGE = validate.Range(min=EARLIEST, max=LATEST, error=f"a date from {EARLIEST} to {LATEST}")


class ReportQuerySchema(Schema):
    """A report's period (shop-local dates, both included) and, optionally, the money value of one point."""

    month = fields.String(
        validate=validate.Regexp(r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$", error="a month as YYYY-MM"),
        metadata={"description": "a calendar month (YYYY-MM); or give start and end"},
    )
    start = fields.Date(
        validate=_IN_RANGE, metadata={"description": "first day, in the shop's time zone (default: 11 months back)"}
    )
    end = fields.Date(
        validate=_IN_RANGE, metadata={"description": "last day, included (default: today in the shop's time zone)"}
    )
    point_value = fields.Decimal(
        places=None,
        allow_nan=False,
        validate=validate.Range(min=0, min_inclusive=False, max=MAX_POINT_VALUE, error="must be greater than 0"),
        metadata={"description": "money per point for this report (default: the shop's setting, else implied)"},
    )
    deep = fields.Boolean(
        load_default=False, metadata={"description": "also sum the postings themselves for the tie-out (slow)"}
    )

    @validates_schema
    def _period(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "month" in data and ("start" in data or "end" in data):
            raise ValidationError("give a month, or start and end, not both", "month")
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise ValidationError("the end is before the start", "end")
            if end >= _years_later(start, MAX_YEARS):
                raise ValidationError(f"the range is longer than {MAX_YEARS} years", "end")


def _years_later(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class ReportSettingsSchema(Schema):
    point_value = fields.Decimal(
        required=True,
        places=None,
        allow_nan=False,
        allow_none=True,
        validate=validate.Range(min=0, min_inclusive=False, max=MAX_POINT_VALUE, error="must be greater than 0"),
        metadata={"description": "money per point; null goes back to the value implied by redeemed rewards"},
    )


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    zone: ZoneInfo

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(), self.zone)

    @property
    def end_utc(self) -> datetime:
        """The instant the period ends: midnight after its last day, in the shop's time zone."""
        return datetime.combine(self.end + timedelta(days=1), time(), self.zone)

    def to_json(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "time_zone": self.zone.key}


def load_query(data: Any) -> dict[str, Any]:
    """The query, validated: every refusal is an Invalid (400) with a message per field."""
    try:
        return ReportQuerySchema().load(data if data is not None else {})
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        raise Invalid(summary(messages), messages) from None


def find_shop(session: Session, domain: str) -> Shop:
    shop = session.execute(select(Shop).where(Shop.domain == domain)).scalar_one_or_none()
    if shop is None:
        raise Invalid(f"shop: no shop {domain}", {"shop": [f"no shop {domain}"]})
    return shop


def period_of(shop: Shop, query: dict[str, Any], now: datetime | None = None) -> Period:
    zone = ZoneInfo(shop.time_zone or "UTC")
    today = (now or utcnow()).astimezone(zone).date()
    if "month" in query:
        first = date.fromisoformat(query["month"] + "-01")
        return Period(first, accounting.month_end(first), zone)
    end = query.get("end") or today
    start = query.get("start") or accounting.add_months(accounting.month_of(end), -11)
    if end < start:
        raise Invalid("end: the end is before the start", {"end": ["the end is before the start"]})
    if end >= _years_later(start, MAX_YEARS):
        raise Invalid(f"end: the range is longer than {MAX_YEARS} years", {"end": ["the range is too long"]})
    return Period(start, end, zone)


# Point value ----------------------------------------------------------------------------------------------------


def point_value(session: Session, shop: Shop, query: dict[str, Any], period: Period) -> tuple[Decimal, str]:
    """The money value of one point and where it comes from: this query, the merchant's setting, the fixed-amount
    rewards redeemed up to the period's end (amount / points), the catalogue's fixed-amount rewards, or none (0)."""
    if query.get("point_value") is not None:
        return Decimal(query["point_value"]), "query"
    chosen = session.get(ReportSettings, shop.id)
    if chosen is not None and chosen.point_value is not None:
        return Decimal(chosen.point_value).normalize(), "merchant"
    issued = (
        select(Redemption.reward["amount"].as_string().label("amount"), Redemption.points)
        .where(
            Redemption.shop_id == shop.id,
            Redemption.status == "issued",
            Redemption.reward["kind"].as_string() == "fixed_amount",
            Redemption.created_at < period.end_utc,
        )
        .subquery()
    )
    redeemed = session.execute(
        select(issued.c.amount, func.sum(issued.c.points), func.count()).group_by(issued.c.amount)
    ).all()
    amount = sum((Decimal(each) * count for each, _points, count in redeemed if each), Decimal(0))
    points = sum(int(each_points) for _amount, each_points, _count in redeemed)
    if points:
        return _per_point(amount, points), "redemptions"
    catalogue = [
        reward for reward in stored_settings(shop.settings).get("rewards", []) if reward.get("kind") == "fixed_amount"
    ]
    amount = sum((Decimal(str(reward["amount"])) for reward in catalogue if reward.get("amount")), Decimal(0))
    points = sum(int(reward.get("points") or 0) for reward in catalogue if reward.get("amount"))
    if points:
        return _per_point(amount, points), "catalogue"
    return Decimal(0), "none"


def _per_point(amount: Decimal, points: int) -> Decimal:
    return (amount / points).quantize(Decimal("0.000001")).normalize()


def save_settings(session: Session, shop: Shop, data: Any) -> dict[str, Any]:
    try:
        clean = ReportSettingsSchema().load(data if data is not None else {})
    except ValidationError as error:
        raise Invalid(summary(error.messages), error.messages) from None
    row = session.get(ReportSettings, shop.id)
    if row is None:
        row = ReportSettings(shop_id=shop.id)
        session.add(row)
    row.point_value = clean["point_value"]
    row.updated_at = utcnow()
    return {"point_value": None if clean["point_value"] is None else str(clean["point_value"])}


def settings_of(session: Session, shop: Shop) -> dict[str, Any]:
    row = session.get(ReportSettings, shop.id)
    value = None if row is None or row.point_value is None else str(Decimal(row.point_value).normalize())
    return {"point_value": value}


# Liability ------------------------------------------------------------------------------------------------------


def _context(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None):
    period = period_of(shop, query, now)
    moves = accounting.movements(report_rollups.days(session, shop))
    value, source = point_value(session, shop, query, period)
    return period, moves, value, source


def _points_money(points: int, value: Decimal, currency: str | None) -> dict[str, Any]:
    return {"points": points, "money": str(accounting.money(points, value, currency))}


def liability(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The roll-forward for the period, in points and money, with the tie-out and the pending points."""
    period, moves, value, source = _context(session, shop, query, now)
    flow = accounting.roll_forward(moves, period.start, period.end)
    currency = shop.currency
    lines = [
        {"line": line, "label": accounting.label(line), **_points_money(points, value, currency)}
        for line, points in flow.lines.items()
    ]
    return {
        "shop": shop.domain,
        "currency": currency,
        "period": period.to_json(),
        "point_value": str(value),
        "point_value_source": source,
        "opening": _points_money(flow.opening, value, currency),
        "issued": _points_money(flow.issued, value, currency),
        "lines": lines,
        "closing": _points_money(flow.closing, value, currency),
        "pending": _points_money(pending_at(session, shop, period.end_utc), value, currency),
        "tie_out": tie_out(session, shop, moves, period, deep=bool(query.get("deep"))),
    }


def pending_at(session: Session, shop: Shop, instant: datetime) -> int:
    """Points posted before `instant` still held back then (an earn whose order's hold had not ended)."""
    return int(
        session.execute(
            select(func.coalesce(func.sum(Posting.points), 0)).where(
                Posting.shop_id == shop.id,
                Posting.available_at.is_not(None),
                Posting.available_at > instant,
                Posting.created_at < instant,
            )
        ).scalar_one()
    )


def tie_out(
    session: Session, shop: Shop, moves: list[accounting.Movement], period: Period, deep: bool = False
) -> dict[str, Any]:
    """The closing figure against the ledger: closing + everything posted since = the sum of all cached balances,
    which the database holds equal to the sum of the postings (migration 0008). `deep` also sums the postings
    made before the period's end directly."""
    closing = sum(m.points for m in moves if m.day <= period.end)
    after = sum(m.points for m in moves if m.day > period.end)
    balances = int(
        session.execute(
            select(func.coalesce(func.sum(Member.balance), 0)).where(Member.shop_id == shop.id)
        ).scalar_one()
    )
    result: dict[str, Any] = {
        "closing": closing,
        "posted_after_end": after,
        "ledger_balances": balances,
        "difference": closing + after - balances,
    }
    ok = result["difference"] == 0
    if deep:
        summed = int(
            session.execute(
                select(func.coalesce(func.sum(Posting.points), 0)).where(
                    Posting.shop_id == shop.id, Posting.created_at < period.end_utc
                )
            ).scalar_one()
        )
        result["postings_before_end"] = summed
        result["deep_difference"] = closing - summed
        ok = ok and summed == closing
    result["ok"] = ok
    result["message"] = (
        "closing ties out to the ledger exactly"
        if ok
        else "closing does NOT tie out to the ledger: run `loyalty reports rebuild` and report a bug"
    )
    return result


# Breakage, deferred revenue, journal ----------------------------------------------------------------------------


def _rate(rate: Decimal | None) -> str | None:
    return None if rate is None else str(rate)


def breakage(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """Breakage cohorts (12 and 24 months) up to the period's end, and the contract liability at that end."""
    period, moves, value, source = _context(session, shop, query, now)
    result = accounting.breakage(accounting.month_flows(moves, period.end), period.end)
    closing = sum(m.points for m in moves if m.day <= period.end)
    return {
        "shop": shop.domain,
        "currency": shop.currency,
        "period": period.to_json(),
        "point_value": str(value),
        "point_value_source": source,
        "breakage_12": _rate(result.rate_12),
        "breakage_24": _rate(result.rate_24),
        "expected_breakage": str(result.expected),
        "basis": result.basis,
        "outstanding_points": closing,
        "contract_liability": str(accounting.contract_liability(closing, value, result.expected, shop.currency)),
        "cohorts": [
            {
                "month": cohort.month.isoformat()[:7],
                "issued": cohort.issued,
                "redeemed_12": cohort.redeemed_12,
                "redeemed_24": cohort.redeemed_24,
                "breakage_12": _rate(cohort.breakage_12),
                "breakage_24": _rate(cohort.breakage_24),
            }
            for cohort in result.cohorts
        ],
    }


def journal(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    period, moves, value, source = _context(session, shop, query, now)
    result = accounting.breakage(accounting.month_flows(moves, period.end), period.end)
    lines = accounting.journal(moves, period.start, period.end, value, result.expected, shop.currency)
    return {
        "shop": shop.domain,
        "currency": shop.currency,
        "period": period.to_json(),
        "point_value": str(value),
        "point_value_source": source,
        "expected_breakage": str(result.expected),
        "lines": [
            {
                "date": line.day.isoformat(),
                "account": line.account,
                "debit": str(line.debit),
                "credit": str(line.credit),
                "memo": line.memo,
            }
            for line in lines
        ],
    }


JOURNAL_COLUMNS = ("date", "account", "debit", "credit", "memo")


def to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> str:
    """Rows as CSV; a cell a spreadsheet would run as a formula is prefixed with a quote."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "@", "\t", "\r") and not _is_number(value):
        return "'" + value
    return "" if value is None else value


def _is_number(text: str) -> bool:
    try:
        Decimal(text)
    except ArithmeticError:
        return False
    return True


# KPIs -----------------------------------------------------------------------------------------------------------


KPI_COLUMNS = (
    "month", "members", "new_members", "points_issued", "points_redeemed", "points_expired", "redemption_rate",
    "nps", "nps_responses", "nps_promoters", "nps_detractors",
)  # fmt: skip


def kpis(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The programme's figures for the period, and month by month (docs/reports.md defines each)."""
    period, moves, value, _source = _context(session, shop, query, now)
    enrolled = _members_by_month(session, shop, period)
    months = []
    month = accounting.month_of(period.start)
    while month <= period.end:
        first, last = max(month, period.start), min(accounting.month_end(month), period.end)
        months.append(
            {"month": month.isoformat()[:7], **_points_kpis(moves, first, last), **_members_kpis(enrolled, first, last)}
        )
        month = accounting.add_months(month, 1)
    totals = {**_points_kpis(moves, period.start, period.end), **_members_kpis(enrolled, period.start, period.end)}
    totals.update(_buyers(session, shop, period))
    totals.update(_roi(session, shop, period, value))
    answers = _nps_answers(session, shop, period)
    totals.update(_nps(score for _month, score in answers))
    for entry in months:
        entry.update(_nps(score for month, score in answers if month.isoformat()[:7] == entry["month"]))
    return {
        "shop": shop.domain,
        "currency": shop.currency,
        "period": period.to_json(),
        "totals": totals,
        "months": months,
        "tiers": _tiers(session, shop, period),
        "referrals": _referral_funnel(session, shop, period),
    }


def _points_kpis(moves: list[accounting.Movement], first: date, last: date) -> dict[str, Any]:
    flow = accounting.roll_forward(moves, first, last)
    issued = flow.issued
    redeemed = -(flow.lines.get("redeemed", 0) + flow.lines.get("returned", 0))
    return {
        "points_issued": issued,
        "points_redeemed": redeemed,
        "points_expired": -flow.lines.get("expired", 0),
        "redemption_rate": str((Decimal(redeemed) / issued).quantize(accounting.RATE_PLACES)) if issued > 0 else "0",
    }


def _members_by_month(session: Session, shop: Shop, period: Period) -> dict[date, int]:
    """Members enrolled per shop-local month, up to the period's end."""
    counts: dict[date, int] = {}
    scope = (Member.shop_id == shop.id, Member.enrolled_at < period.end_utc)
    if session.get_bind().dialect.name != "postgresql":
        for enrolled_at in session.scalars(select(Member.enrolled_at).where(*scope)):
            month = accounting.month_of(enrolled_at.astimezone(period.zone).date())
            counts[month] = counts.get(month, 0) + 1
        return counts
    month = func.date_trunc(literal_column("'month'"), func.timezone(period.zone.key, Member.enrolled_at))
    enrolled = select(month.label("month")).where(*scope).subquery()
    for first, count in session.execute(select(enrolled.c.month, func.count()).group_by(enrolled.c.month)):
        counts[first.date()] = count
    return counts


def _members_kpis(enrolled: dict[date, int], first: date, last: date) -> dict[str, int]:
    return {
        "members": sum(count for month, count in enrolled.items() if month <= last),
        "new_members": sum(count for month, count in enrolled.items() if accounting.month_of(first) <= month <= last),
    }


def _buyers(session: Session, shop: Shop, period: Period) -> dict[str, Any]:
    """Active members, and repeat purchase and AOV of redeemers and the others (docs/reports.md).

    PostgreSQL reads the per-member monthly roll-up (services/order_rollups.py), bounded by members and months
    rather than orders; SQLite, without the roll-up's trigger, reads the orders."""
    if session.get_bind().dialect.name != "postgresql":
        return _buyers_from_orders(session, shop, period)
    found = order_rollups.buyers(session, shop.id, period.start, period.end, period.zone, 30, 90)
    result: dict[str, Any] = {"active_30": found.active_recent, "active_90": found.active}
    for name, group in (("redeemers", found.redeemers), ("non_redeemers", found.others)):
        result[f"buyers_{name}"] = group.buyers
        result[f"repeat_rate_{name}"] = _ratio(group.repeaters, group.buyers)
        result[f"orders_{name}"] = group.orders
        result[f"aov_{name}"] = (
            str(accounting.round_money(group.sales / group.orders, shop.currency)) if group.orders else "0"
        )
    return result


def _buyers_from_orders(session: Session, shop: Shop, period: Period) -> dict[str, Any]:
    """One pass over the paid orders from 90 days before the end (or the start, if earlier) to the end, per member:
    active in the last 30 / 90 days, and for the period's orders, repeat purchase and AOV of redeemers (members
    with a reward issued before the end) and of the others."""
    end = period.end_utc
    since = min(period.start_utc, end - timedelta(days=90))
    in_period = Order.paid_at >= period.start_utc
    per_member = (
        select(
            Order.member_id.label("member_id"),
            func.count().filter(in_period).label("orders"),
            func.coalesce(func.sum(Order.sales).filter(in_period), 0).label("sales"),
            func.max(case((Order.paid_at >= end - timedelta(days=30), 1), else_=0)).label("active_30"),
            func.max(case((Order.paid_at >= end - timedelta(days=90), 1), else_=0)).label("active_90"),
        )
        .where(Order.shop_id == shop.id, Order.member_id.is_not(None), Order.paid_at >= since, Order.paid_at < end)
        .group_by(Order.member_id)
        .subquery()
    )
    redeemers = (
        select(Redemption.member_id.label("member_id"))
        .where(Redemption.shop_id == shop.id, Redemption.status == "issued", Redemption.created_at < end)
        .distinct()
        .subquery()
    )
    redeemer = redeemers.c.member_id.is_not(None)
    if session.get_bind().dialect.name == "postgresql":
        # One group per buyer (a million in a big shop): hashed in memory rather than spilled to disk.
        session.execute(text("SET LOCAL work_mem = '256MB'"))
    rows = session.execute(
        select(
            redeemer.label("redeemer"),
            func.count().filter(per_member.c.orders >= 1),
            func.count().filter(per_member.c.orders >= 2),
            func.coalesce(func.sum(per_member.c.orders), 0),
            func.coalesce(func.sum(per_member.c.sales), 0),
            func.coalesce(func.sum(per_member.c.active_30), 0),
            func.coalesce(func.sum(per_member.c.active_90), 0),
        )
        .select_from(per_member.outerjoin(redeemers, redeemers.c.member_id == per_member.c.member_id))
        .group_by(redeemer)
    ).all()
    groups = {True: [0, 0, 0, Decimal(0)], False: [0, 0, 0, Decimal(0)]}
    active = [0, 0]
    for is_redeemer, buyers, repeaters, orders, sales, active_30, active_90 in rows:
        groups[bool(is_redeemer)] = [int(buyers), int(repeaters), int(orders), Decimal(sales)]
        active[0] += int(active_30)
        active[1] += int(active_90)
    result: dict[str, Any] = {"active_30": active[0], "active_90": active[1]}
    for name, is_redeemer in (("redeemers", True), ("non_redeemers", False)):
        buyers, repeaters, orders, sales = groups[is_redeemer]
        result[f"buyers_{name}"] = buyers
        result[f"repeat_rate_{name}"] = _ratio(repeaters, buyers)
        result[f"orders_{name}"] = orders
        result[f"aov_{name}"] = str(accounting.round_money(sales / orders, shop.currency)) if orders else "0"
    return result


def _ratio(part: int, whole: int) -> str:
    return str((Decimal(part) / whole).quantize(accounting.RATE_PLACES, ROUND_HALF_UP)) if whole else "0"


def _roi(session: Session, shop: Shop, period: Period, value: Decimal) -> dict[str, Any]:
    """Sales of the period's orders that used a loyalty reward code, against what those rewards cost: a fixed
    amount's amount, else the points spent at the point value.

    Grouped by the database per reward kind and amount (a big shop's reward orders are hundreds of thousands; the
    groups are the catalogue's few amounts), then costed here in Decimal: amount x orders, points x value."""
    kind, amount = Redemption.reward["kind"].as_string(), Redemption.reward["amount"].as_string()
    rows = session.execute(
        select(kind, amount, func.count(), func.coalesce(func.sum(func.coalesce(Order.sales, 0)), 0),
               func.coalesce(func.sum(Redemption.points), 0))
        .join(Redemption, (Redemption.shop_id == Order.shop_id) & (Redemption.code == Order.reward_code))
        .where(
            Order.shop_id == shop.id,
            Order.reward_code.is_not(None),
            Order.paid_at >= period.start_utc,
            Order.paid_at < period.end_utc,
        )
        .group_by(kind, amount)
    ).all()  # fmt: skip
    reward_orders, revenue, cost = 0, Decimal(0), Decimal(0)
    for reward_kind, reward_amount, orders, sales, points in rows:
        reward_orders += int(orders)
        revenue += Decimal(sales)
        fixed = reward_kind == "fixed_amount" and reward_amount
        cost += Decimal(reward_amount) * int(orders) if fixed else Decimal(int(points)) * value
    cost = accounting.round_money(cost, shop.currency)
    return {
        "reward_orders": reward_orders,
        "reward_order_revenue": str(accounting.round_money(revenue, shop.currency)),
        "reward_cost": str(cost),
        "roi": str((revenue / cost).quantize(Decimal("0.01"), ROUND_HALF_UP)) if cost else None,
    }


def _nps_answers(session: Session, shop: Shop, period: Period) -> list[tuple[date, int]]:
    """The 0-10 survey answers of the period: (shop-local month, score)."""
    rows = session.execute(
        select(SurveyAnswer.answered_at, SurveyAnswer.score).where(
            SurveyAnswer.shop_id == shop.id,
            SurveyAnswer.score.is_not(None),
            SurveyAnswer.answered_at >= period.start_utc,
            SurveyAnswer.answered_at < period.end_utc,
        )
    )
    return [(accounting.month_of(at.astimezone(period.zone).date()), int(score)) for at, score in rows]


def _nps(scores) -> dict[str, Any]:
    """Net Promoter Score: % of 9-10 answers minus % of 0-6 answers, rounded half up; None without answers."""
    counted = [0, 0, 0]  # detractors, passives, promoters
    for score in scores:
        counted[0 if score <= 6 else 1 if score <= 8 else 2] += 1
    responses = sum(counted)
    score = None
    if responses:
        score = int((Decimal(100 * (counted[2] - counted[0])) / responses).quantize(Decimal(1), ROUND_HALF_UP))
    return {"nps": score, "nps_responses": responses, "nps_promoters": counted[2], "nps_detractors": counted[0]}


def _tiers(session: Session, shop: Shop, period: Period) -> dict[str, Any]:
    """Members per tier now, and the tier moves of the period: up, down, and each (from, to) pair."""
    programme = [tier for tier in (shop.tiers or {}).get("tiers", []) if isinstance(tier, dict)]
    rank = {tier.get("id"): n + 1 for n, tier in enumerate(programme)}  # no tier ranks 0
    names = {tier.get("id"): tier.get("name") or tier.get("id") for tier in programme}
    counted = dict(
        session.execute(select(Member.tier, func.count()).where(Member.shop_id == shop.id).group_by(Member.tier)).all()
    )
    distribution = [
        {"tier": tier_id, "name": names.get(tier_id, tier_id or "no tier"), "members": counted.get(tier_id, 0)}
        for tier_id in [None, *rank]
    ]
    distribution += [
        {"tier": tier_id, "name": tier_id, "members": count}
        for tier_id, count in counted.items()
        if tier_id is not None and tier_id not in rank
    ]
    pairs = session.execute(
        select(TierMove.from_tier, TierMove.to_tier, func.count())
        .where(
            TierMove.shop_id == shop.id,
            TierMove.occurred_at >= period.start_utc,
            TierMove.occurred_at < period.end_utc,
        )
        .group_by(TierMove.from_tier, TierMove.to_tier)
    ).all()
    up = sum(count for old, new, count in pairs if rank.get(new, 0) > rank.get(old, 0))
    down = sum(count for old, new, count in pairs if rank.get(new, 0) < rank.get(old, 0))
    return {
        "distribution": distribution,
        "moves": sum(count for _old, _new, count in pairs),
        "moves_up": up,
        "moves_down": down,
        "moves_by_pair": [
            {"from": old, "to": new, "members": count} for old, new, count in sorted(pairs, key=lambda p: -p[2])
        ],
    }


def _referral_funnel(session: Session, shop: Shop, period: Period) -> dict[str, int]:
    """The period's referral funnel: links opened, friends' codes issued, friends' first orders, and of those the
    qualified ones, rewards given (points posted), blocked, void (cancelled) and reversed (refunded)."""
    visits = session.execute(
        select(func.count(), func.count().filter(ReferralVisit.code_status == "issued")).where(
            ReferralVisit.shop_id == shop.id,
            ReferralVisit.created_at >= period.start_utc,
            ReferralVisit.created_at < period.end_utc,
        )
    ).one()
    counted = {"qualified": 0, "rewarded": 0, "blocked": 0, "void": 0, "reversed": 0, "first_orders": 0}
    rows = session.execute(
        select(Referral.status, Referral.block_reason, func.count(), func.count().filter(Referral.points_held > 0))
        .where(
            Referral.shop_id == shop.id,
            Referral.ordered_at >= period.start_utc,
            Referral.ordered_at < period.end_utc,
        )
        .group_by(Referral.status, Referral.block_reason)
    )
    for status, reason, count, rewarded in rows:
        if reason != referral_rules.NOT_FIRST_ORDER:
            counted["first_orders"] += count
        if status in counted:
            counted[status] += count
        counted["rewarded"] += rewarded if status == referral_rules.QUALIFIED else 0
    return {"links_opened": int(visits[0]), "friend_codes_issued": int(visits[1]), **counted}
