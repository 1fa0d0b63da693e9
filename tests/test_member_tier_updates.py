"""The drain's members' tier update finds each member by its key on a members table never analysed (decision 0075).

pk_members is created empty, so on a shop never analysed it estimates one member a shop: joined to the batch's arrays
as is, the UPDATE read the whole shop by shop_id alone, and as an executemany its generic plan did the same through
the unique customer index (about 480 buffer hits a member in a 6,000-order run).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from plugin.models import Member
from plugin.services import member_rules_batch
from tests.bulk_rows import insert_members, never_analysed

MEMBERS = 1000
UNTIL = datetime(2027, 12, 31, 23, 59, tzinfo=UTC)


@pytest.fixture
def members(pg_engine, shop) -> list[int]:
    with pg_engine.begin() as connection:
        return insert_members(connection, shop, MEMBERS)


def _scans(plan: dict) -> list[dict]:
    """Every scan node of an EXPLAIN (FORMAT JSON) plan that reads a relation."""
    found = [plan] if "Relation Name" in plan and plan["Node Type"] != "ModifyTable" else []
    for child in plan.get("Plans", []):
        found += _scans(child)
    return found


def _updates(ids: list[int]) -> list[dict]:
    return [
        {"m_id": member_id, "tier": "gold" if n % 2 else None, "tier_until": UNTIL if n % 2 else None,
         "tier_paid_until": None}
        for n, member_id in enumerate(ids)
    ]  # fmt: skip


def test_each_member_is_found_by_its_key_on_a_shop_never_analysed(pg_engine, shop, members):
    chosen = members[MEMBERS // 2 : MEMBERS // 2 + 5]
    with Session(pg_engine) as session, session.begin():
        assert never_analysed(session, "members")
        params = member_rules_batch._tier_arrays(session, shop, _updates(chosen))
        plan = (
            session.connection()
            .exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + member_rules_batch.MEMBER_TIERS, params)
            .scalar()[0]["Plan"]
        )
        session.rollback()
    scans = [scan for scan in _scans(plan) if scan["Relation Name"] == "members"]
    # A join of the arrays with members, flattened, took pk_members with shop_id alone and read all 1,000.
    assert {scan["Node Type"] for scan in scans} <= {"Index Scan", "Index Only Scan", "Tid Scan"}, plan
    for scan in scans:
        if scan["Node Type"] != "Tid Scan":
            assert "id = moved.id" in scan["Index Cond"], plan
        assert scan["Actual Rows"] * scan["Actual Loops"] <= len(chosen), plan


def test_the_members_get_their_tiers_and_dates_and_no_one_else(pg_engine, shop, members):
    chosen = members[10:14]
    with Session(pg_engine) as session, session.begin():
        member_rules_batch._update_members(session, shop, _updates(chosen))
    with Session(pg_engine) as session:
        written = {
            m.id: (m.tier, m.tier_until, m.tier_paid_until)
            for m in session.query(Member).filter(Member.shop_id == shop, Member.tier.is_not(None))
        }
        untouched = session.query(Member).filter(Member.shop_id == shop, Member.tier_until.is_not(None)).count()
    assert written == {chosen[1]: ("gold", UNTIL, None), chosen[3]: ("gold", UNTIL, None)}
    assert untouched == 2


def test_a_member_not_found_redoes_the_batch_carefully(pg_engine, shop, members):
    with Session(pg_engine) as session, session.begin(), pytest.raises(member_rules_batch.batch_accrual.BatchConflict):
        member_rules_batch._update_members(session, shop, _updates([members[0], members[-1] + 1_000_000]))
