"""The tier rewards a batch's members hold are read from a partial index of the tier postings (decision 0058).

tiers.held_rewards runs once per drained batch of a shop with a tier programme; its members' other postings (two or
more an order) must not be visited, nor, on a table never analysed, the whole shop's ledger.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import event, text

from plugin.db import transaction
from plugin.services import tiers
from tests.bulk_rows import insert_members
from tests.test_inbox_indexes import _indexes, _work

MEMBERS, ROUNDS, REWARDED = 200, 20, 10  # each member 20 order postings; every 10th one a tier reward too


def _ledger(pg_engine, shop: int) -> None:
    with pg_engine.begin() as connection:
        insert_members(connection, shop, MEMBERS)
        posting = (
            "INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id,"
            " rule_version, idempotency_key, actor, created_at)"
            " SELECT :shop, m.id, :kind, 10, 0, :source_type, 'gold', 'v', :key || m.id, 'system', now()"
            " FROM members m WHERE m.shop_id = :shop AND m.id % :every = 0"
        )  # one posting a member per statement, as the ledger's trigger wants
        for n in range(ROUNDS):
            connection.execute(
                text(posting), {"shop": shop, "kind": "earn", "source_type": "order", "key": f"o{n}-", "every": 1}
            )
        connection.execute(
            text(posting), {"shop": shop, "kind": "bonus", "source_type": "tier", "key": "t-", "every": REWARDED}
        )


def test_held_rewards_read_only_the_members_tier_postings(pg_engine, shop):
    _ledger(pg_engine, shop)
    member_ids = list(range(1, 61))  # a batch's members, 6 of them holding a reward
    statements = []

    def keep(_conn, _cursor, statement, parameters, *_args):
        statements.append((statement, parameters))

    with transaction(pg_engine.url.render_as_string(hide_password=False)) as session:
        event.listen(pg_engine, "before_cursor_execute", keep)
        try:
            held = tiers.held_rewards(session, shop, member_ids)
        finally:
            event.remove(pg_engine, "before_cursor_execute", keep)
        assert held == {m: {"gold": (10, 1)} for m in member_ids if m % REWARDED == 0}
        ((statement, parameters),) = statements
        # Never analysed (autovacuum is off): the planner's defaults. And the generic plan that the driver's
        # prepared statement comes to after five runs, which knows no parameter's value.
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
        prepared = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
        connection = session.connection()
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        connection.exec_driver_sql(f"PREPARE held AS {prepared}".replace("%%", "%"))
        values = [parameters[name] for name in names]  # integers, lists of them, words: written as literals
        literals = ", ".join(f"'{{{','.join(map(str, v))}}}'" if isinstance(v, list) else f"'{v}'" for v in values)
        plan = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE held ({literals})").scalar()[0]
        plan = plan["Plan"]
    assert _indexes(plan) == {"ix_postings_tier_rewards"}, json.dumps(plan)
    # The batch's members, and a few rows per tier reward (probe, group, join): none of the 4,000 order postings.
    assert _work(plan) <= len(member_ids) + 4 * len(held), json.dumps(plan)
