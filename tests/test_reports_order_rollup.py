"""Property: after random paid orders, refunds, cancels and order rows moved or deleted, the per-member monthly
roll-up equals its orders, and the KPIs read from it equal the KPIs read from the orders, for random periods.

PostgreSQL only (the roll-up is written by triggers); SQLite's reports read the orders themselves.
"""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from plugin.db import transaction
from plugin.models import Member, Order, Redemption, Shop
from plugin.programme import events
from plugin.services import accrual, order_rollups, reports, shops

DOMAIN = "rollup.myshopify.com"
ZONES = ("Europe/Paris", "America/New_York", "Pacific/Auckland", "UTC")
FIRST_DAY = datetime(2025, 9, 20, tzinfo=UTC)  # spans the 2025 DST changes on both hemispheres
_order_ids = itertools.count(1)

ROLLUP_FROM_ORDERS = text(
    """
    SELECT o.member_id, date_trunc('month', o.paid_at AT TIME ZONE s.time_zone)::date, count(*),
           coalesce(sum(o.sales), 0), min(o.paid_at), max(o.paid_at)
    FROM orders o JOIN shops s ON s.id = o.shop_id
    WHERE o.shop_id = :shop AND o.paid_at IS NOT NULL AND o.member_id IS NOT NULL
    GROUP BY 1, 2 ORDER BY 1, 2
    """
)
ROLLUP = text(
    """
    SELECT member_id, month, orders, sales, first_paid_at, last_paid_at FROM member_order_months
    WHERE shop_id = :shop ORDER BY 1, 2
    """
)

paid_offsets = st.integers(0, 150 * 24 * 60)  # minutes after FIRST_DAY: five months, to the minute
orders = st.lists(
    st.fixed_dictionaries(
        {
            "customer": st.integers(1, 6),
            "paid": paid_offsets,
            "cents": st.lists(st.integers(1, 30000), min_size=1, max_size=3),
            "refunded": st.booleans(),
            "cancelled": st.booleans(),
            "change": st.sampled_from([None, None, "move", "member", "sales", "delete", "unpay"]),
            "moved": paid_offsets,
        }
    ),
    min_size=1,
    max_size=8,
)
periods = st.tuples(st.integers(0, 160), st.integers(0, 160)).map(sorted)


def _apply(url: str, event: events.Event) -> None:
    with transaction(url) as session:
        accrual.apply(session, shops.get(session, DOMAIN), event)


def _history(spec: dict) -> tuple[int, list[events.Event]]:
    """One order's deliveries, as the shop sends them: paid, then maybe a refund and a cancellation."""
    n = next(_order_ids)
    lines = tuple(
        events.OrderLine(n * 10 + i, 1, Decimal(cents) / 100, product_id=None) for i, cents in enumerate(spec["cents"])
    )
    snapshot = events.OrderSnapshot(
        order_id=n, name=f"#{n}", customer=events.Customer(spec["customer"]), email=None, currency="USD", test=False,
        taxes_included=False, lines=lines,
    )  # fmt: skip
    paid_at = FIRST_DAY + timedelta(minutes=spec["paid"])
    history: list[events.Event] = [events.OrderPaid(snapshot, paid_at)]
    if spec["refunded"]:
        history.append(events.OrderRefunded(events.RefundFacts(n, n, {n * 10: 1})))
    if spec["cancelled"]:
        history.append(events.OrderCancelled(snapshot.__class__(**{**snapshot.__dict__, "cancelled_at": paid_at})))
    return n, history


def _change(url: str, shop_id: int, order_id: int, spec: dict) -> None:
    """What no webhook does today but a repair, a merge or a redaction could: the roll-up must follow any row."""
    with transaction(url) as session:
        order = session.query(Order).filter(Order.shop_id == shop_id, Order.order_id == order_id).one()
        if spec["change"] == "move":
            order.paid_at = FIRST_DAY + timedelta(minutes=spec["moved"])
        elif spec["change"] == "member":
            others = session.query(Member.id).filter(Member.shop_id == shop_id, Member.id != order.member_id)
            order.member_id = others.order_by(Member.id).limit(1).scalar()
        elif spec["change"] == "sales":
            order.sales = (order.sales or Decimal(0)) + Decimal("0.01")
        elif spec["change"] == "delete":
            session.execute(
                text("DELETE FROM refunds WHERE shop_id = :s AND order_id = :o"), {"s": shop_id, "o": order_id}
            )
            session.delete(order)
        elif spec["change"] == "unpay":
            order.paid_at = None


def _kpis_both_ways(url: str, shop_id: int, start: date, end: date) -> tuple[dict, dict]:
    with transaction(url) as session:
        shop = session.get(Shop, shop_id)
        period = reports.Period(start, end, ZoneInfo(shop.time_zone))
        return reports._buyers(session, shop, period), reports._buyers_from_orders(session, shop, period)


def test_the_rollup_equals_its_orders_and_answers_the_kpis_the_orders_do(settings):
    url = settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("the roll-up is written by PostgreSQL triggers; SQLite's reports read the orders")
    with transaction(url) as session:
        shop_id = shops.install(session, DOMAIN, None, settings.encryption_keys).id

    @hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(zone=st.sampled_from(ZONES), specs=orders, ranges=st.lists(periods, min_size=1, max_size=4), data=st.data())
    def check(zone, specs, ranges, data):
        with transaction(url) as session:  # a new time zone is a rebuild (as `loyalty reports rebuild` does)
            session.get(Shop, shop_id).time_zone = zone
            session.flush()
            order_rollups.rebuild(session, shop_id, zone)
        for spec in specs:
            order_id, history = _history(spec)
            for event in history:
                _apply(url, event)
            if spec["change"]:
                _change(url, shop_id, order_id, spec)
        with transaction(url) as session:  # some buyers are redeemers: a reward issued at a random day
            for member_id in session.scalars(text("SELECT id FROM members WHERE shop_id = :s"), {"s": shop_id}):
                if data.draw(st.booleans()):
                    when = FIRST_DAY + timedelta(days=data.draw(st.integers(0, 150)))
                    session.add(
                        Redemption(
                            shop_id=shop_id, member_id=member_id, reward={"kind": "percentage"}, points=1,
                            status=data.draw(st.sampled_from(["issued", "failed"])), code=f"R-{next(_order_ids)}",
                            created_at=when,
                        )
                    )  # fmt: skip
        with transaction(url) as session:
            expected = session.execute(ROLLUP_FROM_ORDERS, {"shop": shop_id}).all()
            assert expected, "the orders were paid to members: the roll-up cannot be empty"
            assert session.execute(ROLLUP, {"shop": shop_id}).all() == expected
        for first, last in ranges:
            start = FIRST_DAY.date() + timedelta(days=first)
            from_rollup, from_orders = _kpis_both_ways(url, shop_id, start, FIRST_DAY.date() + timedelta(days=last))
            assert from_rollup == from_orders

    check()


def test_the_rebuild_command_recounts_a_rollup_lost_in_a_restore(app, settings, small_orders):
    """A restore that bypassed the triggers (pg_restore --disable-triggers) leaves the roll-up wrong; the CLI's
    rebuild recounts it from the orders, and the KPIs read from it agree with the orders again."""
    url = settings.database_url
    with transaction(url) as session:
        before = session.execute(ROLLUP_FROM_ORDERS, {"shop": small_orders}).all()
        session.execute(text("DELETE FROM member_order_months WHERE shop_id = :s"), {"s": small_orders})
    assert _kpis_both_ways(url, small_orders, date(2025, 1, 1), date(2025, 3, 31))[0]["buyers_non_redeemers"] == 0
    result = app.test_cli_runner().invoke(args=["loyalty", "reports", "rebuild", DOMAIN])
    assert result.exit_code == 0, result.output
    with transaction(url) as session:
        assert session.execute(ROLLUP, {"shop": small_orders}).all() == before
    from_rollup, from_orders = _kpis_both_ways(url, small_orders, date(2025, 1, 1), date(2025, 3, 31))
    assert from_rollup == from_orders
    # Order 3 (23:30 UTC on 31 March) is already April in Paris: two buyers, two orders in the quarter.
    assert (from_rollup["buyers_non_redeemers"], from_rollup["orders_non_redeemers"]) == (2, 2)


@pytest.fixture
def small_orders(settings) -> int:
    """Two members' paid orders in Paris: one in January, one in March, one at 23:30 UTC on 31 March
    (April in Paris)."""
    url = settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("the roll-up is written by PostgreSQL triggers; SQLite's reports read the orders")
    with transaction(url) as session:
        shop_id = shops.install(session, DOMAIN, None, settings.encryption_keys).id
        session.get(Shop, shop_id).time_zone = "Europe/Paris"
        first, second = Member(shop_id=shop_id, customer_id=1), Member(shop_id=shop_id, customer_id=2)
        session.add_all([first, second])
        session.flush()
        for order_id, member, paid in ((1, first, "2025-01-10T10:00"), (2, second, "2025-03-02T10:00"),
                                       (3, second, "2025-03-31T23:30")):  # fmt: skip
            session.add(Order(shop_id=shop_id, order_id=order_id, member_id=member.id, sales=Decimal("10.00"),
                              paid_at=datetime.fromisoformat(paid).replace(tzinfo=UTC)))  # fmt: skip
    return shop_id


def test_two_transactions_paying_one_members_orders_at_once_both_count(settings, small_orders):
    """The second writer of a member's month waits on the row's lock, then recounts what the first committed."""
    url = settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    insert = (
        "INSERT INTO orders (shop_id, order_id, member_id, created_seen, paid_at, sales, points_held, support_delta,"
        " unpaid_reversal, expired_points, updated_at)"
        " SELECT %s, %s, id, true, '2025-01-20T10:00Z', 5, 0, 0, 0, 0, now() FROM members"
        " WHERE shop_id = %s AND customer_id = 1"
    )
    with psycopg.connect(url) as first, psycopg.connect(url) as second:
        first.execute(insert, (small_orders, 10, small_orders))  # holds January's row of member 1, uncommitted
        waiting = threading.Thread(target=lambda: (second.execute(insert, (small_orders, 11, small_orders)),
                                                   second.commit()))  # fmt: skip
        waiting.start()
        assert _waits_on_a_lock(url, second.info.backend_pid), "the second writer should wait for the first's lock"
        first.commit()
        waiting.join(timeout=30)
        assert not waiting.is_alive()
    with transaction(settings.database_url) as session:
        assert (
            session.execute(ROLLUP, {"shop": small_orders}).all()
            == session.execute(ROLLUP_FROM_ORDERS, {"shop": small_orders}).all()
        )
        january = text("SELECT orders, sales FROM member_order_months WHERE shop_id = :s AND month = '2025-01-01'")
        assert session.execute(january, {"s": small_orders}).one() == (3, Decimal("20.00"))


def _waits_on_a_lock(url: str, pid: int) -> bool:
    """Whether the backend comes to wait on a lock (polled: the thread may not have reached the database yet)."""
    with psycopg.connect(url, autocommit=True) as watcher:
        for _ in range(300):
            row = watcher.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
            if row and row[0] == "Lock":
                return True
            time.sleep(0.1)
    return False
