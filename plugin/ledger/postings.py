"""The append-only points ledger: postings with idempotency keys, the cached balance, and its invariant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, case, cast, func, literal, select
from sqlalchemy.orm import Session

from plugin.db import insert_for
from plugin.ledger import kinds
from plugin.models import Member, Order, Posting, utcnow

KINDS = frozenset(kinds.KINDS)


class LedgerError(Exception):
    """A posting that would break the ledger's rules."""


@dataclass(frozen=True)
class Entry:
    """A posting to be written. `points` is signed: positive adds to the balance."""

    member_id: int
    kind: str
    points: int
    source_type: str
    source_id: str
    idempotency_key: str
    rule_version: str
    order_id: int | None = None
    available_at: datetime | None = None
    note: str | None = None
    details: dict[str, Any] | None = None  # the note as data, for rendering in the shop's language
    actor: str = "system"


def post(session: Session, shop_id: int, entry: Entry) -> int | None:
    """Write one posting in the caller's transaction; the database moves the member's cached balance with it.

    Returns the new posting's id; None, changing nothing, when a posting with this key already exists.
    One statement: it locks the member row (serialising every balance change of this member across
    processes), reads the balance the posting starts from, and inserts. The triggers of migration 0008 then
    set `balance_after` under that lock (PostgreSQL) or check it (SQLite), and move `members.balance`
    only for a row really inserted, so a duplicate key moves nothing.
    """
    if entry.kind not in KINDS:
        raise LedgerError(f"unknown posting kind {entry.kind!r}")
    if not isinstance(entry.points, int) or isinstance(entry.points, bool) or entry.points == 0:
        raise LedgerError("a posting moves a non-zero integer number of points")

    holder = (
        select(Member.balance)
        .where(Member.shop_id == shop_id, Member.id == entry.member_id)
        .with_for_update()
        .cte("holder")
    )
    balance_after = select(holder.c.balance + entry.points).scalar_subquery()
    values = {
        "shop_id": shop_id,
        "member_id": entry.member_id,
        "kind": entry.kind,
        "points": entry.points,
        "balance_after": balance_after,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "order_id": entry.order_id,
        "rule_version": entry.rule_version,
        "idempotency_key": entry.idempotency_key,
        "available_at": entry.available_at,
        "note": _note(entry, balance_after),
        "details": entry.details,
        "actor": entry.actor,
        "created_at": utcnow(),
    }
    insert = insert_for(session)(Posting).values(values).add_cte(holder)
    return session.execute(
        insert.on_conflict_do_nothing(index_elements=["shop_id", "idempotency_key"]).returning(Posting.id)
    ).scalar()


def _note(entry: Entry, balance_after):
    """The entry's note; a reversal that takes the balance below zero says so (the default spent-points policy)."""
    if entry.points > 0:
        return entry.note
    spent = (
        literal("balance is negative (")
        + cast(balance_after, String)
        + literal("): points taken back had already been spent")
    )
    warned = literal(f"{entry.note}; ") + spent if entry.note else spent
    return case((balance_after < 0, warned), else_=literal(entry.note, String))


@dataclass(frozen=True)
class Balance:
    balance: int
    pending: int

    @property
    def available(self) -> int:
        return self.balance - self.pending

    def to_json(self) -> dict[str, int]:
        return {"balance": self.balance, "pending": self.pending, "available": self.available}


def balance_of(session: Session, shop_id: int, member: Member, now: datetime | None = None) -> Balance:
    """The cached balance, and the part of it still pending (earned on orders not yet past their hold)."""
    now = now or utcnow()
    pending = session.execute(
        select(func.coalesce(func.sum(Order.points_held), 0)).where(
            Order.shop_id == shop_id,
            Order.member_id == member.id,
            Order.available_at > now,
            Order.points_held > 0,
        )
    ).scalar_one()
    return Balance(balance=member.balance, pending=int(pending))


def history(session: Session, shop_id: int, member_id: int, limit: int = 100) -> list[Posting]:
    return list(
        session.scalars(
            select(Posting)
            .where(Posting.shop_id == shop_id, Posting.member_id == member_id)
            .order_by(Posting.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class Mismatch:
    what: str
    shop_id: int
    key: int
    cached: int
    summed: int


def verify(session: Session) -> list[Mismatch]:
    """Every member's cached balance, and every order's held points, against the sum of their postings."""
    sums = select(Posting.member_id, func.sum(Posting.points).label("total")).group_by(Posting.member_id).subquery()
    member_rows = session.execute(
        select(Member.shop_id, Member.id, Member.balance, func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.member_id == Member.id)
        .where(Member.balance != func.coalesce(sums.c.total, 0))
    )
    found = [Mismatch("member", *row) for row in member_rows]

    order_sums = (
        select(Posting.shop_id, Posting.order_id, func.sum(Posting.points).label("total"))
        .where(
            Posting.order_id.is_not(None),
            Posting.source_type.in_(("order", "refund", "cancellation", "support", "expiry", "tier_correction")),
            # Forgiven points are the shop's gift to the member, not points the order holds.
            Posting.kind != "forgive",
        )
        .group_by(Posting.shop_id, Posting.order_id)
        .subquery()
    )
    order_rows = session.execute(
        select(Order.shop_id, Order.order_id, Order.points_held, func.coalesce(order_sums.c.total, 0))
        .outerjoin(order_sums, (order_sums.c.shop_id == Order.shop_id) & (order_sums.c.order_id == Order.order_id))
        .where(Order.points_held != func.coalesce(order_sums.c.total, 0))
    )
    found += [Mismatch("order", *row) for row in order_rows]
    return found
