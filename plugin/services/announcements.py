"""Postings announced as outgoing events (points.earned, points.reversed ...), in the posting's transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import Posting
from plugin.services import outbox

# The posting kinds merchants hear about, and as what; redemptions are announced as reward.* by redemption.py.
EVENT_FOR_KIND = {
    "earn": "points.earned",
    "reverse": "points.reversed",
    "adjust": "points.adjusted",
    "forgive": "points.adjusted",
    "expire": "points.expired",
}


def posting(session: Session, shop_id: int, posting_id: int | None, **extra) -> bool:
    """Record the event for a posting just written (None: nothing was written); keyed by the posting, so once."""
    if posting_id is None:
        return False
    row = session.execute(select(Posting).where(Posting.shop_id == shop_id, Posting.id == posting_id)).scalar_one()
    event_type, data = event_of(row)
    if event_type is None:
        return False
    return outbox.record(
        session, shop_id, event_type, dedupe_key=dedupe_key(event_type, row.id), data={**data, **extra},
        member_id=row.member_id, occurred_at=row.created_at,
    )  # fmt: skip


def event_of(row) -> tuple[str | None, dict]:
    """A posting's event type (None: merchants do not hear of this kind) and data; `row` is a Posting or a row."""
    data = {
        "points": row.points,
        "balance": row.balance_after,
        "kind": row.kind,
        "reason": row.note,
        "order_id": row.order_id,
        "posting_id": row.id,
    }
    if row.available_at is not None:
        data["available_at"] = row.available_at.isoformat()
    return EVENT_FOR_KIND.get(row.kind), data


def dedupe_key(event_type: str, posting_id: int) -> str:
    return f"{event_type}:posting:{posting_id}"
