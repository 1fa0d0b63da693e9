"""Batch statements of one text for every batch go unprepared: no plan kept from a small table scans it whole."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, text

from plugin import inbox
from plugin.db import engine_for, transaction, unprepared
from plugin.jobs import tasks
from plugin.services import shops, tier_sets
from tests import builders
from tests.conftest import SHOP

pytestmark = pytest.mark.db

GOLD_AT_100 = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [{"id": "gold", "name": "Gold", "threshold": "100"}],
}


@pytest.fixture
def postgresql_only(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("psycopg's prepared statements are PostgreSQL's")


def prepared_here(session, marker: str) -> int:
    return session.execute(
        text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE :like"), {"like": f"%{marker}%"}
    ).scalar()


def test_a_statement_run_often_in_the_block_is_never_prepared_and_outside_it_is(settings, postgresql_only):
    with transaction(settings.database_url) as session:
        for _ in range(8):  # psycopg prepares after five runs
            with unprepared(session):
                session.execute(text("SELECT CAST(:n AS int) AS inside_block"), {"n": 1})
        for _ in range(8):
            session.execute(text("SELECT CAST(:n AS int) AS outside_block"), {"n": 1})
        assert prepared_here(session, "inside_block") == 0
        assert prepared_here(session, "outside_block") == 1


def test_the_deliveries_finishing_update_and_the_members_orders_read_are_sent_unprepared(
    queued, shop_with_token, postgresql_only
):
    with transaction(queued.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), GOLD_AT_100, "test")  # so the drain reads members' orders
    thresholds: dict[str, list] = {"finish": [], "orders": []}

    def record(conn, _cursor, statement, _parameters, _context, _executemany):
        threshold = conn.connection.driver_connection.prepare_threshold
        if statement.lstrip().startswith("UPDATE deliveries SET status"):
            thresholds["finish"].append(threshold)
        elif "FROM orders" in statement and "member_id = ANY" in statement:
            thresholds["orders"].append(threshold)

    engine = engine_for(queued.database_url)
    event.listen(engine, "before_cursor_execute", record)
    try:
        for number in range(1, 4):
            body = json.dumps(builders.order(number, 7000 + number, [builders.line(10, "150.00")])).encode()
            inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"d-{number}", body))
        assert tasks.drain_inbox_with(queued) == {"processed": 3}
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert thresholds["finish"] and set(thresholds["finish"]) == {None}
    assert thresholds["orders"] and set(thresholds["orders"]) == {None}
