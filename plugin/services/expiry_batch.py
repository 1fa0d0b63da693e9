"""The daily expiry run for a batch of members at once: one read of their postings, multi-row writes.

Same keys and same results as the one-member path (`expiry._member`, the fallback for a batch that fails): each
expiry is a posting keyed by its lot, each reminder an event keyed by member, date and reminder day.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from plugin import ledger
from plugin.db import insert_for
from plugin.models import Member, Order, Posting, Shop, utcnow
from plugin.programme import expiry as rules
from plugin.services import announcements, outbox, shops

ORDER_KINDS = frozenset({"earn", "adjust"})  # positive postings that are points an order holds
ROWS_PER_STATEMENT = 500  # keys looked up per query
NEGATIVE_NOTE = "balance is negative ({}): points taken back had already been spent"  # as ledger.post writes it


def moves_of(session: Session, shop_id: int, member_ids: Sequence[int]) -> dict[int, list[rules.Move]]:
    """Each member's postings as expiry reads them, in id order: one query for the whole batch."""
    found: dict[int, list[rules.Move]] = {member_id: [] for member_id in member_ids}
    if not member_ids:
        return found
    rows = session.execute(
        select(
            Posting.member_id, Posting.id, Posting.kind, Posting.points, Posting.created_at, Posting.available_at,
            Posting.order_id, Posting.source_type, Posting.source_id,
        )
        .where(Posting.shop_id == shop_id, Posting.member_id.in_(member_ids))
        .order_by(Posting.member_id, Posting.id)
    )  # fmt: skip
    for row in rows:
        found[row.member_id].append(
            rules.Move(
                posting_id=row.id,
                kind=row.kind,
                points=row.points,
                created_at=row.created_at,
                available_at=row.available_at,
                order_id=row.order_id,
                expires_lot=int(row.source_id) if row.kind == "expire" and row.source_type == "expiry" else None,
            )
        )
    return found


def entry_for(member_id: int, expiry: rules.Expiry, policy: rules.Policy, history: list[rules.Move]) -> ledger.Entry:
    """The `expire` posting for one lot's due points, keyed so it is written once whoever writes it."""
    lot = expiry.lot
    # Only an order's own earnings count in what the order holds (ledger.verify); a forgiven lot is the shop's gift.
    order_id = lot.order_id if lot.kind in ORDER_KINDS else None
    if policy.policy == rules.PER_LOT:
        key = f"expire:lot:{lot.posting_id}"
        why = f"{expiry.points} points earned {lot.available_from.date().isoformat()} expired on {expiry.on}"
    else:
        key = f"expire:inactive:{member_id}:{rules.inactivity_key(history)}:lot:{lot.posting_id}"
        why = f"{expiry.points} points expired on {expiry.on} after {policy.months} months without activity"
    return ledger.Entry(
        member_id=member_id,
        kind="expire",
        points=-expiry.points,
        source_type="expiry",
        source_id=str(lot.posting_id),
        idempotency_key=key,
        rule_version=f"expiry:{policy.policy}:{policy.months}",
        order_id=order_id,
        note=why,
    )


def reminder_events(
    member_id: int, history: list[rules.Move], policy: rules.Policy, zone, today: date, now: datetime
) -> list[dict[str, Any]]:
    """The member's `points.expiring` events due today, as outbox.record_many takes them."""
    return [
        {
            "event_type": "points.expiring",
            "dedupe_key": f"points.expiring:{member_id}:{on.isoformat()}:{days}",
            "member_id": member_id,
            "data": {
                "points": points,
                "expires_on": on.isoformat(),
                "days_before": days,
                "balance": sum(m.points for m in history),
                "policy": policy.policy,
            },
        }
        for on, points, days in rules.reminders(history, policy, zone, today, now)
    ]


def run_batch(
    session: Session, shop: Shop, policy: rules.Policy, member_ids: Sequence[int], today: date, now: datetime
) -> tuple[int, int]:
    """Expire the batch's due lots and record its due reminders in the caller's transaction: (points, reminders).

    Reads every member's postings in one query; locks (orders, then members, as accrual does) only members with
    something due, reads those again under the locks, then writes the postings round by round (a member's k-th
    expiry in round k: the ledger's trigger takes one posting per member per statement), the orders' held points
    in one executemany, and the events in multi-row inserts.
    """
    zone = shops.zone(shop)
    histories = moves_of(session, shop.id, member_ids)
    due = {m: found for m in member_ids if (found := rules.due(histories[m], policy, zone, today, now))}
    expired = 0
    if due:
        balances = _lock(session, shop.id, due)
        histories.update(moves_of(session, shop.id, sorted(due)))  # again, under the locks: a refund may have landed
        due = {m: found for m in sorted(due) if (found := rules.due(histories[m], policy, zone, today, now))}
        written = _post(session, shop.id, policy, due, histories, balances)
        expired = -sum(row.points for row in written)
        if written:  # what is left after today's expiries: read again rather than guess the new postings
            histories.update(moves_of(session, shop.id, sorted({row.member_id for row in written})))
    reminded = 0
    if policy.reminder_days:
        events = [e for m in member_ids for e in reminder_events(m, histories[m], policy, zone, today, now)]
        reminded = outbox.record_many(session, shop.id, events)
    return expired, reminded


def _lock(session: Session, shop_id: int, due: dict[int, list[rules.Expiry]]) -> dict[int, int]:
    """Lock the due lots' orders, then their members, in id order; returns each member's balance, read locked."""
    order_ids = sorted({e.lot.order_id for found in due.values() for e in found if e.lot.order_id is not None})
    if order_ids:
        session.execute(
            select(Order.id)
            .where(Order.shop_id == shop_id, Order.order_id.in_(order_ids))
            .order_by(Order.order_id)
            .with_for_update()
        ).all()
    rows = session.execute(
        select(Member.id, Member.balance)
        .where(Member.shop_id == shop_id, Member.id.in_(sorted(due)))
        .order_by(Member.id)
        .with_for_update()
    ).all()
    return {row.id: row.balance for row in rows}


def _post(
    session: Session,
    shop_id: int,
    policy: rules.Policy,
    due: dict[int, list[rules.Expiry]],
    histories: dict[int, list[rules.Move]],
    balances: dict[int, int],
) -> list[Any]:
    """Write the due expiries not yet written (their keys say which), their orders' held points and their events."""
    entries = {m: [(entry_for(m, e, policy, histories[m]), e) for e in found] for m, found in due.items()}
    keys = [entry.idempotency_key for pairs in entries.values() for entry, _e in pairs]
    existing = set()
    for chunk in _chunks(keys):
        existing.update(
            session.scalars(
                select(Posting.idempotency_key).where(Posting.shop_id == shop_id, Posting.idempotency_key.in_(chunk))
            )
        )
    pending = {m: [pair for pair in pairs if pair[0].idempotency_key not in existing] for m, pairs in entries.items()}
    expiry_of = {entry.idempotency_key: e for pairs in pending.values() for entry, e in pairs}
    balance = dict(balances)
    created_at = utcnow()
    written: list[Any] = []
    for index in range(max((len(pairs) for pairs in pending.values()), default=0)):
        rows = []
        for member_id, pairs in pending.items():
            if index < len(pairs):
                entry = pairs[index][0]
                balance[member_id] += entry.points
                rows.append(_row(shop_id, entry, balance[member_id], created_at))
        if rows:  # one executemany: SQLAlchemy pages it into multi-row INSERTs with one compiled statement
            postings = Posting.__table__
            written += session.execute(
                insert_for(session)(postings)
                .on_conflict_do_nothing(index_elements=["shop_id", "idempotency_key"])
                .returning(
                    postings.c.id, postings.c.member_id, postings.c.kind, postings.c.points, postings.c.balance_after,
                    postings.c.note, postings.c.order_id, postings.c.available_at, postings.c.created_at,
                    postings.c.idempotency_key,
                ),
                rows,
            ).all()  # fmt: skip
    written.sort(key=lambda row: (row.member_id, row.id))
    _lower_orders(session, shop_id, written)
    events = []
    for row in written:
        expiry = expiry_of[row.idempotency_key]
        event_type, data = announcements.event_of(row)
        data.update(expires_on=expiry.on.isoformat(), lot_posting_id=expiry.lot.posting_id)
        events.append(
            {
                "event_type": event_type,
                "dedupe_key": announcements.dedupe_key(event_type, row.id),
                "member_id": row.member_id,
                "data": data,
                "occurred_at": row.created_at,
            }
        )
    outbox.record_many(session, shop_id, events)
    return written


def _row(shop_id: int, entry: ledger.Entry, balance_after: int, created_at: datetime) -> dict[str, Any]:
    note = entry.note
    if balance_after < 0:  # cannot happen for an expiry (it takes only what a lot still holds); said as post says it
        warning = NEGATIVE_NOTE.format(balance_after)
        note = f"{note}; {warning}" if note else warning
    return {
        "shop_id": shop_id, "member_id": entry.member_id, "kind": entry.kind, "points": entry.points,
        "balance_after": balance_after, "source_type": entry.source_type, "source_id": entry.source_id,
        "order_id": entry.order_id, "rule_version": entry.rule_version, "idempotency_key": entry.idempotency_key,
        "available_at": entry.available_at, "note": note, "details": entry.details, "actor": entry.actor,
        "created_at": created_at,
    }  # fmt: skip


def _lower_orders(session: Session, shop_id: int, written: Iterable[Any]) -> None:
    """An expired order lot lowers what its order holds: a later refund takes back only what is still held."""
    per_order: dict[int, int] = defaultdict(int)
    for row in written:
        if row.order_id is not None:
            per_order[row.order_id] += -row.points
    if not per_order:
        return
    orders = Order.__table__
    session.execute(
        update(orders)
        .where(orders.c.shop_id == bindparam("in_shop"), orders.c.order_id == bindparam("the_order"))
        .values(
            points_held=orders.c.points_held - bindparam("gone"),
            expired_points=orders.c.expired_points + bindparam("gone"),
            updated_at=utcnow(),
        ),
        [{"in_shop": shop_id, "the_order": order_id, "gone": gone} for order_id, gone in sorted(per_order.items())],
    )


def _chunks(items: list) -> Iterable[list]:
    for start in range(0, len(items), ROWS_PER_STATEMENT):
        yield items[start : start + ROWS_PER_STATEMENT]
