"""A member looked up by its key finds it by the primary key, on a members table never analysed (decision 0071).

Every posting and order checks its member's foreign key (`shop_id = $1 AND id = $2`), and the posting trigger locks
the member's balance by the same key. On a fresh shop (autovacuum has not analysed members yet) the planner costed
every index leading with shop_id alike and took the smallest, (shop_id, tier_until), an index of NULLs: each lookup
read every member of the shop.
"""

from __future__ import annotations

import pytest
from alembic import command

from tests.bulk_rows import insert_members, never_analysed
from tests.conftest import alembic_config
from tests.schema_reads import indexes

# Members of one shop, each with an email and no tier (as a base-rule shop's are). Past ~1,500 the (shop_id,
# tier_until) index grows a level and loses the tie to the primary key; a session's plans made before then are kept.
MEMBERS = 1000

# The two key lookups as PostgreSQL runs them: the foreign-key check (ri_triggers.c) and the posting trigger's lock.
LOOKUPS = {
    "foreign key": "SELECT 1 FROM ONLY members x WHERE shop_id = $1 AND id = $2 FOR KEY SHARE OF x",
    "balance lock": "SELECT balance FROM members WHERE id = $2 AND shop_id = $1 FOR UPDATE",
}


def _index_scans(plan: dict) -> list[dict]:
    """Every index scan node of an EXPLAIN (FORMAT JSON) plan."""
    found = [plan] if "Index Name" in plan else []
    for child in plan.get("Plans", []):
        found += _index_scans(child)
    return found


@pytest.fixture
def members(pg_engine, shop) -> list[int]:
    with pg_engine.begin() as connection:
        return insert_members(connection, shop, MEMBERS, emails=True)


@pytest.mark.parametrize("lookup", sorted(LOOKUPS))
def test_the_generic_plan_of_a_key_lookup_uses_the_primary_key(pg_engine, shop, members, lookup):
    with pg_engine.begin() as connection:
        assert never_analysed(connection, "members")
        connection.exec_driver_sql(f"PREPARE lookup (bigint, bigint) AS {LOOKUPS[lookup]}")
        connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        plan = connection.exec_driver_sql(
            f"EXPLAIN (FORMAT JSON) EXECUTE lookup ({shop}, {members[MEMBERS // 2]})"
        ).scalar()[0]["Plan"]
        connection.exec_driver_sql("DEALLOCATE lookup")
    # Without migration 0040: ix_members_shop_id_tier_until, Index Cond (shop_id = $1), Filter (id = $2).
    scans = _index_scans(plan)
    assert [scan["Index Name"] for scan in scans] == ["pk_members"], plan
    assert "$2" in scans[0]["Index Cond"] and "Filter" not in scans[0], plan


def _member_indexes(url: str) -> dict[str, bool]:
    """members' side indexes, each with whether it is partial."""
    found = indexes(url, "members")
    return {name: " WHERE " in sql for name, sql in found.items() if "_shop_id_" in name and "customer" not in name}


def test_the_migration_makes_the_side_indexes_partial_on_postgresql_and_downgrades(scratch_url):
    config = alembic_config(scratch_url)
    names = {"ix_members_shop_id_" + n for n in ("email", "lower_email", "tier", "tier_until")}
    command.upgrade(config, "0039")
    assert _member_indexes(scratch_url) == dict.fromkeys(names, False)
    command.upgrade(config, "0040")
    assert _member_indexes(scratch_url) == dict.fromkeys(names, scratch_url.startswith("postgresql"))
    command.downgrade(config, "0039")
    assert _member_indexes(scratch_url) == dict.fromkeys(names, False)
    command.upgrade(config, "head")
