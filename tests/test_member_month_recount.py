"""The member-month triggers read a member's own orders only (decision 0061), and an insert reads none (0067).

Every drained batch inserts its orders, and the insert trigger adds them to each member-month they join (it
recounted them before decision 0067). Analysed or not, and whenever the session planned it, an insert must not walk
every order of the shop's month once per member.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import text

from plugin.db import engine_for, transaction
from plugin.services import shops
from tests.bulk_rows import insert_members
from tests.conftest import ENCRYPTION_KEY, SHOP, migrate, own_database

# 15,000 paid orders this month in the shop, 15 a member, each with a lot of a stored lot's size (about 1.6 kB): on a
# smaller or narrower table, never analysed, the planner happened to choose the member's index anyway.
MEMBERS, ORDERS = 1000, 15

# The orders' index blocks this transaction has read so far, every index of the table together. (Not the entries
# returned: an index scan checks member_id inside the index and returns the member's entries only, whatever it walked.)
_INDEX_BLOCKS = text(
    "SELECT sum(pg_stat_get_xact_blocks_fetched(indexrelid)) FROM pg_index WHERE indrelid = 'orders'::regclass"
)
_ORDER = (
    "INSERT INTO orders (shop_id, order_id, member_id, created_seen, paid_at, points_held, updated_at, sales, lot)"
    " SELECT :shop, 500000 + m.id * 100 + g, m.id, false, date_trunc('month', now()) + make_interval(mins => g),"
    " 0, now(), 10.00, (SELECT jsonb_object_agg(k, md5(k::text)) FROM generate_series(1, 40) k)"
    " FROM members m CROSS JOIN generate_series(CAST(:first AS integer), CAST(:last AS integer)) g"
    " WHERE m.shop_id = :shop"
)


@pytest.fixture
def orders_database(analysed, pg_engine, shop, database_template):
    """(engine, shop id) whose orders the test fills: the run's database, or to be analysed a migrated database of
    its own, so that the statistics ANALYZE leaves on orders reach no later test of the run."""
    if not analysed:
        yield pg_engine, shop
        return
    with own_database(database_template, f"loyalty_test_{os.getpid()}_analysed") as url:
        migrate(url)
        with transaction(url) as session:
            own_shop = shops.install(session, SHOP, None, (ENCRYPTION_KEY,)).id
        yield engine_for(url), own_shop


@pytest.mark.parametrize("analysed", [False, True], ids=["never analysed", "analysed"])
def test_an_inserted_order_recounts_its_members_month_from_the_members_orders(orders_database, analysed):
    pg_engine, shop = orders_database
    with pg_engine.begin() as connection:
        insert_members(connection, shop, MEMBERS)
        connection.execute(text(_ORDER), {"shop": shop, "first": 1, "last": ORDERS})
    if analysed:
        with pg_engine.begin() as connection:
            connection.execute(text("ANALYZE orders"))
    with pg_engine.begin() as connection:
        member = connection.execute(text("SELECT min(id) FROM members WHERE shop_id = :shop"), {"shop": shop}).scalar()
        # The trigger's plan is cached per session, made when first used (here, on an empty table) and made again
        # after any invalidation; as a worker's session comes to, plan it on the table as it is now.
        connection.exec_driver_sql("DISCARD PLANS")
        before = connection.execute(_INDEX_BLOCKS).scalar()
        connection.execute(
            text(_ORDER + " AND m.id = :member"),
            {"shop": shop, "first": ORDERS + 1, "last": ORDERS + 1, "member": member},
        )
        read = connection.execute(_INDEX_BLOCKS).scalar() - before
        month = connection.execute(
            text("SELECT orders, sales FROM member_order_months WHERE shop_id = :shop AND member_id = :member"),
            {"shop": shop, "member": member},
        ).one()
    assert tuple(month) == (ORDERS + 1, 10 * (ORDERS + 1))
    # 15-21 index blocks: the new order's own entries and the member's month. Without ix_orders_member_paid_at,
    # 191 never analysed and 196 analysed: the recount walked the month's whole range of (shop_id, paid_at, member_id).
    assert read <= 40, read


_INDEX_SCANS = text(
    "SELECT sum(pg_stat_get_xact_numscans(indexrelid)) FROM pg_index WHERE indrelid = 'orders'::regclass"
)


def test_a_worker_session_adds_its_orders_to_the_member_month_without_reading_the_orders(pg_engine, shop):
    """A worker's session runs the trigger first on a small table and keeps that plan (PL/pgSQL caches it) while
    the table grows: the recount's plan made then walked the month of the whole shop for each member-month (the
    end-to-end bench: ~950 blocks an order). The trigger now adds the statement's orders and reads none."""
    with pg_engine.connect() as worker:
        insert_members(worker, shop, MEMBERS)
        member = worker.execute(text("SELECT min(id) FROM members WHERE shop_id = :shop"), {"shop": shop}).scalar()
        one_member = _ORDER + " AND m.id = :member"
        worker.execute(text(one_member), {"shop": shop, "first": 1, "last": 1, "member": member})
        worker.commit()
        with pg_engine.begin() as others:  # every other member's orders, and this one's, from another session
            others.execute(
                text(_ORDER + " AND m.id <> :member"), {"shop": shop, "first": 1, "last": ORDERS, "member": member}
            )
            others.execute(text(one_member), {"shop": shop, "first": 2, "last": ORDERS, "member": member})
        scans, blocks = worker.execute(_INDEX_SCANS).scalar(), worker.execute(_INDEX_BLOCKS).scalar()
        worker.execute(text(one_member), {"shop": shop, "first": ORDERS + 1, "last": ORDERS + 1, "member": member})
        scanned = worker.execute(_INDEX_SCANS).scalar() - scans
        read = worker.execute(_INDEX_BLOCKS).scalar() - blocks
        month = worker.execute(
            text(
                "SELECT orders, sales, first_paid_at = date_trunc('month', now()) + interval '1 minute',"
                " last_paid_at = date_trunc('month', now()) + make_interval(mins => :last)"
                " FROM member_order_months WHERE shop_id = :shop AND member_id = :member"
            ),
            {"shop": shop, "member": member, "last": ORDERS + 1},
        ).one()
        worker.commit()
    assert tuple(month) == (ORDERS + 1, 10 * (ORDERS + 1), True, True)
    # The new order's own index entries only (seven indexes, two or three levels each); no index scan of orders.
    assert scanned == 0, scanned
    assert read <= 30, read
