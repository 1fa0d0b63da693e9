"""A refund that lifts what a capped order holds is posted under its own key, not the payment's (decision 0095).

The earning property test found it: under a cap of 1 point, the first refund takes the order from 1 to 0 and the
second, which returns a 3-cent line, brings it back to 1 (the cap's negative share is rounded toward zero, as each
contribution's is, decision 0017). Keyed by the move alone, that second posting was the payment's own key, so the
refund was refused as a ledger conflict and its delivery parked."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Order, Posting
from plugin.programme import events
from plugin.programme.earning import Lot, points_to_hold
from plugin.services import accrual, rule_sets, shops
from tests.conftest import SHOP

PAID_AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
RULES = {
    "rules": [
        {"type": "base_rate", "points": 1, "per_amount": "1"},
        {"type": "multiplier", "multiplier": "3", "match": {"vendors": ["acme"]}},
        {"type": "points_cap", "max_points": 1},
    ],
    "campaign_stack_cap": "1",
}
LINES = ((200, 2, "4.46"), (201, 1, "0.01"), (202, 1, "0.01"), (203, 1, "0.03"))  # line id, quantity, gross


def _history() -> list[events.Event]:
    lines = tuple(events.OrderLine(n, qty, Decimal(gross), product_id=200) for n, qty, gross in LINES)
    snapshot = events.OrderSnapshot(
        order_id=2, name="#2", customer=events.Customer(2), email=None, currency="USD", test=False,
        taxes_included=False, lines=lines,
    )  # fmt: skip
    return [
        events.ProductUpdated(events.ProductFacts(200, "Outerwear", "Acme")),
        events.OrderPaid(snapshot, PAID_AT),
        events.OrderRefunded(events.RefundFacts(20, 2, {200: 1})),
        events.OrderRefunded(events.RefundFacts(21, 2, {203: 1})),
    ]


def test_a_refund_that_lifts_a_capped_orders_points_posts_under_its_own_key(settings, shop):
    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), RULES, "test")
    held = []
    for event in _history():
        with transaction(settings.database_url) as session:
            accrual.apply(session, shops.get(session, SHOP), event)
            held.append(session.scalar(select(Order.points_held).where(Order.shop_id == shop, Order.order_id == 2)))
    assert held == [None, 1, 0, 1]  # the second refund lifts the order back under its cap's rounding
    with transaction(settings.database_url) as session:
        postings = session.execute(
            select(Posting.idempotency_key, Posting.points, Posting.source_type)
            .where(Posting.shop_id == shop)
            .order_by(Posting.id)
        ).all()
        order = session.execute(select(Order).where(Order.shop_id == shop, Order.order_id == 2)).scalar_one()
        refunds = accrual.refund_facts(session, shop, 2)
        balance = session.scalar(select(Member.balance).where(Member.shop_id == shop, Member.customer_id == 2))
        assert ledger.verify(session) == []
    assert [tuple(p) for p in postings] == [
        ("order:2:0->1", 1, "order"),
        ("order:2:1->0:refund:20", -1, "refund"),
        ("order:2:0->1:refund:21", 1, "refund"),
    ]
    assert balance == 1 == points_to_hold(Lot.from_json(order.lot), refunds, cancelled=False)
