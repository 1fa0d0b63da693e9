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
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import func, literal_column, select
from sqlalchemy.orm import Session

from plugin.models import Member, Order, Posting, Redemption, ReportSettings, Shop, utcnow
from plugin.programme import accounting
from plugin.programme.settings import stored_settings
from plugin.services import report_rollups
from plugin.services.errors import Invalid, summary

MAX_YEARS = 5
MAX_POINT_VALUE = Decimal("1000000")


class ReportQuerySchema(Schema):
    """A report's period (shop-local dates, both included) and, optionally, the money value of one point."""

    month = fields.String(
        validate=validate.Regexp(r"^\d{4}-(0[1-9]|1[0-2])$", error="a month as YYYY-MM"),
        metadata={"description": "a calendar month (YYYY-MM); or give start and end"},
    )
    start = fields.Date(metadata={"description": "first day, in the shop's time zone (default: 11 months back)"})
    end = fields.Date(metadata={"description": "last day, included (default: today in the shop's time zone)"})
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
)  # fmt: skip


def kpis(session: Session, shop: Shop, query: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    """The programme's figures for the period, and month by month (docs/reports.md defines each)."""
    period, moves, _value, _source = _context(session, shop, query, now)
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
    totals["active_30"] = _active(session, shop, period.end_utc, 30)
    totals["active_90"] = _active(session, shop, period.end_utc, 90)
    return {
        "shop": shop.domain,
        "currency": shop.currency,
        "period": period.to_json(),
        "totals": totals,
        "months": months,
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


def _active(session: Session, shop: Shop, end: datetime, days: int) -> int:
    """Members with a paid order in the `days` days before `end`."""
    return int(
        session.execute(
            select(func.count(func.distinct(Order.member_id))).where(
                Order.shop_id == shop.id,
                Order.paid_at >= end - timedelta(days=days),
                Order.paid_at < end,
                Order.member_id.is_not(None),
            )
        ).scalar_one()
    )
