"""Opening balances as ledger postings of kind `import`, keyed by batch and line, so they post exactly once.

Many at a time: a file's 200,000 rows cannot afford two round trips each. The shape is the ledger's own
(lock the members, write the postings with their balance after, move the cached balances in the same
transaction); a posting whose key exists already changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session

from plugin.db import among, insert_for
from plugin.ledger import KINDS, LedgerError
from plugin.models import Member, Posting, utcnow
from plugin.services.imports import bulk
from plugin.services.imports.tables import ImportBatch

KIND = "import"
COPY_FROM = 50  # openings in one call from which COPY beats INSERT ... RETURNING


@dataclass(frozen=True)
class Opening:
    member_id: int
    line: int
    points: int  # signed: an undo posts the negative


def opening_key(batch_id: int, line: int) -> str:
    return f"import:{batch_id}:{line}"


def undo_key(batch_id: int, line: int) -> str:
    return f"import:{batch_id}:{line}:undo"


def history_note(batch: ImportBatch, title: str) -> str:
    """What the member's history says: "imported from LoyaltyLion, 2026-12-02"."""
    return f"imported from {title}, {batch.created_at.date().isoformat()}"


def post(
    session: Session,
    shop_id: int,
    batch: ImportBatch,
    openings: Iterable[Opening],
    note: str,
    actor: str,
    undo: bool = False,
) -> int:
    """Post these openings (or their reversals) in the caller's transaction; returns the points posted."""
    wanted = [o for o in openings if o.points != 0]
    if not wanted:
        return 0
    if KIND not in KINDS:
        raise LedgerError(f"the ledger does not allow posting kind {KIND!r}")
    if len({o.member_id for o in wanted}) != len(wanted):
        raise LedgerError("one member twice in one call: the balance after each posting would be wrong")
    # Locked in id order, as every path that locks several members must, so two imports never deadlock.
    balances = dict(
        session.execute(
            select(Member.id, Member.balance)
            .where(Member.shop_id == shop_id, among(session, Member.id, [o.member_id for o in wanted]))
            .order_by(Member.id)
            .with_for_update()
        ).all()
    )
    missing = {o.member_id for o in wanted} - balances.keys()
    if missing:
        raise LedgerError(f"no members {sorted(missing)[:5]} in shop {shop_id}")
    now = utcnow()
    values = []
    for o in wanted:
        after = balances[o.member_id] + o.points
        line_note = note
        if after < 0:
            line_note = f"{note}; balance is negative ({after}): points taken back had already been spent"
        values.append(
            {
                "shop_id": shop_id,
                "member_id": o.member_id,
                "kind": KIND,
                "points": o.points,
                "balance_after": after,
                "source_type": "import",
                "source_id": str(batch.id),
                "order_id": None,
                "rule_version": f"import:{batch.source}",
                "idempotency_key": (undo_key if undo else opening_key)(batch.id, o.line),
                "available_at": None,
                "note": line_note,
                "actor": actor,
                "created_at": now,
            }
        )
    if bulk.on_postgresql(session) and len(values) >= COPY_FROM:
        # Every caller moves its rows out of the state that posts them in this same transaction, so these keys
        # are new; were one not, the unique key would refuse the whole COPY and nothing would post twice.
        bulk.copy_rows(session, Posting.__table__, values)
        written = [(v["member_id"], v["points"]) for v in values]
        if not _moved_by_database(session, shop_id, balances, written):
            session.execute(
                text(
                    "UPDATE members SET balance = members.balance + v.delta "
                    "FROM unnest(CAST(:members AS bigint[]), CAST(:deltas AS bigint[])) AS v(id, delta) "
                    "WHERE members.shop_id = :shop AND members.id = v.id"
                ),
                {"members": [m for m, _ in written], "deltas": [p for _, p in written], "shop": shop_id},
            )
        return sum(points for _, points in written)
    insert = insert_for(session)(Posting).on_conflict_do_nothing(index_elements=["shop_id", "idempotency_key"])
    written = [tuple(row) for row in session.execute(insert.returning(Posting.member_id, Posting.points), values)]
    if written and not _moved_by_database(session, shop_id, balances, written):
        members = Member.__table__
        session.execute(
            update(members)
            .where(members.c.shop_id == shop_id, members.c.id == bindparam("member"))
            .values(balance=members.c.balance + bindparam("delta")),
            [{"member": member_id, "delta": points} for member_id, points in written],
        )
    return sum(points for _, points in written)


def _moved_by_database(session: Session, shop_id: int, before: dict[int, int], written: list[tuple[int, int]]) -> bool:
    """Whether the database's own posting trigger already moved these cached balances.

    Where the schema moves `members.balance` on every inserted posting (and refuses any other change of it), we
    must not move it again; where it does not, we move it here, in the same transaction. Either way it is
    asked, not assumed, and a mixture (some moved, some not) stops the transaction.
    """
    now = dict(
        session.execute(
            select(Member.id, Member.balance).where(
                Member.shop_id == shop_id, among(session, Member.id, [member for member, _ in written])
            )
        ).all()
    )
    moved = [now[member] == before[member] + points for member, points in written]
    if all(moved):
        return True
    if any(moved):
        raise LedgerError("some cached balances moved with their postings and some did not")
    return False
