"""A claw-back that repeats an earlier one's move is posted under its own key (decision 0096).

Under claw_back, a reversal the member cannot pay stays owed on its order, and a later order's earnings pay it:
a `reverse` posting on the owed order, keyed by the move of its held points. A capped order's held points can come
back to where a claw-back took them from (a refund lifts it, decision 0095), be reversed and owed again, and the
next claw-back made the same move: keyed by the move alone, it repeated the first one's key, so the innocent later
order that paid it was refused as a ledger conflict and its delivery parked, its points never posted."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Order, Posting
from plugin.programme import events
from plugin.services import accrual, rule_sets, shops
from tests.conftest import SHOP
from tests.test_refund_lifts_capped_order import LINES, PAID_AT, RULES

CUSTOMER = 2


def _paid(order_id: int, lines: tuple[events.OrderLine, ...]) -> events.OrderPaid:
    snapshot = events.OrderSnapshot(
        order_id=order_id, name=f"#{order_id}", customer=events.Customer(CUSTOMER), email=None, currency="USD",
        test=False, taxes_included=False, lines=lines,
    )  # fmt: skip
    return events.OrderPaid(snapshot, PAID_AT + timedelta(minutes=order_id))


def _plain(order_id: int) -> events.OrderPaid:
    """An order of one 1.00 line of a product no multiplier matches: 1 point."""
    return _paid(order_id, (events.OrderLine(order_id * 10, 1, Decimal("1.00"), product_id=300),))


def _spend_everything(session, shop_id: int, n: int) -> None:
    member = session.scalar(select(Member).where(Member.shop_id == shop_id, Member.customer_id == CUSTOMER))
    ledger.post(session, shop_id, ledger.Entry(member.id, "redeem", -member.balance, "test", str(n), f"spent:{n}", "t"))


def test_a_claw_back_that_repeats_an_earlier_move_posts_under_its_own_key(settings, shop):
    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), RULES, "test")
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": "claw_back"})
    capped = tuple(events.OrderLine(n, qty, Decimal(gross), product_id=200) for n, qty, gross in LINES)
    steps = [
        events.ProductUpdated(events.ProductFacts(200, "Outerwear", "Acme")),
        events.ProductUpdated(events.ProductFacts(300, "Other", "Other")),
        _paid(2, capped),  # 1 point, under its cap of 1
        1,  # spent
        events.OrderRefunded(events.RefundFacts(20, 2, {200: 1})),  # 1 -> 0, not payable: owed
        _plain(3),  # its point pays the claw-back: order 2 from 1 to 0
        events.OrderRefunded(events.RefundFacts(21, 2, {203: 1})),  # lifts order 2 back to 1 (decision 0095)
        2,  # spent
        events.OrderRefunded(events.RefundFacts(22, 2, {200: 1})),  # 1 -> 0 again, owed again
        _plain(4),  # pays it: order 2 from 1 to 0 again, the same move as order 3's claw-back
    ]
    held = []
    for step in steps:
        with transaction(settings.database_url) as session:
            if isinstance(step, int):
                _spend_everything(session, shop, step)
            else:
                accrual.apply(session, shops.get(session, SHOP), step)
            row = session.execute(
                select(Order.points_held, Order.unpaid_reversal).where(Order.shop_id == shop, Order.order_id == 2)
            ).first()
            held.append(tuple(row) if row else None)
    assert held[2:] == [(1, 0), (1, 0), (1, 1), (0, 0), (1, 0), (1, 0), (1, 1), (0, 0)]
    with transaction(settings.database_url) as session:
        claw_backs = session.scalars(
            select(Posting.idempotency_key)
            .where(Posting.shop_id == shop, Posting.idempotency_key.like("order:2:clawback:%"))
            .order_by(Posting.id)
        ).all()
        earned = session.scalars(
            select(Posting.order_id)
            .where(Posting.shop_id == shop, Posting.source_type == "order", Posting.kind == "earn")
            .order_by(Posting.id)
        ).all()
        assert ledger.verify(session) == []
    assert claw_backs == ["order:2:clawback:1->0:for:order:3:0->1", "order:2:clawback:1->0:for:order:4:0->1"]
    assert earned == [2, 3, 4]  # order 4's point is posted: its delivery is not parked
