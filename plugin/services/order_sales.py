"""What a paid order is worth to the reports: its sales after discounts and the loyalty reward code it used."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import Order, Redemption
from plugin.programme.events import OrderSnapshot


def sales_of(snapshot: OrderSnapshot) -> Decimal:
    """The line items after their discounts, before shipping and taxes (docs/reports.md: AOV)."""
    return sum((line.gross - line.discount for line in snapshot.lines), Decimal(0))


def record(session: Session, shop_id: int, order: Order, snapshot: OrderSnapshot) -> None:
    """Set the order's sales and reward code from the paid snapshot, in the order's transaction."""
    order.sales = sales_of(snapshot)
    codes = [code for code in snapshot.discount_codes if code]
    order.reward_code = None
    if codes:
        order.reward_code = session.scalars(
            select(Redemption.code).where(Redemption.shop_id == shop_id, Redemption.code.in_(codes)).limit(1)
        ).first()
