"""Rows the drain rewrites per order: each delivery's row once, a returning shopper's member row only if changed.

Every row version costs the database WAL, index entries when it is not HOT, and later vacuum work; decision 0059
took out two that each order paid for nothing.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, select, text

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Member, Shop
from plugin.programme.events import Customer
from plugin.services import accrual, batch_accrual
from tests import builders
from tests.conftest import SHOP
from tests.test_event_delivery_batches import Statements


def _members_updated(session) -> int:
    """Member rows updated so far (PostgreSQL's count, or SQLite's rows changed): compare two readings taken in
    one transaction (PostgreSQL's may also hold an earlier transaction's counts its backend has not reported)."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(
            text("SELECT n_tup_upd FROM pg_stat_xact_user_tables WHERE relname = 'members'")
        ).scalar_one()
    return session.execute(text("SELECT total_changes()")).scalar_one()


UPDATED = text(
    "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables WHERE relname IN ('members', 'member_order_months')"
)


def _store(settings, count: int, customer_id: int = 7000) -> None:
    for n in range(1, count + 1):
        body = json.dumps(builders.order(n, customer_id, [builders.line(n * 10, "10.00")])).encode()
        inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))


class RowsUpdated:
    """Rows changed by the statements that start with `prefix` (the driver's rowcount: an executemany's all sets,
    the set-based path's one UPDATE of a batch its rows)."""

    def __init__(self, database_url: str, prefix: str):
        self.engine, self.prefix, self.count = engine_for(database_url), prefix.lower(), 0

    def __call__(self, _conn, cursor, statement, _parameters, _context, _executemany):
        if statement.lstrip().lower().startswith(self.prefix):
            self.count += cursor.rowcount

    def __enter__(self):
        event.listen(self.engine, "after_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "after_cursor_execute", self)


def test_a_drained_delivery_is_written_once_with_its_claim_count(settings, shop):
    _store(settings, 4)
    with RowsUpdated(settings.database_url, "update deliveries") as updates:
        assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 4}
    assert updates.count == 4  # its status, processed time, customer and claim count together (8 before)
    with transaction(settings.database_url) as session:
        assert set(session.execute(select(Delivery.status, Delivery.attempts))) == {("processed", 1)}


def test_a_delivery_drained_one_by_one_is_written_once_with_its_claim_count(settings, shop):
    _store(settings, 3)
    with Statements(settings.database_url, "update deliveries", per_parameter_set=True) as updates:
        assert inbox.drain(settings.database_url, batch_size=10, set_based=False) == {"processed": 3}
    assert updates.count == 3
    with transaction(settings.database_url) as session:
        assert set(session.execute(select(Delivery.status, Delivery.attempts))) == {("processed", 1)}


def test_the_batch_enrolment_leaves_an_unchanged_member_alone_and_still_returns_it(settings, shop):
    ada = Customer(7000, "ada@example.com", "Ada", "Lovelace", tags=frozenset({"vip"}))
    grace = Customer(7001, "grace@example.com", "Grace", "Hopper")
    with transaction(settings.database_url) as session:
        first = batch_accrual._enrol(session, session.get(Shop, shop), [ada, grace])
    with transaction(settings.database_url) as session:
        before = _members_updated(session)
        again = batch_accrual._enrol(session, session.get(Shop, shop), [ada, grace])
        assert _members_updated(session) - before == 0  # two rows rewritten with the same values before
    assert again == first
    with transaction(settings.database_url) as session:
        before = _members_updated(session)
        moved = batch_accrual._enrol(session, session.get(Shop, shop), [ada, Customer(7001, "grace@navy.mil")])
        assert _members_updated(session) - before == 1  # a changed detail is still written
        assert session.scalar(select(Member.email).where(Member.customer_id == 7001)) == "grace@navy.mil"
        assert session.scalar(select(Member.first_name).where(Member.customer_id == 7001)) == "Grace"
    assert moved == first


def test_enrol_leaves_an_unchanged_member_alone_and_still_returns_it(settings, shop):
    ada = Customer(7000, "ada@example.com", "Ada", "Lovelace", tags=frozenset({"vip"}))
    with transaction(settings.database_url) as session:
        member_id = accrual.enrol(session, shop, ada)
    with transaction(settings.database_url) as session:
        before = _members_updated(session)
        assert accrual.enrol(session, shop, ada) == member_id
        assert _members_updated(session) - before == 0
    with transaction(settings.database_url) as session:
        before = _members_updated(session)
        assert accrual.enrol(session, shop, Customer(7000, tags=frozenset({"vip", "new"}))) == member_id
        assert _members_updated(session) - before == 1
        assert session.scalar(select(Member.tags).where(Member.id == member_id)) == ["new", "vip"]
        assert session.scalar(select(Member.email).where(Member.id == member_id)) == "ada@example.com"


def test_a_delivery_parked_after_its_savepoint_rolled_back_keeps_its_claim_count(settings, shop):
    _store(settings, 2)
    broken = b'{"id": 3, "customer": '  # refused inside its savepoint, which rolls back: then parked
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", "w-3", broken))
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 2, "parked": 1}
    with transaction(settings.database_url) as session:
        rows = {d.webhook_id: (d.status, d.attempts) for d in session.scalars(select(Delivery))}
    assert rows == {"w-1": ("processed", 1), "w-2": ("processed", 1), "w-3": ("parked", 1)}


def test_a_returning_shoppers_order_writes_one_version_of_its_member_and_member_month(settings, shop, monkeypatch):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the member-month roll-up is PostgreSQL's (its triggers), and so is the count of row versions")
    _store(settings, 1)
    assert inbox.drain(settings.database_url) == {"processed": 1}  # the shopper and their month are new here
    body = json.dumps(builders.order(2, 7000, [builders.line(20, "10.00")])).encode()
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", "w-2", body))
    written: dict[str, int] = {}
    real_apply = batch_accrual.apply

    def apply(session, shop_row, items):
        # Before and after, inside the drain's transaction: the view may also hold a past transaction's counts
        # that this backend has not reported yet, but nothing is reported in the middle of a transaction.
        before = dict(session.execute(UPDATED).all())
        applied = real_apply(session, shop_row, items)
        written.update({name: count - before[name] for name, count in session.execute(UPDATED).all()})
        return applied

    monkeypatch.setattr(batch_accrual, "apply", apply)
    assert inbox.drain(settings.database_url) == {"processed": 1}
    # The member: its balance moved, the enrolment left it alone (2 before: the same details written back).
    # The member-month: recounted, the lock before it wrote nothing (2 before: locked by a same-value update).
    assert written == {"members": 1, "member_order_months": 1}
