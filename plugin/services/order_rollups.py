"""Paid orders per member and shop-local month (PostgreSQL): the KPIs' buyers and active members, and the rebuild.

The rows are written by triggers on `orders` (migration 0028), recounted from the orders under the row's lock;
a period's whole months are read from them and only its cut months (a range that starts or ends mid-month) from
the orders themselves. Docs: docs/reports.md (KPIs), docs/decisions/0023-programme-accounting.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from plugin.programme import accounting


@dataclass(frozen=True)
class BuyerGroup:
    """The buyers of a period on one side of the redeemer line: how many, how many bought twice, orders, sales."""

    buyers: int
    repeaters: int
    orders: int
    sales: Decimal


def _instant(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), zone)


def _whole_months(start: date, end_exclusive: date) -> tuple[date, date]:
    """The months lying wholly in [start, end_exclusive), as [first, past): empty when first >= past."""
    first = start if start.day == 1 else accounting.add_months(accounting.month_of(start), 1)
    return first, accounting.month_of(end_exclusive)


# Whether a month row holds an order in [:{name}_from, :past): one of its first and last orders does, or, when
# the window lies strictly between them (both window ends inside that month), one of the member's orders of it.
# OFFSET 0 keeps that look-up a per-row index probe: without it the planner may turn it into a hash of every order.
_IN_WINDOW = """
    (first_paid_at < :past AND last_paid_at >= :{name}_from AND (
        first_paid_at >= :{name}_from OR last_paid_at < :past OR EXISTS (
            SELECT 1 FROM orders o WHERE o.shop_id = m.shop_id AND o.member_id = m.member_id
            AND o.paid_at >= :{name}_from AND o.paid_at < :past OFFSET 0)))
"""

# The period's cut months (head and tail) come from the orders; their month rows count for activity only.
_PERIOD_ROWS = """
    SELECT member_id, {month_orders}, {month_extra} FROM member_order_months m
    WHERE shop_id = :shop AND month >= :rows_from AND month < :rows_past
    UNION ALL
    SELECT member_id, 1, {order_extra} FROM orders
    WHERE shop_id = :shop AND member_id IS NOT NULL AND paid_at >= :head_from AND paid_at < :head_past
    UNION ALL
    SELECT member_id, 1, {order_extra} FROM orders
    WHERE shop_id = :shop AND member_id IS NOT NULL AND paid_at >= :tail_from AND paid_at < :tail_past
"""

_REDEEMERS = """
    SELECT DISTINCT member_id FROM redemptions
    WHERE shop_id = :shop AND status = 'issued' AND created_at < :past
"""

# Per member, integers and flags only (a numeric sum per member doubled the time at 1M members), sorted rather
# than hashed (the planner cannot estimate the members behind a UNION, and a million hashed groups spill).
MEMBERS = text(
    f"""
    WITH rows AS ({
        _PERIOD_ROWS.format(
            month_orders="CASE WHEN month >= :whole_from AND month < :whole_past THEN orders::int ELSE 0 END",
            month_extra=_IN_WINDOW.format(name="recent") + " AS recent, " + _IN_WINDOW.format(name="window"),
            order_extra="false, false",
        )
    }),
    per_member AS (
        SELECT member_id, sum(orders) AS bought, bool_or(recent) AS recent, bool_or(lately) AS active
        FROM rows AS r (member_id, orders, recent, lately) GROUP BY member_id
    ),
    redeemers AS ({_REDEEMERS})
    SELECT count(*) FILTER (WHERE bought >= 1 AND r.member_id IS NOT NULL),
           count(*) FILTER (WHERE bought >= 2 AND r.member_id IS NOT NULL),
           count(*) FILTER (WHERE bought >= 1 AND r.member_id IS NULL),
           count(*) FILTER (WHERE bought >= 2 AND r.member_id IS NULL),
           count(*) FILTER (WHERE recent), count(*) FILTER (WHERE active)
    FROM per_member p LEFT JOIN redeemers r ON r.member_id = p.member_id
    """
)

# Orders and sales of redeemers and the others: summed per row, never per member.
SALES = text(
    f"""
    WITH rows AS ({_PERIOD_ROWS.format(month_orders="orders", month_extra="sales", order_extra="coalesce(sales, 0)")}),
    redeemers AS ({_REDEEMERS})
    SELECT coalesce(sum(orders) FILTER (WHERE r.member_id IS NOT NULL), 0),
           coalesce(sum(sales) FILTER (WHERE r.member_id IS NOT NULL), 0),
           coalesce(sum(orders) FILTER (WHERE r.member_id IS NULL), 0),
           coalesce(sum(sales) FILTER (WHERE r.member_id IS NULL), 0)
    FROM rows AS x (member_id, orders, sales) LEFT JOIN redeemers r ON r.member_id = x.member_id
    """
)


@dataclass(frozen=True)
class Buyers:
    """The KPIs' figures about members who buy: by redeemer or not, and active in the two windows."""

    redeemers: BuyerGroup
    others: BuyerGroup
    active_recent: int
    active: int


def buyers(
    session: Session, shop_id: int, start: date, end: date, zone: ZoneInfo, recent_days: int = 30, days: int = 90
) -> Buyers:
    """Members with a paid order in the local days [start, end], split by redeemer (a reward issued before the
    end), and members with a paid order in the `recent_days` / `days` before the end.

    Whole months are read from the roll-up, the cut months at either edge of the period from the orders."""
    past = end + timedelta(days=1)
    whole_from, whole_past = _whole_months(start, past)
    if whole_from >= whole_past:  # no whole month: every day of the period is read from the orders
        whole_from = whole_past = accounting.month_of(start)
        head, tail = (start, past), (past, past)
    else:
        head, tail = (start, whole_from), (whole_past, past)
    past_instant = _instant(past, zone)
    window_from = past_instant - timedelta(days=days)
    window_month = accounting.month_of(window_from.astimezone(zone).date())
    params = {
        "shop": shop_id,
        "whole_from": whole_from,
        "whole_past": whole_past,
        "head_from": _instant(head[0], zone),
        "head_past": _instant(head[1], zone),
        "tail_from": _instant(tail[0], zone),
        "tail_past": _instant(tail[1], zone),
        "past": past_instant,
        "recent_from": past_instant - timedelta(days=recent_days),
        "window_from": window_from,
        "rows_from": min(whole_from, window_month),
        "rows_past": accounting.add_months(accounting.month_of(end), 1),
    }
    # For these two statements only: sort in memory; no JIT (its compile time, a second at 1M rows, is spent
    # on the EXISTS look-ups the planner costs high and that run only for a window cut inside one month).
    for setting in ("enable_hashagg = off", "jit = off", "work_mem = '256MB'"):
        session.execute(text(f"SET LOCAL {setting}"))
    counts = session.execute(MEMBERS, params).one()
    session.execute(text("RESET enable_hashagg"))
    sales = session.execute(SALES, {**params, "rows_from": whole_from, "rows_past": whole_past}).one()
    for setting in ("jit", "work_mem", "enable_hashagg"):
        session.execute(text(f"RESET {setting}"))
    return Buyers(
        redeemers=BuyerGroup(int(counts[0]), int(counts[1]), int(sales[0]), Decimal(sales[1])),
        others=BuyerGroup(int(counts[2]), int(counts[3]), int(sales[2]), Decimal(sales[3])),
        active_recent=int(counts[4]),
        active=int(counts[5]),
    )


REBUILD = text(
    """
    INSERT INTO member_order_months (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
    SELECT :shop, member_id, date_trunc('month', paid_at AT TIME ZONE :zone)::date,
           count(*), coalesce(sum(sales), 0), min(paid_at), max(paid_at)
    FROM orders WHERE shop_id = :shop AND paid_at IS NOT NULL AND member_id IS NOT NULL
    GROUP BY 2, 3
    """
)


def rebuild(session: Session, shop_id: int, time_zone: str) -> None:
    """Recount the shop's member-month rows from its orders (after a change of time zone, a restore, a repair).

    Order writers' triggers wait for this transaction (a lock on the table), then recount their rows afresh."""
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("LOCK TABLE member_order_months IN SHARE ROW EXCLUSIVE MODE"))
    session.execute(text("DELETE FROM member_order_months WHERE shop_id = :shop"), {"shop": shop_id})
    session.execute(REBUILD, {"shop": shop_id, "zone": time_zone})
