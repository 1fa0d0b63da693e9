"""The ledger through the app: order independence, duplicates, pending points, negative balances, invariants."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Posting
from plugin.services import shops
from tests import builders
from tests.conftest import SHOP, deliver

ALICE, BOB = 7001, 7002


def scenario() -> tuple[list[tuple[str, dict, str]], dict[int, int]]:
    """Deliveries for two shoppers, each with a webhook id, and the balances they must end with."""
    a_line = builders.line(11, "100.00", 3, discount="10.00")  # 290.00 eligible, 96.67 per unit
    order_a = builders.order(1, ALICE, [a_line], shipping="10.00", shipping_tax="1.00")
    order_b = builders.order(2, ALICE, [builders.line(21, "55.55")])
    order_c = builders.order(3, BOB, [builders.line(31, "20.00"), builders.line(32, "50.00", gift_card=True)])
    order_d = builders.order(4, BOB, [builders.line(41, "500.00")], test=True)
    deliveries = [
        ("customers/create", {"id": ALICE, "email": "alice@example.com"}, "w-cust-a"),
        ("orders/create", order_a, "w-create-a"),
        ("orders/paid", order_a, "w-paid-a"),
        ("refunds/create", builders.refund(101, 1, {11: 1}), "w-refund-a1"),
        ("refunds/create", builders.refund(102, 1, {11: 1}, shipping="10.00"), "w-refund-a2"),
        ("orders/paid", order_b, "w-paid-b"),
        ("orders/cancelled", {**order_b, "cancelled_at": "2026-11-21T10:00:00Z"}, "w-cancel-b"),
        ("orders/paid", order_c, "w-paid-c"),
        ("refunds/create", builders.refund(301, 3, {32: 1}), "w-refund-c"),  # the gift card: earned nothing
        ("orders/paid", order_d, "w-paid-d"),
    ]
    # Alice: 290 earned on order 1, two of three units refunded -> floor(96.666..) = 96; order 2 cancelled.
    # Bob: 20 on order 3 (gift card excluded, its refund takes nothing); order 4 is a test order.
    return deliveries, {ALICE: 96, BOB: 20}


def balances(settings) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        return dict(session.execute(select(Member.customer_id, Member.balance)).all())


def assert_ledger_consistent(settings) -> None:
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_natural_order_gives_the_expected_balances(client, settings, shop):
    deliveries, expected = scenario()
    for topic, payload, webhook_id in deliveries:
        assert deliver(client, topic, payload, webhook_id=webhook_id).status_code == 200
    assert balances(settings) == expected
    assert_ledger_consistent(settings)


@pytest.mark.parametrize("seed", range(6))
def test_shuffled_and_duplicated_deliveries_end_in_the_same_state(client, settings, shop, seed):
    deliveries, expected = scenario()
    rng = random.Random(seed)
    shuffled = deliveries + rng.sample(deliveries, k=5)  # five retried deliveries (same webhook ids)
    rng.shuffle(shuffled)
    for topic, payload, webhook_id in shuffled:
        assert deliver(client, topic, payload, webhook_id=webhook_id).status_code == 200
    assert balances(settings) == expected
    assert_ledger_consistent(settings)


def test_refund_before_paid_lands_where_the_natural_order_does(client, settings, shop):
    order = builders.order(9, ALICE, [builders.line(91, "30.00", 2)])
    deliver(client, "refunds/create", builders.refund(901, 9, {91: 1}))
    assert balances(settings) == {}  # nobody known yet, nothing earned
    deliver(client, "orders/paid", order)
    assert balances(settings) == {ALICE: 30}
    with transaction(settings.database_url) as session:
        [posting] = session.scalars(select(Posting)).all()
        assert (posting.kind, posting.points, posting.rule_version) == ("earn", 30, "earn-1+settings-1")


def test_cancellation_before_paid_earns_nothing(client, settings, shop):
    order = builders.order(9, ALICE)
    deliver(client, "orders/cancelled", {**order, "cancelled_at": "2026-11-21T10:00:00Z"})
    deliver(client, "orders/paid", order)
    assert balances(settings) == {ALICE: 0}


def test_reversal_uses_the_lot_not_todays_settings(client, settings, shop):
    deliver(client, "orders/paid", builders.order(5, ALICE, [builders.line(51, "10.00", 2)]))
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"earn": {"points": 10, "per_amount": "1.00"}})
    deliver(client, "refunds/create", builders.refund(501, 5, {51: 1}))
    assert balances(settings) == {ALICE: 10}  # 20 earned at 1 pt per 1.00; half refunded at that same rate
    deliver(client, "orders/paid", builders.order(6, ALICE, [builders.line(61, "1.00")]))
    assert balances(settings) == {ALICE: 20}  # the new order earns at the new rate
    with transaction(settings.database_url) as session:
        versions = session.scalars(select(Posting.rule_version).order_by(Posting.id)).all()
    assert versions == ["earn-1+settings-1", "earn-1+settings-1", "earn-1+settings-2"]


def test_pending_points_count_in_the_balance_but_cannot_be_spent_yet(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"pending_days": 14})
    deliver(client, "orders/paid", builders.order(7, ALICE, [builders.line(71, "80.00")]))
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member = shops.member(session, shop_row, ALICE)
        # Read at fixed moments around conftest's payment time (2026-11-20 10:00 UTC), not the day the suite runs.
        paid = datetime(2026, 11, 20, 10, tzinfo=UTC)
        now = ledger.balance_of(session, shop_row.id, member, now=paid + timedelta(days=1))
        later = ledger.balance_of(session, shop_row.id, member, now=paid + timedelta(days=15))
    assert now.to_json() == {"balance": 80, "pending": 80, "available": 0}
    assert later.to_json() == {"balance": 80, "pending": 0, "available": 80}


def test_reversing_spent_points_leaves_a_plainly_recorded_negative_balance(client, settings, shop):
    deliver(client, "orders/paid", builders.order(8, ALICE, [builders.line(81, "100.00")]))
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member = shops.member(session, shop_row, ALICE)
        spend = ledger.Entry(member.id, "redeem", -80, "redemption", "r-1", "redemption:r-1", "manual")
        assert ledger.post(session, shop_row.id, spend) is not None
    deliver(client, "refunds/create", builders.refund(801, 8, {81: 1}))
    assert balances(settings) == {ALICE: -80}
    with transaction(settings.database_url) as session:
        reversal = session.scalars(select(Posting).order_by(Posting.id.desc())).first()
    assert (reversal.kind, reversal.points, reversal.balance_after) == ("reverse", -100, -80)
    assert "already been spent" in reversal.note
    assert_ledger_consistent(settings)


def test_same_idempotency_key_posts_once(settings, shop):
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        from plugin.programme.events import Customer
        from plugin.services.accrual import enrol

        member_id = enrol(session, shop_row.id, Customer(ALICE))
        entry = ledger.Entry(member_id, "bonus", 25, "support", "t-1", "bonus:t-1", "manual")
        assert ledger.post(session, shop_row.id, entry) is not None
        assert ledger.post(session, shop_row.id, entry) is None
    assert balances(settings) == {ALICE: 25}


@pytest.mark.parametrize("kind, points", [("gift", 5), ("earn", 0), ("earn", 1.5)])
def test_ledger_refuses_bad_postings(settings, shop, kind, points):
    with transaction(settings.database_url) as session:
        from plugin.programme.events import Customer
        from plugin.services.accrual import enrol

        member_id = enrol(session, shop, Customer(ALICE))
        with pytest.raises(ledger.LedgerError):
            ledger.post(session, shop, ledger.Entry(member_id, kind, points, "support", "x", "k", "manual"))


@pytest.mark.parametrize("statement", ["UPDATE postings SET points = 1000", "DELETE FROM postings"])
def test_postings_cannot_be_changed_or_deleted_in_the_database(client, settings, shop, statement):
    deliver(client, "orders/paid", builders.order(1, ALICE))
    with pytest.raises(DBAPIError, match="append-only"), transaction(settings.database_url) as session:
        session.execute(text(statement))
    assert balances(settings) == {ALICE: 100}


def test_verify_finds_a_cached_balance_that_disagrees_with_the_postings(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, ALICE))
    with transaction(settings.database_url) as session:
        force_balance_drift(session, 5)
    with transaction(settings.database_url) as session:
        [mismatch] = ledger.verify(session)
    assert (mismatch.what, mismatch.cached, mismatch.summed) == ("member", 105, 100)


def force_balance_drift(session, points: int) -> None:
    """Move every cached balance without a posting, past the database's guard (as only a deliberate act can)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE members DISABLE TRIGGER members_balance_guard"))
        session.execute(text("UPDATE members SET balance = balance + :points"), {"points": points})
        session.execute(text("ALTER TABLE members ENABLE TRIGGER members_balance_guard"))
        return
    guard = session.execute(text("SELECT sql FROM sqlite_master WHERE name = 'members_balance_guard'")).scalar_one()
    session.execute(text("DROP TRIGGER members_balance_guard"))
    session.execute(text("UPDATE members SET balance = balance + :points"), {"points": points})
    session.execute(text(guard))
