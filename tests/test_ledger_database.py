"""The ledger's invariants held by the database itself: writes that bypass Python keep the balance right or fail."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from plugin import ledger
from plugin.db import engine_for, transaction
from plugin.ledger.kinds import KINDS
from plugin.models import Member, Order, Posting
from plugin.programme.events import Customer
from plugin.services import shops, support
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SHOP, deliver

ALICE = 7001

# A writer that knows nothing of ledger.post: it states balance_after from the row it reads, as SQLite requires
# (PostgreSQL sets it under the member's lock whatever the writer says).
RAW_POSTING = text(
    "INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,"
    " idempotency_key, actor, created_at)"
    " VALUES (:shop, :member, :kind, :points, (SELECT balance FROM members WHERE id = :member) + :points,"
    " 'support', :key, 'raw-sql', :key, 'raw-sql', CURRENT_TIMESTAMP)"
    " ON CONFLICT (shop_id, idempotency_key) DO NOTHING"
)


def is_postgresql(settings) -> bool:
    return not settings.database_url.startswith("sqlite")


@pytest.fixture
def member(settings, shop) -> int:
    """Alice, enrolled with nothing posted yet; returns her member id."""
    with transaction(settings.database_url) as session:
        return enrol(session, shop, Customer(ALICE))


def raw_post(settings, shop: int, member: int, kind: str, points: int, key: str) -> None:
    with transaction(settings.database_url) as session:
        session.execute(RAW_POSTING, {"shop": shop, "member": member, "kind": kind, "points": points, "key": key})


def ledger_of(settings, member: int) -> tuple[int, list[tuple[str, int, int]]]:
    """The member's cached balance, and their postings as (kind, points, balance_after) in order."""
    with transaction(settings.database_url) as session:
        balance = session.execute(select(Member.balance).where(Member.id == member)).scalar_one()
        rows = session.execute(
            select(Posting.kind, Posting.points, Posting.balance_after)
            .where(Posting.member_id == member)
            .order_by(Posting.id)
        ).all()
        assert ledger.verify(session) == []
    return balance, [tuple(row) for row in rows]


def test_postings_written_in_raw_sql_move_the_cached_balance(settings, shop, member):
    raw_post(settings, shop, member, "earn", 100, "raw-1")
    raw_post(settings, shop, member, "redeem", -30, "raw-2")
    raw_post(settings, shop, member, "bonus", 5, "raw-3")
    assert ledger_of(settings, member) == (75, [("earn", 100, 100), ("redeem", -30, 70), ("bonus", 5, 75)])


def test_a_raw_posting_whose_key_exists_moves_nothing(settings, shop, member):
    raw_post(settings, shop, member, "earn", 100, "raw-1")
    raw_post(settings, shop, member, "earn", 100, "raw-1")  # ON CONFLICT DO NOTHING: the row is not inserted
    assert ledger_of(settings, member) == (100, [("earn", 100, 100)])


def test_every_listed_kind_is_accepted_by_the_database(settings, shop, member):
    for number, kind in enumerate(KINDS):
        raw_post(settings, shop, member, kind, 1, f"kind-{number}")
    balance, postings = ledger_of(settings, member)
    assert balance == len(KINDS) and [p[0] for p in postings] == list(KINDS)


def test_the_balance_after_a_posting_is_the_databases_to_state(settings, shop, member):
    raw_post(settings, shop, member, "earn", 100, "raw-1")
    wrong = text(
        "INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,"
        " idempotency_key, actor, created_at)"
        " VALUES (:shop, :member, 'bonus', 5, 999, 'support', 'x', 'raw-sql', 'raw-2', 'raw-sql', CURRENT_TIMESTAMP)"
    )
    if is_postgresql(settings):  # set under the member's lock, whatever the writer said
        with transaction(settings.database_url) as session:
            session.execute(wrong, {"shop": shop, "member": member})
        assert ledger_of(settings, member) == (105, [("earn", 100, 100), ("bonus", 5, 105)])
    else:  # SQLite triggers cannot rewrite a row: a wrong figure is refused
        with pytest.raises(DBAPIError, match="balance_after"), transaction(settings.database_url) as session:
            session.execute(wrong, {"shop": shop, "member": member})
        assert ledger_of(settings, member) == (100, [("earn", 100, 100)])


BAD_WRITES = {
    "unknown kind": ("ck_postings_kind", RAW_POSTING, {"kind": "bogus", "points": 5, "key": "bad"}),
    "zero points": ("ck_postings_points_nonzero", RAW_POSTING, {"kind": "bonus", "points": 0, "key": "bad"}),
    "posting updated": ("append-only", text("UPDATE postings SET points = 1000"), {}),
    "posting deleted": ("append-only", text("DELETE FROM postings"), {}),
    "balance raised by hand": ("members.balance", text("UPDATE members SET balance = balance + 5"), {}),
    "balance zeroed by hand": ("members.balance", text("UPDATE members SET balance = 0"), {}),
    "member created with a balance": (
        "starts at 0",
        text(
            "INSERT INTO members (shop_id, customer_id, balance, enrolled_at)"
            " VALUES (:shop, 7002, 50, CURRENT_TIMESTAMP)"
        ),
        {},
    ),
}


@pytest.mark.parametrize("write", BAD_WRITES)
def test_the_database_refuses_writes_that_would_break_the_ledger(settings, shop, member, write):
    raw_post(settings, shop, member, "earn", 100, "raw-1")
    message, statement, params = BAD_WRITES[write]
    with pytest.raises(DBAPIError, match=message), transaction(settings.database_url) as session:
        session.execute(statement, {"shop": shop, "member": member, **params})
    assert ledger_of(settings, member) == (100, [("earn", 100, 100)])


def test_other_member_columns_stay_writable(settings, shop, member):
    raw_post(settings, shop, member, "earn", 100, "raw-1")
    with transaction(settings.database_url) as session:  # the balance push and enrolment write these
        session.execute(text("UPDATE members SET pushed_balance = balance, email = 'alice@example.com'"))
        session.execute(text("UPDATE members SET balance = balance"))  # not a change
    assert ledger_of(settings, member) == (100, [("earn", 100, 100)])


def test_two_postings_of_one_member_in_one_statement(settings, shop, member):
    two_rows = text(
        "INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,"
        " idempotency_key, actor, created_at)"
        " SELECT :shop, :member, 'bonus', p, (SELECT balance FROM members WHERE id = :member) + p, 'support', 'x',"
        " 'raw-sql', 'raw-' || p, 'raw-sql', CURRENT_TIMESTAMP FROM (SELECT 10 AS p UNION ALL SELECT 20) AS pts"
        " WHERE true"
    )
    if is_postgresql(settings):
        # Row triggers after an insert run at the statement's end, too late for the second row's balance_after.
        with pytest.raises(DBAPIError, match="one posting of member"), transaction(settings.database_url) as session:
            session.execute(two_rows, {"shop": shop, "member": member})
        assert ledger_of(settings, member) == (0, [])
    else:
        with pytest.raises(DBAPIError, match="balance_after"), transaction(settings.database_url) as session:
            session.execute(two_rows, {"shop": shop, "member": member})  # its second row's figure is stale
        assert ledger_of(settings, member) == (0, [])


def test_concurrent_raw_postings_of_one_member_queue_on_the_member_row(settings, shop, member):
    """The second writer waits for the first and starts from its balance (PostgreSQL: many writers at once)."""
    if not is_postgresql(settings):
        pytest.skip("SQLite has one writer at a time")
    engine = engine_for(settings.database_url)
    params = {"shop": shop, "member": member, "kind": "bonus"}
    errors: list[BaseException] = []
    with engine.connect() as first:
        first.execute(RAW_POSTING, {**params, "points": 10, "key": "first"})  # holds the member row's lock
        first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar_one()

        def second_writer() -> None:
            try:
                with engine.begin() as second:
                    second.execute(RAW_POSTING, {**params, "points": 5, "key": "second"})
            except BaseException as error:  # surfaced by the assertion below
                errors.append(error)

        writer = threading.Thread(target=second_writer)
        writer.start()
        with engine.connect() as watcher:
            blocked = text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))")
            while not watcher.execute(blocked, {"pid": first_pid}).scalar_one() and writer.is_alive():
                watcher.commit()  # a fresh snapshot of the activity view on the next look
        first.commit()
        writer.join()
    assert errors == []
    assert ledger_of(settings, member) == (15, [("bonus", 10, 10), ("bonus", 5, 15)])


# stop_at_zero: what the member had already spent is forgiven in a posting of its own.


@pytest.fixture
def spender(client, settings, shop) -> int:
    """Alice under stop_at_zero: 120 points from order 1 and 30 from order 2, 140 of them spent; her member id."""
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": "stop_at_zero"})
    deliver(client, "orders/paid", builders.order(1, ALICE, [builders.line(10, "60.00", 2)]))
    deliver(client, "orders/paid", builders.order(2, ALICE, [builders.line(20, "30.00")]))
    with transaction(settings.database_url) as session:
        member = shops.member(session, shops.get(session, SHOP), ALICE)
        spend = ledger.Entry(member.id, "redeem", -140, "redemption", "r-1", "redemption:r-1", "test")
        assert ledger.post(session, shop, spend) is not None
        return member.id


def held(settings, order_id: int) -> tuple[int, int]:
    with transaction(settings.database_url) as session:
        order = session.execute(select(Order).where(Order.order_id == order_id)).scalar_one()
        return order.points_held, order.unpaid_reversal


def test_stop_at_zero_posts_the_forgiven_points_before_the_whole_reversal(client, settings, spender):
    deliver(client, "refunds/create", builders.refund(9, 1, {10: 2}))
    deliver(client, "refunds/create", builders.refund(9, 1, {10: 2}))  # a repeat changes nothing
    balance, postings = ledger_of(settings, spender)
    assert balance == 0
    assert postings[-2:] == [("forgive", 110, 120), ("reverse", -120, 0)]  # never below zero on the way
    assert held(settings, 1) == (0, 0)  # the order gave back all it earned; nothing left unposted
    with transaction(settings.database_url) as session:
        forgive = session.execute(select(Posting).where(Posting.kind == "forgive")).scalar_one()
    assert (forgive.source_type, forgive.source_id, forgive.order_id) == ("refund", "9", 1)
    assert "stop_at_zero forgives 110 points already spent" in forgive.note


def test_a_support_reversal_under_stop_at_zero_records_what_the_balance_moved(client, settings, spender):
    with transaction(settings.database_url) as session:
        action = support.reverse_order(session, shops.get(session, SHOP), 1, None, "fraud", "chargeback", "desk")
        recorded = (action.points, action.balance_before, action.balance_after)
    assert recorded == (-10, 10, 0)
    balance, postings = ledger_of(settings, spender)
    assert (balance, postings[-2:]) == (0, [("forgive", 110, 120), ("reverse", -120, 0)])
    assert held(settings, 1) == (0, 0)
