"""Stored lots as the member rules read them: an unrefunded order's few fields, not its whole lot (decision 0054)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Text, literal_column, select, text, true
from sqlalchemy.orm import Session

from plugin.models import Order

# What tiers.order_fact and milestones' lot_spend read of a lot with no refund, taken out of it in PostgreSQL: a
# whole lot (about 2 kB of JSON with its contributions' lines and explanations) cost its text output there and its
# decoding here, for every past order of every member of every drained batch. Contributions give kind and points.
# The parts are taken from lot_once.lot, the lot decompressed once per row (orders_from), and sent as one JSON array
# in a text column, decoded by one json.loads: as seven JSONB columns each was a json.loads of its own behind
# psycopg's loader (its encoding sniffed from bytes each time), a fifth of the programme's drain (decision 0066).
_PARTS_SQL = (
    "CASE WHEN lot_once.lot IS NULL THEN NULL ELSE json_build_array("
    "lot_once.lot -> 'lines', lot_once.lot ->> 'shipping', lot_once.lot ->> 'tip', lot_once.lot ->> 'points',"
    " lot_once.lot -> 'order_cap', lot_once.lot -> 'reason',"
    " jsonb_path_query_array(lot_once.lot, '$.contributions[*].kind'),"
    " jsonb_path_query_array(lot_once.lot, '$.contributions[*].points'))::text END"
)
# A stored lot is about 2 kB of JSON, so PostgreSQL keeps it compressed, and every operator on `orders.lot`
# decompresses it anew: eight times a row. `|| '{}'` builds the plain value once; OFFSET 0 keeps the planner from
# folding the subquery back into the eight expressions. 15 -> 5 us a row of the parts' SELECT (3,000 orders).
_ONCE = "LATERAL (SELECT orders.lot || '{}'::jsonb AS lot OFFSET 0) AS lot_once"


def columns(session: Session) -> tuple:
    """The lot's columns for a SELECT from orders_from: its parts on PostgreSQL, the whole lot elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        return (Order.lot.label("lot"),)
    return (literal_column(_PARTS_SQL, Text).label("lot_parts"),)


def orders_from(session: Session):
    """The FROM of a SELECT of `columns`: orders, and on PostgreSQL the lot decompressed once per row beside it."""
    if session.get_bind().dialect.name != "postgresql":
        return Order.__table__
    return Order.__table__.join(text(_ONCE), true())


def lots(session: Session, shop_id: int, rows, refunds: dict[int, list]) -> dict[int, dict[str, Any] | None]:
    """Per order id of `rows` (order_id, cancelled_at and `columns`), its lot as far as the rules read it: the
    parts of an unrefunded or cancelled one, the whole lot of a refunded one (read again, one statement for all)."""
    found: dict[int, dict[str, Any] | None] = {}
    whole: list[int] = []
    for row in rows:
        if "lot" in row._fields:
            found[row.order_id] = row.lot
        elif row.lot_parts is None:
            found[row.order_id] = None
        elif refunds.get(row.order_id) and row.cancelled_at is None:
            whole.append(row.order_id)  # the refund's arithmetic reads the whole lot
        else:
            lines, shipping, tip, points, order_cap, reason, kinds, contribution_points = json.loads(row.lot_parts)
            found[row.order_id] = {
                "lines": lines,
                "shipping": shipping,
                "tip": tip,
                "points": points,
                "order_cap": order_cap,
                "reason": reason,
                "contributions": [
                    {"kind": kind, "points": points} for kind, points in zip(kinds, contribution_points, strict=True)
                ],
            }
    if whole:
        found.update(
            session.execute(
                select(Order.order_id, Order.lot).where(Order.shop_id == shop_id, Order.order_id.in_(whole))
            ).all()
        )
    return found
