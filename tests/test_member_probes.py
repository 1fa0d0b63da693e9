"""The set-based drain locks its batch's members and reads their milestone holdings by key (decision 0061).

member_facts.read runs in every round of every drained batch of a shop with tiers or milestones. On tables never
analysed (a fresh shop, before autovacuum's first pass), it must still visit the batch's members and their holdings
only, not every member and holding of the shop.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError

from plugin.db import transaction
from plugin.services import member_facts, shops
from tests.bulk_rows import insert_members
from tests.conftest import SHOP
from tests.test_inbox_indexes import _work

MEMBERS, BATCH = 2000, 40  # the shop's members, each holding two milestone rules; a batch's members


def test_a_batch_locks_its_members_and_reads_their_holdings_by_key(pg_engine, settings, shop):
    with pg_engine.begin() as connection:
        insert_members(connection, shop, MEMBERS)
        connection.execute(
            text(
                "INSERT INTO milestone_holdings (shop_id, member_id, rule_key, grants, points_held, unpaid, sequence,"
                " rewards, updated_at) SELECT :shop, m.id, r.key, '[10]', 10, 0, 1, '[]', now()"
                " FROM members m CROSS JOIN (VALUES ('punch:a'), ('threshold:b')) AS r (key) WHERE m.shop_id = :shop"
            ),
            {"shop": shop},
        )
    with transaction(settings.database_url) as session:
        member_ids = list(
            session.scalars(
                text("SELECT id FROM members WHERE shop_id = :shop ORDER BY id DESC LIMIT :batch"),
                {"shop": shop, "batch": BATCH},
            )
        )
        shop_row = shops.get(session, SHOP)
        statements = []

        def keep(_conn, _cursor, statement, parameters, *_args):
            statements.append((statement, parameters))

        event.listen(pg_engine, "before_cursor_execute", keep)
        try:
            facts = member_facts.read(session, shop_row, member_ids, with_milestones=True)
        finally:
            event.remove(pg_engine, "before_cursor_execute", keep)
        # Each read of the members or their holdings, run again under EXPLAIN ANALYZE in the same transaction: the
        # rows its plan visited (produced or filtered out, in every loop).
        work = {}
        for statement, parameters in statements:
            table = next((t for t in ("milestone_holdings", "members") if f"from {t}" in statement.lower()), None)
            if table is not None:
                explain = f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}"
                plan = session.connection().exec_driver_sql(explain, parameters).scalar()[0]["Plan"]
                work[table] = work.get(table, 0) + _work(plan)
        # Locked still: another transaction cannot take a batch member's lock, and can take another member's.
        with pg_engine.connect() as other:
            lock = text("SELECT id FROM members WHERE shop_id = :shop AND id = :id FOR UPDATE NOWAIT")
            with pytest.raises(OperationalError):
                other.execute(lock, {"shop": shop, "id": member_ids[-1]})
            other.rollback()
            assert other.execute(lock, {"shop": shop, "id": member_ids[-1] - 1}).scalar() == member_ids[-1] - 1
            other.rollback()
    assert sorted(facts.members) == sorted(member_ids)
    assert {key for held in facts.holdings.values() for key in held} == {"punch:a", "threshold:b"}
    assert all(len(facts.holdings[m]) == 2 for m in member_ids)
    # A few rows per member of the batch in each node (the ids, the probe, the lock, the join): 200 each here. With
    # IN lists, on these never-analysed tables, 2,040 and 8,000: the shop's 2,000 members and 4,000 holdings.
    assert set(work) == {"members", "milestone_holdings"}, statements
    assert work["members"] <= 6 * BATCH, work
    assert work["milestone_holdings"] <= 6 * BATCH, work
