"""The outbox: outgoing events recorded in the caller's transaction, for a job to deliver (docs/decisions/0020)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.bulk_insert import insert_rows
from plugin.db import insert_for
from plugin.models import OutboxEvent, utcnow

# Every event type the app may announce; receivers and Shopify Flow triggers are declared for each.
EVENT_TYPES = frozenset(
    {
        "points.earned",
        "points.reversed",
        "points.adjusted",
        "points.expiring",
        "points.expired",
        "reward.issued",
        "reward.failed",
        "tier.changed",
        "referral.completed",
    }
)


class UnknownEventType(ValueError):
    """An event type not in EVENT_TYPES: a programming error, never a shopper's input."""


def record(
    session: Session,
    shop_id: int,
    event_type: str,
    *,
    dedupe_key: str,
    data: dict[str, Any],
    member_id: int | None = None,
    occurred_at: datetime | None = None,
) -> bool:
    """Record one event in the caller's transaction; False, writing nothing, when its cause recorded it already.

    `dedupe_key` names the cause (a posting, a tier move), so the same change retried or replayed announces once.
    `data` must be JSON-ready: money as strings, times as ISO 8601.
    """
    if event_type not in EVENT_TYPES:
        raise UnknownEventType(event_type)
    statement = (
        insert_for(session)(OutboxEvent)
        .values(
            shop_id=shop_id,
            event_id=str(uuid.uuid4()),
            dedupe_key=dedupe_key[:200],
            event_type=event_type,
            member_id=member_id,
            payload=data,
            occurred_at=occurred_at or utcnow(),
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["shop_id", "dedupe_key"])
        .returning(OutboxEvent.id)
    )
    return session.execute(statement).scalar_one_or_none() is not None


def record_many(session: Session, shop_id: int, events: list[dict[str, Any]]) -> int:
    """Record events in multi-row inserts, in list order (a member's sequence); how many were new.

    Each event is a dict of record's arguments: event_type, dedupe_key, data, and optionally member_id and
    occurred_at. An event whose dedupe_key was recorded already is skipped, as record skips it.
    """
    now = utcnow()
    rows = []
    for event in events:
        if event["event_type"] not in EVENT_TYPES:
            raise UnknownEventType(event["event_type"])
        rows.append(
            {
                "shop_id": shop_id,
                "event_id": str(uuid.uuid4()),
                "dedupe_key": event["dedupe_key"][:200],
                "event_type": event["event_type"],
                "member_id": event.get("member_id"),
                "payload": event["data"],
                "occurred_at": event.get("occurred_at") or now,
                "created_at": now,
            }
        )
    if not rows:
        return 0
    table = OutboxEvent.__table__
    if session.get_bind().dialect.name == "postgresql":  # one statement, one array per column (plugin/bulk_insert.py)
        return len(insert_rows(session, table, rows, ("shop_id", "dedupe_key"), ("id",)))
    # One executemany: SQLAlchemy pages it into multi-row INSERTs (in list order) with one compiled statement.
    statement = (
        insert_for(session)(table)
        .on_conflict_do_nothing(index_elements=["shop_id", "dedupe_key"])
        .returning(table.c.id)
    )
    return len(session.execute(statement, rows).all())


def recorded(session: Session, shop_id: int, *, after_id: int = 0, limit: int = 500) -> list[OutboxEvent]:
    """The shop's events after `after_id`, oldest first (what a delivery job or a test reads)."""
    return list(
        session.scalars(
            select(OutboxEvent)
            .where(OutboxEvent.shop_id == shop_id, OutboxEvent.id > after_id)
            .order_by(OutboxEvent.id)
            .limit(limit)
        )
    )
