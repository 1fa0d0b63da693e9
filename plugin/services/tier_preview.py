"""Who moves: a proposed tier programme replayed over the shop's real order history before it is saved.

Reads every member's order facts once (a stream ordered by member), computes each member's tier under the
proposal at one instant, and compares it with the tier the member holds now. Saves nothing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.orm import Session

from plugin.models import Member, Order, Refund, Shop, TierPurchase, UTCDateTime, utcnow
from plugin.programme import tiers as tier_rules
from plugin.services import lot_reads, tier_sets, tiers
from plugin.services.shops import zone

DEFAULT_SECONDS = 60.0


def preview(
    session: Session, shop: Shop, proposed: Any, *, now: datetime | None = None, seconds: float = DEFAULT_SECONDS
) -> dict[str, Any]:
    """Members up, down and unchanged per tier if `proposed` were applied now; raises Invalid on bad input."""
    clean = tier_sets.validate(session, shop.id, proposed)
    candidate = tier_rules.TierProgramme.from_json(clean, shop.tiers_version + 1)
    current = tiers.programme(shop)
    now = now or utcnow()
    deadline = time.monotonic() + seconds
    shop_zone = zone(shop)
    held = dict(session.execute(select(Member.id, Member.tier).where(Member.shop_id == shop.id)).all())
    terms = _terms(session, shop.id, candidate)
    if session.get_bind().dialect.name == "postgresql" and candidate.period in SUMMED_PERIODS:
        after, complete = _after_from_sums(session, shop.id, candidate, now, shop_zone, terms, deadline)
    else:
        after, complete = _after_from_facts(session, shop.id, candidate, now, shop_zone, terms, deadline)
    return _summary(current, candidate, held, after, complete)


def _after_from_facts(
    session: Session,
    shop_id: int,
    candidate: tier_rules.TierProgramme,
    now: datetime,
    shop_zone,
    terms: dict[int, list],
    deadline: float,
) -> tuple[dict[int, str | None], bool]:
    """Each member's tier under `candidate` from their order facts, streamed by member and run through tier_at."""
    on_postgresql = session.get_bind().dialect.name == "postgresql"
    # Refund facts in Python only where the query cannot stand in for them (SQLite, or refunded points).
    refunds = _refunds_by_order(session, shop_id) if not on_postgresql or candidate.metric == "points" else {}
    after: dict[int, str | None] = {}
    complete = True
    member: int | None = None
    facts: list[tier_rules.OrderFact] = []
    stream = _facts_stream(session, shop_id, refunds, candidate.metric)
    for count, (member_id, fact) in enumerate(stream):
        if count % 4096 == 0 and time.monotonic() > deadline:
            complete = False
            stream.close()
            break
        if member_id != member:
            if member is not None:
                after[member] = tier_rules.tier_at(candidate, facts, now, shop_zone, terms.get(member, []))
            member, facts = member_id, []
        facts.append(fact)
    if complete and member is not None:
        after[member] = tier_rules.tier_at(candidate, facts, now, shop_zone, terms.get(member, []))
    if complete:
        for member_id in terms.keys() - after.keys():  # bought the paid tier, no order counted
            after[member_id] = tier_rules.tier_at(candidate, [], now, shop_zone, terms[member_id])
    return after, complete


# Periods whose rank is the rank of a sum per member and period (lifetime: one sum; calendar year: one per year
# still counting). A rolling 12 months' rank is the best of sliding windows, which stays with tier_at.
SUMMED_PERIODS = ("lifetime", "calendar_year")


def _after_from_sums(
    session: Session,
    shop_id: int,
    candidate: tier_rules.TierProgramme,
    now: datetime,
    shop_zone,
    terms: dict[int, list],
    deadline: float,
) -> tuple[dict[int, str | None], bool]:
    """Each member's tier under `candidate` from the metric summed per member and period in PostgreSQL.

    The same values as `_after_from_facts` (the LOT_VALUES query per order), grouped by the database instead of
    turned into 300,000 OrderFacts; under the points metric a refunded order's points still need the lot's
    per-contribution reversal, so those orders are computed in Python and added to their member's sums."""
    years = tier_rules.counting_years(candidate, now, shop_zone) if candidate.period == "calendar_year" else []
    bounds = {}
    period_cases = []
    for index, year in enumerate(years):
        bounds[f"start_{index}"], bounds[f"end_{index}"] = tier_rules.year_bounds(year, shop_zone)
        period_cases.append(f"WHEN v.paid_at >= :start_{index} AND v.paid_at < :end_{index} THEN {index}")
    period = "0" if candidate.period == "lifetime" else f"CASE {' '.join(period_cases)} END" if years else "NULL"
    in_python = candidate.metric == "points"  # refunded orders' points: see above
    query = text(
        SUMS.format(lot_values=LOT_VALUE_ROWS, value=METRIC_VALUES[candidate.metric], period=period)
    ).bindparams(*(bindparam(name, type_=UTCDateTime()) for name in bounds))
    session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    # EXPLAIN ANALYZE on the bench's 300,000 orders: JIT compilation took 1.7 s of 8.1 (a one-off query gains
    # nothing from it), and with the default 4 MB of work_mem the grouping sorted on disk; both for this
    # transaction only: 8.1 -> 6.5 s.
    session.execute(text("SET LOCAL jit = off"))
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    rows = session.execute(
        query,
        {"shop_id": shop_id, "need_points": in_python, "now": now,
         "skip_refunded": in_python, **bounds},
        execution_options={"yield_per": 5000},
    )  # fmt: skip
    sums: dict[int, dict[int, list]] = defaultdict(dict)  # member -> period -> [orders counted, value]
    complete = True
    for count, (member_id, period_index, orders, value) in enumerate(rows):
        if count % 4096 == 0 and time.monotonic() > deadline:
            complete = False
            rows.close()
            break
        periods = sums[member_id]
        if period_index is not None and orders:
            periods[period_index] = [orders, value]
    if complete and in_python:
        for member_id, fact in _refunded_facts(session, shop_id, candidate.metric):
            periods = sums[member_id]
            index = _period_index(candidate, years, fact.paid_at, now, shop_zone)
            if index is None or not fact.counts:
                continue
            counted = periods.setdefault(index, [0, Decimal(0)])
            counted[0] += 1
            counted[1] += fact.value(candidate.metric)
    after: dict[int, str | None] = {}
    if not complete:
        return after, complete
    for member_id, periods in sums.items():
        earned = max((candidate.reached(Decimal(value)) for _, value in periods.values()), default=0)
        after[member_id] = tier_rules.tier_with_paid(candidate, earned, now, shop_zone, terms.get(member_id, []))
    for member_id in terms.keys() - after.keys():  # bought the paid tier, no order counted
        after[member_id] = tier_rules.tier_with_paid(candidate, 0, now, shop_zone, terms[member_id])
    return after, complete


def _period_index(
    candidate: tier_rules.TierProgramme, years: list[int], paid_at: datetime, now: datetime, shop_zone
) -> int | None:
    """The SQL's period number for one order (None: paid after `now`, or in a year that no longer counts)."""
    if paid_at > now:
        return None
    if candidate.period == "lifetime":
        return 0
    year = paid_at.astimezone(shop_zone).year
    return years.index(year) if year in years else None


def _refunded_facts(session: Session, shop_id: int, metric: str) -> Iterator[tuple[int, tier_rules.OrderFact]]:
    """(member id, order fact) for every refunded paid order, through the lot's own reversal arithmetic."""
    refunds = _refunds_by_order(session, shop_id)
    rows = session.execute(
        select(Order.member_id, Order.order_id, Order.name, Order.paid_at, Order.lot, Order.cancelled_at).where(
            Order.shop_id == shop_id,
            Order.member_id.is_not(None),
            Order.paid_at.is_not(None),
            Order.lot.is_not(None),
            Order.order_id.in_(select(Refund.order_id).where(Refund.shop_id == shop_id)),
        )
    )
    for member_id, order_id, name, paid_at, lot, cancelled_at in rows:
        yield member_id, tiers.order_fact(order_id, name, paid_at, lot, cancelled_at, refunds.get(order_id), metric)


# On PostgreSQL the query reads what tiers need out of each lot: its eligible money still kept after refunds (each
# line's share by quantity, shipping net of refunded shipping, tips), whether it still counts, and its points without
# the tier's own share, under the order's cap (lot_reads.tier_points_sql, the member-facts reads' own SQL, as
# earning.contribution_points_without counts them). So 100,000 members' lots are never decoded in Python; only a
# refunded order's points are (under the points metric), since the per-contribution reversal lives in
# programme/earning.py.
LOT_VALUE_ROWS = """
    WITH rq AS (
      SELECT order_id, jsonb_object_agg(line_id, qty) AS qty
      FROM (SELECT r.order_id, kv.key AS line_id, sum(kv.value::bigint) AS qty
            FROM refunds r, jsonb_each_text(r.facts->'line_quantities') kv
            WHERE r.shop_id = :shop_id GROUP BY 1, 2) AS per_line
      GROUP BY order_id
    ), rs AS (
      SELECT r.order_id, sum((r.facts->>'shipping')::numeric) AS shipping FROM refunds r
      WHERE r.shop_id = :shop_id GROUP BY 1
    )
    SELECT o.member_id, o.order_id, o.name, o.paid_at, o.cancelled_at,
           coalesce(k.kept, 0) + greatest((o.lot->>'shipping')::numeric - coalesce(rs.shipping, 0), 0)
             + (o.lot->>'tip')::numeric AS spend,
           coalesce(k.wholly, false) AS wholly,
           CASE WHEN NOT :need_points THEN 0
                ELSE {tier_points}
                END AS points,
           rs.order_id IS NOT NULL AS refunded
    FROM orders o
    LEFT JOIN rs ON rs.order_id = o.order_id
    LEFT JOIN rq ON rq.order_id = o.order_id
    LEFT JOIN LATERAL (
      SELECT sum((l->>'eligible')::numeric
                 * greatest((l->>'quantity')::bigint - coalesce((rq.qty->>(l->>'line_id'))::bigint, 0), 0)
                 / (l->>'quantity')::bigint) AS kept,
             bool_and(coalesce((rq.qty->>(l->>'line_id'))::bigint, 0) >= (l->>'quantity')::bigint) AS wholly
      FROM jsonb_array_elements(o.lot->'lines') l
    ) k ON true
    WHERE o.shop_id = :shop_id AND o.member_id IS NOT NULL AND o.paid_at IS NOT NULL AND o.lot IS NOT NULL
""".replace("{tier_points}", lot_reads.tier_points_sql("o.lot"))
LOT_VALUES = text(LOT_VALUE_ROWS + " ORDER BY o.member_id").columns(paid_at=UTCDateTime(), cancelled_at=UTCDateTime())

# The per-member sums: LOT_VALUE_ROWS's orders, each counted as _facts_stream and tiers.order_fact count it (spend
# rounded to cents half-even, as Decimal.quantize does; an order counts unless cancelled or wholly refunded to 0),
# grouped by member and period. Orders outside every counting period (paid after `now`, a year no longer counting,
# or refunded under the points metric, which Python adds) fall in period NULL, so every member with an order is
# still listed, as the stream lists them.
SUMS = """
    SELECT member_id, period, count(*) FILTER (WHERE counts) AS orders,
           coalesce(sum(value) FILTER (WHERE counts), 0) AS value
    FROM (
      SELECT v.member_id,
             CASE WHEN v.paid_at > :now OR (:skip_refunded AND v.refunded) THEN NULL ELSE {period} END AS period,
             v.cancelled_at IS NULL AND (v.cents > 0 OR NOT v.wholly) AS counts,
             {value} AS value
      FROM (
        SELECT v.*,
               CASE WHEN v.spend * 100 - floor(v.spend * 100) = 0.5 AND mod(floor(v.spend * 100), 2) = 0
                    THEN floor(v.spend * 100) / 100 ELSE round(v.spend, 2) END AS cents  -- spend is never negative
        FROM ({lot_values}) AS v
      ) AS v
    ) AS per_order
    GROUP BY member_id, period
"""
METRIC_VALUES = {"spend": "v.cents", "points": "v.points", "orders": "1"}


def _facts_stream(session: Session, shop_id: int, refunds, metric: str) -> Iterator[tuple[int, tier_rules.OrderFact]]:
    """(member id, order fact) for every paid order of the shop, grouped by member."""
    if session.get_bind().dialect.name != "postgresql":
        rows = session.execute(
            select(Order.member_id, Order.order_id, Order.name, Order.paid_at, Order.lot, Order.cancelled_at)
            .where(
                Order.shop_id == shop_id,
                Order.member_id.is_not(None),
                Order.paid_at.is_not(None),
                Order.lot.is_not(None),
            )
            .order_by(Order.member_id)
            .execution_options(yield_per=5000)
        )
        for member_id, order_id, name, paid_at, lot, cancelled_at in rows:
            yield member_id, tiers.order_fact(order_id, name, paid_at, lot, cancelled_at, refunds.get(order_id), metric)
        return
    # Only the points metric needs a refunded order's lot (its per-contribution reversal).
    refunded_lots = {}
    if metric == "points":
        refunded_lots = dict(
            session.execute(
                select(Order.order_id, Order.lot).where(
                    Order.shop_id == shop_id,
                    Order.order_id.in_(select(Refund.order_id).where(Refund.shop_id == shop_id)),
                )
            ).all()
        )
    # A server-side cursor makes the planner favour a fast first row (cursor_tuple_fraction 0.1), and for a large
    # shop it picked a plan that re-ran the refunds' aggregates per order; every row is read, so plan for all.
    session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    rows = session.execute(
        LOT_VALUES,
        {"shop_id": shop_id, "need_points": metric == "points"},
        execution_options={"yield_per": 5000},
    )  # fmt: skip
    cent = Decimal("0.01")
    for member_id, order_id, name, paid_at, cancelled_at, spend, wholly, points, refunded in rows:
        label = name or f"#{order_id}"
        if cancelled_at is not None:
            yield member_id, tier_rules.OrderFact(order_id, label, paid_at, Decimal(0), 0, False)
        elif refunded and metric == "points":
            lot = refunded_lots[order_id]
            yield member_id, tiers.order_fact(order_id, name, paid_at, lot, cancelled_at, refunds.get(order_id), metric)
        else:
            kept = spend.quantize(cent)
            yield member_id, tier_rules.OrderFact(order_id, label, paid_at, kept, int(points), kept > 0 or not wholly)


def _refunds_by_order(session: Session, shop_id: int):
    out: dict[int, list] = defaultdict(list)
    rows = session.execute(select(Refund.order_id, Refund.refund_id, Refund.facts).where(Refund.shop_id == shop_id))
    for order_id, refund_id, facts in rows:
        out[order_id].append(tiers.refund_from_json(order_id, refund_id, facts))
    return out


def _terms(session: Session, shop_id: int, candidate: tier_rules.TierProgramme) -> dict[int, list]:
    if candidate.paid is None:
        return {}
    bought = list(session.scalars(select(TierPurchase).where(TierPurchase.shop_id == shop_id)))
    if not bought:
        return {}
    cancelled = dict(
        session.execute(
            select(Order.order_id, Order.cancelled_at).where(
                Order.shop_id == shop_id, Order.order_id.in_([p.order_id for p in bought])
            )
        ).all()
    )
    refunds: dict[int, list] = defaultdict(list)
    rows = session.execute(
        select(Refund.order_id, Refund.refund_id, Refund.facts).where(
            Refund.shop_id == shop_id, Refund.order_id.in_([p.order_id for p in bought])
        )
    )
    for order_id, refund_id, facts in rows:
        refunds[order_id].append(tiers.refund_from_json(order_id, refund_id, facts))
    return tiers.paid_terms(bought, cancelled, refunds)


def _summary(
    current: tier_rules.TierProgramme | None,
    candidate: tier_rules.TierProgramme,
    held: dict[int, str | None],
    after: dict[int, str | None],
    complete: bool,
) -> dict[str, Any]:
    def rank(programme: tier_rules.TierProgramme | None, tier_id: str | None) -> int:
        return programme.rank(tier_id) if programme else 0

    rows: dict[str | None, Counter] = defaultdict(Counter)
    moves: Counter = Counter()
    for member_id, before in held.items():
        new = after.get(member_id) if complete else after.get(member_id, before)
        if new == before or rank(current, before) == rank(candidate, new):
            direction = "unchanged"
        else:
            direction = "up" if rank(candidate, new) > rank(current, before) else "down"
        rows[before][direction] += 1
        rows[new]["after"] += 1
        rows[before]["now"] += 1
        if new != before:
            moves[(before, new)] += 1
    names = {t.tier_id: t.name for t in (current.tiers if current else ())} | {
        t.tier_id: t.name for t in candidate.tiers
    }
    order = [None] + [t.tier_id for t in candidate.tiers]
    order += [tier_id for tier_id in rows if tier_id not in order]
    return {
        "complete": complete,
        "members": len(held),
        "members_computed": len(after),
        "tiers": [
            {
                "id": tier_id,
                "name": names.get(tier_id, "no tier") if tier_id else "no tier",
                "now": rows[tier_id]["now"],
                "after": rows[tier_id]["after"],
                "up": rows[tier_id]["up"],
                "down": rows[tier_id]["down"],
                "unchanged": rows[tier_id]["unchanged"],
            }
            for tier_id in order
        ],
        "moves": [
            {"from": before, "to": new, "members": n}
            for (before, new), n in sorted(moves.items(), key=lambda item: -item[1])
        ],
    }
