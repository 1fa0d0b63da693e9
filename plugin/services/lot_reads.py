"""Stored lots as the member rules read them: an unrefunded order's few fields, not its whole lot (decision 0054)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Boolean, Text, literal_column, select, text, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from plugin.models import Order

# What tiers.order_fact and milestones' lot_spend read of a lot with no refund, taken out of it in PostgreSQL: a
# whole lot (about 2 kB of JSON with its contributions' lines and explanations) cost its text output there and its
# decoding here, for every past order of every member of every drained batch. Contributions give kind and points.
# The parts are taken from lot_once.lot, the lot decompressed once per row (orders_from).
_PARTS = {
    "has_lot": ("lot_once.lot IS NOT NULL", Boolean),
    "lot_lines": ("lot_once.lot -> 'lines'", JSONB),
    "lot_shipping": ("lot_once.lot ->> 'shipping'", Text),
    "lot_tip": ("lot_once.lot ->> 'tip'", Text),
    "lot_points": ("lot_once.lot ->> 'points'", Text),
    "lot_order_cap": ("lot_once.lot -> 'order_cap'", JSONB),
    "lot_reason": ("lot_once.lot -> 'reason'", JSONB),
    "lot_kinds": ("jsonb_path_query_array(lot_once.lot, '$.contributions[*].kind')", JSONB),
    "lot_contribution_points": ("jsonb_path_query_array(lot_once.lot, '$.contributions[*].points')", JSONB),
}
# A stored lot is about 2 kB of JSON, so PostgreSQL keeps it compressed, and every operator on `orders.lot`
# decompresses it anew: nine times a row. `|| '{}'` builds the plain value once; OFFSET 0 keeps the planner from
# folding the subquery back into the nine expressions. 15 -> 5 us a row of the parts' SELECT (3,000 orders).
_ONCE = "LATERAL (SELECT orders.lot || '{}'::jsonb AS lot OFFSET 0) AS lot_once"


def columns(session: Session) -> tuple:
    """The lot's columns for a SELECT from orders_from: its parts on PostgreSQL, the whole lot elsewhere."""
    if session.get_bind().dialect.name != "postgresql":
        return (Order.lot.label("lot"),)
    return tuple(literal_column(sql, type_).label(name) for name, (sql, type_) in _PARTS.items())


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
        elif not row.has_lot:
            found[row.order_id] = None
        elif refunds.get(row.order_id) and row.cancelled_at is None:
            whole.append(row.order_id)  # the refund's arithmetic reads the whole lot
        else:
            found[row.order_id] = {
                "lines": row.lot_lines,
                "shipping": row.lot_shipping,
                "tip": row.lot_tip,
                "points": row.lot_points,
                "order_cap": row.lot_order_cap,
                "reason": row.lot_reason,
                "contributions": [
                    {"kind": kind, "points": points}
                    for kind, points in zip(row.lot_kinds, row.lot_contribution_points, strict=True)
                ],
            }
    if whole:
        found.update(
            session.execute(
                select(Order.order_id, Order.lot).where(Order.shop_id == shop_id, Order.order_id.in_(whole))
            ).all()
        )
    return found
