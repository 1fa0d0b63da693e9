"""The balance and tier pushes mark their members by their keys on a members table never analysed (decision 0079).

pk_members is created empty, so on a shop never analysed it estimates one member a shop: with `id IN (...)` beside
`shop_id`, the lock and the UPDATE of a push call read every member of the shop by shop_id alone and filtered on
the ids, in a shop's first minute, for every call of 25 members.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from plugin.models import Member
from plugin.services import member_marks
from tests.bulk_rows import insert_members, never_analysed

MEMBERS = 1000


@pytest.fixture
def members(pg_engine, shop) -> list[int]:
    with pg_engine.begin() as connection:
        return insert_members(connection, shop, MEMBERS)


def _member_scans(plan: dict) -> list[dict]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads the members table."""
    found = [plan] if plan.get("Relation Name") == "members" and plan["Node Type"] != "ModifyTable" else []
    for child in plan.get("Plans", []):
        found += _member_scans(child)
    return found


def _explained(session: Session, sql: str, params: dict) -> dict:
    return session.connection().exec_driver_sql("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).scalar()[0]["Plan"]


def _by_key(plan: dict, chosen: list[int]) -> None:
    scans = _member_scans(plan)
    assert scans and {scan["Node Type"] for scan in scans} <= {"Index Scan", "Index Only Scan", "Tid Scan"}, plan
    for scan in scans:
        if scan["Node Type"] != "Tid Scan":
            assert "id = " in scan["Index Cond"] and "shop_id = " in scan["Index Cond"], plan
        assert scan["Actual Rows"] * scan["Actual Loops"] <= len(chosen), plan


SENT = {"balance": lambda n: 100 + n, "tier": lambda n: f"tier-{n}"}


@pytest.mark.parametrize("column", sorted(member_marks.MARKS))
def test_the_lock_and_the_update_find_each_member_by_its_key_on_a_shop_never_analysed(pg_engine, shop, members, column):
    chosen = members[MEMBERS // 2 : MEMBERS // 2 + 25]
    pushed, array_type = member_marks.MARKS[column]
    with Session(pg_engine) as session, session.begin():
        assert never_analysed(session, "members")
        compiled = member_marks._locked(column).compile(dialect=session.get_bind().dialect)
        lock = _explained(session, str(compiled), compiled.construct_params({"ids": chosen, "shop_id": shop}))
        sent = [SENT[column](n) for n in range(len(chosen))]
        update = _explained(
            session,
            member_marks._RECORDED.format(pushed=pushed, array_type=array_type),
            {"shop": shop, "ids": chosen, "sent": sent},
        )
        session.rollback()
    # With `shop_id = ... AND id IN (...)`, each read pk_members by shop_id alone and filtered all 1,000 members.
    _by_key(lock, chosen)
    _by_key(update, chosen)


@pytest.mark.parametrize("column", sorted(member_marks.MARKS))
def test_the_values_sent_are_recorded_for_the_members_sent_and_no_one_else(pg_engine, shop, members, column):
    chosen = members[10:14]
    pushed = getattr(Member, member_marks.MARKS[column][0])
    sent = {member_id: SENT[column](n) for n, member_id in enumerate(chosen)}
    with Session(pg_engine) as session, session.begin():
        assert [member_id for member_id, _ in member_marks.lock_free(session, shop, chosen, column)] == chosen
        member_marks.record(session, shop, column, sent)
    with Session(pg_engine) as session:
        recorded = dict(session.query(Member.id, pushed).filter(Member.shop_id == shop, pushed.is_not(None)))
    assert recorded == sent


def test_a_member_another_transaction_holds_is_skipped(pg_engine, shop, members):
    held, free = members[20], members[21]
    with Session(pg_engine) as holder, holder.begin():
        holder.execute(text("SELECT 1 FROM members WHERE id = :id FOR UPDATE"), {"id": held})
        with Session(pg_engine) as session, session.begin():
            assert member_marks.lock_free(session, shop, [held, free], "balance") == [(free, 0)]
            assert member_marks.lock_free(session, shop, [held, free], "tier") == [(free, None)]


def test_only_a_pushed_column_is_written_into_the_statement():
    with pytest.raises(ValueError, match="not a pushed column"):
        member_marks._locked("balance FROM members; --")
