"""Stored lots as the member rules read them: an unrefunded order's sums, not its whole lot (decisions 0054, 0072)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, Boolean, Numeric, literal_column, select, text, true
from sqlalchemy.orm import Session

from plugin.models import Order
from plugin.programme.earning import CAP_KIND, contribution_points_without
from plugin.programme.tiers import TIER_CONTRIBUTION_KIND


class LotSums(NamedTuple):
    """What tiers.order_fact and milestones' lot_spend read of a lot with no refund, summed by PostgreSQL."""

    eligible: Decimal  # its lines' eligible money
    shipping_tip: Decimal  # its shipping and tip
    tier_points: int  # earning.contribution_points_without the tier's kind (the lot's points if no contributions)
    reasoned: bool  # it has a reason (a test order's, say): no milestone spend


def tier_points_sql(lot: str) -> str:
    """SQL for the points of the JSONB lot `lot` as earning.contribution_points_without counts them without the
    tier's kind, under the order's cap: the member-facts reads here and tier_preview's sums share it."""
    return (
        "(SELECT CASE WHEN count(*) = 0 THEN ({lot} ->> 'points')::bigint"
        " ELSE greatest(least("  # least() passes over a NULL: no cap, the kept points
        "coalesce(sum(c.points) FILTER (WHERE c.kind IS NULL"
        f" OR c.kind NOT IN ('{TIER_CONTRIBUTION_KIND}', '{CAP_KIND}')), 0),"
        " coalesce(({lot} ->> 'order_cap')::bigint,"
        f" CASE WHEN bool_or(c.kind = '{CAP_KIND}') THEN sum(c.points) END)"
        "), 0)::bigint END"
        " FROM jsonb_to_recordset({lot} -> 'contributions') AS c (kind text, points bigint))"
    ).replace("{lot}", lot)


# What tiers.order_fact and milestones' lot_spend read of a lot with no refund, computed in PostgreSQL: the lines'
# eligible money, shipping and tip as numeric (exact, as Decimal sums them), the points as
# earning.contribution_points_without counts them (tier_preview.LOT_VALUE_ROWS with the same SQL), and whether it
# has a reason. The lines' JSON was sent as text and decoded here for every past order of every member of every
# drained round (decision 0066's parts), a third of member_facts.read; four plain columns are loaded by psycopg's C
# loaders. Each comes from lot_once.lot, the lot decompressed once per row (orders_from). Kinds are constants here.
assert TIER_CONTRIBUTION_KIND.isidentifier() and CAP_KIND.isidentifier()  # inlined in the SQL as literals
# Each is the order's stored sum when the row has them (decision 0094: written with the lot by the set-based drain,
# about 5 us a row less than summing the JSON here), else the lot's own.
_ELIGIBLE_SQL = (
    "coalesce(orders.lot_eligible, CASE WHEN lot_once.lot IS NOT NULL THEN coalesce("
    "(SELECT sum((line ->> 'eligible')::numeric) FROM jsonb_array_elements(lot_once.lot -> 'lines') AS line), 0) END)"
)
_SHIPPING_TIP_SQL = (
    "coalesce(orders.lot_shipping_tip, (lot_once.lot ->> 'shipping')::numeric + (lot_once.lot ->> 'tip')::numeric)"
)
_TIER_POINTS_SQL = f"coalesce(orders.lot_tier_points, {tier_points_sql('lot_once.lot')})"
_REASONED_SQL = "coalesce(orders.lot_reasoned, lot_once.lot ->> 'reason' IS NOT NULL)"
# A stored lot is about 2 kB of JSON, so PostgreSQL keeps it compressed, and every operator on `orders.lot`
# decompresses it anew: several times a row. `|| '{}'` builds the plain value once; OFFSET 0 keeps the planner from
# folding the subquery back into the expressions. 15 -> 5 us a row of the parts' SELECT (3,000 orders). A row with
# its sums stored is not decompressed at all (its lot_once.lot is NULL: the coalesces above take the stored sums).
_STORED = (
    "orders.lot_eligible IS NOT NULL AND orders.lot_shipping_tip IS NOT NULL AND orders.lot_tier_points IS NOT NULL"
    " AND orders.lot_reasoned IS NOT NULL"
)
_ONCE = f"LATERAL (SELECT CASE WHEN NOT ({_STORED}) THEN orders.lot || '{{}}'::jsonb END AS lot OFFSET 0) AS lot_once"


def sums(lot: dict[str, Any]) -> LotSums:
    """The sums of a lot's JSON as the reads above compute them in PostgreSQL (tiers.order_fact's and lot_spend's
    JSON paths, summed the same way): what the set-based drain stores with the lot it writes."""
    contributions = lot.get("contributions")
    if contributions:
        points = contribution_points_without(contributions, TIER_CONTRIBUTION_KIND, lot.get("order_cap"))
    else:
        points = int(lot["points"])
    return LotSums(
        sum((Decimal(line["eligible"]) for line in lot["lines"]), Decimal(0)),
        Decimal(lot["shipping"]) + Decimal(lot["tip"]),
        points,
        lot.get("reason") is not None,
    )


def columns(session: Session) -> tuple:
    """The lot's columns for a SELECT from orders_from: its sums on PostgreSQL, the whole lot elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        return (Order.lot.label("lot"),)
    return (
        literal_column(_ELIGIBLE_SQL, Numeric(asdecimal=True)).label("lot_eligible"),
        literal_column(_SHIPPING_TIP_SQL, Numeric(asdecimal=True)).label("lot_shipping_tip"),
        literal_column(_TIER_POINTS_SQL, BigInteger).label("lot_tier_points"),
        literal_column(_REASONED_SQL, Boolean).label("lot_reasoned"),
    )


def orders_from(session: Session):
    """The FROM of a SELECT of `columns`: orders, and on PostgreSQL the lot decompressed once per row beside it."""
    if session.get_bind().dialect.name != "postgresql":
        return Order.__table__
    return Order.__table__.join(text(_ONCE), true())


def lots(session: Session, shop_id: int, rows, refunds: dict[int, list]) -> dict[int, dict[str, Any] | LotSums | None]:
    """Per order id of `rows` (order_id, cancelled_at and `columns`), its lot as far as the rules read it: the sums
    of an unrefunded or cancelled one, the whole lot of a refunded one (read again, one statement for all)."""
    found: dict[int, dict[str, Any] | LotSums | None] = {}
    if rows and "lot" in rows[0]._fields:
        return {row.order_id: row.lot for row in rows}
    whole: list[int] = []
    for row in rows:
        if row.lot_eligible is None:
            found[row.order_id] = None
        elif row.cancelled_at is None and refunds.get(row.order_id):
            whole.append(row.order_id)  # the refund's arithmetic reads the whole lot
        else:
            found[row.order_id] = LotSums(row.lot_eligible, row.lot_shipping_tip, row.lot_tier_points, row.lot_reasoned)
    if whole:
        found.update(
            session.execute(
                select(Order.order_id, Order.lot).where(Order.shop_id == shop_id, Order.order_id.in_(whole))
            ).all()
        )
    return found
