"""Members locked and marked by key, skipping those another transaction holds: what the balance and tier pushes sent;
and a push's run, one at a time per shop.

A drain batch locks its members and holds them to its commit. A push that waited for such a row while holding
others, in another order, deadlocked drain batches (each rolled back and redone one by one, in the end-to-end
benchmark); a held member's value is about to change anyway, so the push leaves it due.

On PostgreSQL each member is probed by its key (decision 0079): with `id IN (...)` beside `shop_id`, on a members
table not analysed yet (a shop's first minute, before autovacuum's first pass) the planner read the shop's every
member by shop_id alone and filtered on the ids, for each call's members. SQLite keeps the plain statements.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import case, select, text, update
from sqlalchemy.orm import Session

from plugin.db import engine_for
from plugin.models import Member
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable

log = logging.getLogger(__name__)

# What a push reads and records, by the member's column: the column it records the sent value in, and that
# column's array type in PostgreSQL.
MARKS = {"balance": ("pushed_balance", "bigint"), "tier": ("pushed_tier", "varchar")}


def lock_free(session: Session, shop_id: int, member_ids: list[int], column: str) -> list[tuple[int, Any]]:
    """(id, `column`) of the members not held by another transaction, locked, in id order; the others skipped.
    `column`: one of MARKS."""
    _checked(column)
    if session.get_bind().dialect.name == "postgresql":
        return [tuple(row) for row in session.execute(_locked(column), {"ids": member_ids, "shop_id": shop_id})]
    return [
        tuple(row)
        for row in session.execute(
            select(Member.id, getattr(Member, column))
            .where(Member.shop_id == shop_id, Member.id.in_(member_ids))
            .order_by(Member.id)
            .with_for_update(skip_locked=True)
        )
    ]


def record(session: Session, shop_id: int, column: str, sent: dict[int, Any]) -> None:
    """Record the value of `column` sent to each of these members, which this transaction holds (lock_free)."""
    pushed, array_type = MARKS[column]
    if session.get_bind().dialect.name == "postgresql":
        params = {"shop": shop_id, "ids": list(sent), "sent": list(sent.values())}
        session.connection().exec_driver_sql(_RECORDED.format(pushed=pushed, array_type=array_type), params)
        return
    session.execute(
        update(Member)
        .where(Member.shop_id == shop_id, Member.id.in_(list(sent)))
        .values({pushed: case(sent, value=Member.id)})
        .execution_options(synchronize_session=False)
    )


@lru_cache(maxsize=len(MARKS))
def _locked(column: str):
    """The members in id order, each by its key; SKIP LOCKED, so never waiting on a drain."""
    _checked(column)  # written into the statement
    return text(
        f"SELECT m.id, m.{column} FROM unnest(CAST(:ids AS BIGINT[])) AS k (id)"
        f" CROSS JOIN LATERAL (SELECT id, {column} FROM members WHERE shop_id = :shop_id AND id = k.id"
        " FOR UPDATE SKIP LOCKED) AS m"
    )


def _checked(column: str) -> None:
    if column not in MARKS:
        raise ValueError(f"not a pushed column: {column!r}")


# Each member found by its key (OFFSET 0 keeps the planner from flattening the subquery into a join that reads the
# shop by shop_id alone), updated by its ctid: the row is locked by this transaction, so it cannot move.
_RECORDED = """
    UPDATE members SET {pushed} = found.sent
    FROM (
        SELECT member.at, pushed.sent
        FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(sent)s AS {array_type}[])) AS pushed (id, sent)
        CROSS JOIN LATERAL (
            SELECT ctid AS at FROM members WHERE shop_id = %(shop)s AND id = pushed.id OFFSET 0
        ) AS member
    ) AS found
    WHERE members.ctid = found.at AND members.shop_id = %(shop)s
"""


def push_each(
    database_url: str,
    namespace: str,
    shop_ids: list[int],
    push: Callable[[int], int],
    resting: Callable[[int], bool],
    failed: Callable[[int], None],
) -> int:
    """Run `push(shop_id)` for each shop not `resting`, one run at a time per shop (one_run, in `namespace`); returns
    the sum of what the runs wrote. A shop whose Admin API refused or failed is told to `failed` and stays due."""
    written = 0
    for shop_id in shop_ids:
        if resting(shop_id):
            continue
        try:
            with one_run(database_url, namespace, shop_id) as alone:
                if alone:
                    written += push(shop_id)
        except (AdminAPIError, AdminAPIUnavailable) as error:  # stays due; tried again after a rest
            log.warning("%s for shop %s stopped: %s", namespace, shop_id, error)
            failed(shop_id)
    return written


@contextmanager
def one_run(database_url: str, namespace: str, shop_id: int) -> Iterator[bool]:
    """Whether this run of a push (`namespace`) has the shop to itself: False when another run holds it, which this
    one then leaves alone (that run, the next drain's signal or the sweeper sends what is left).

    A signal during a run starts another (the job's claim is cleared as it starts). PostgreSQL: a session-level
    advisory lock, tried without waiting, on a connection of its own held for the run and unlocked at its end (a
    process that dies closes the connection, which releases it). SQLite (the embedded demo, inline jobs): no lock;
    two request threads' inline runs may still overlap, which the pushes' own records guard against as before."""
    engine = engine_for(database_url)
    if engine.dialect.name != "postgresql":
        yield True
        return
    with engine.connect() as connection:
        params = {"namespace": namespace, "shop": str(shop_id)}
        alone = connection.exec_driver_sql(TRY_RUN_LOCK, params).scalar_one()
        connection.commit()  # the lock outlives the transaction; the pool's reset on return would not release it
        try:
            yield alone
        finally:
            if alone:
                connection.exec_driver_sql(RUN_UNLOCK, params)
                connection.commit()


TRY_RUN_LOCK = "SELECT pg_try_advisory_lock(hashtext(%(namespace)s), hashtext(%(shop)s))"
RUN_UNLOCK = "SELECT pg_advisory_unlock(hashtext(%(namespace)s), hashtext(%(shop)s))"
