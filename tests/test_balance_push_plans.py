"""A balance push marks its members by their keys on a members table never analysed (decision 0079).

pk_members is created empty, so on a shop never analysed it estimates one member a shop: with `id IN (...)` beside
`shop_id`, the lock and the UPDATE of a push call read every member of the shop by shop_id alone and filtered on
the ids, in a shop's first minute, for every call of 25 members.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from plugin.models import Member
from plugin.services import balance_push
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


def test_the_lock_and_the_update_find_each_member_by_its_key_on_a_shop_never_analysed(pg_engine, shop, members):
    chosen = members[MEMBERS // 2 : MEMBERS // 2 + 25]
    with Session(pg_engine) as session, session.begin():
        assert never_analysed(session, "members")
        compiled = balance_push._LOCKED.compile(dialect=session.get_bind().dialect)
        lock = _explained(session, str(compiled), compiled.construct_params({"ids": chosen, "shop_id": shop}))
        update = _explained(
            session, balance_push.PUSHED_BALANCES, {"shop": shop, "ids": chosen, "sent": list(range(len(chosen)))}
        )
        session.rollback()
    # With `shop_id = ... AND id IN (...)`, each read pk_members by shop_id alone and filtered all 1,000 members.
    _by_key(lock, chosen)
    _by_key(update, chosen)


def test_the_pushed_balances_are_written_for_the_members_sent_and_no_one_else(pg_engine, shop, members):
    chosen = members[10:14]
    with Session(pg_engine) as session, session.begin():
        assert [member_id for member_id, _ in balance_push._lock_members(session, shop, chosen)] == chosen
        balance_push._write_pushed(session, shop, {member_id: 100 + n for n, member_id in enumerate(chosen)})
    with Session(pg_engine) as session:
        pushed = dict(
            session.query(Member.id, Member.pushed_balance).filter(
                Member.shop_id == shop, Member.pushed_balance.is_not(None)
            )
        )
    assert pushed == {member_id: 100 + n for n, member_id in enumerate(chosen)}


def test_a_member_another_transaction_holds_is_skipped(pg_engine, shop, members):
    held, free = members[20], members[21]
    with Session(pg_engine) as holder, holder.begin():
        holder.execute(text("SELECT 1 FROM members WHERE id = :id FOR UPDATE"), {"id": held})
        with Session(pg_engine) as session, session.begin():
            assert balance_push._lock_members(session, shop, [held, free]) == [(free, 0)]
