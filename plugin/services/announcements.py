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
    event_type = EVENT_FOR_KIND.get(row.kind)
    if event_type is None:
        return False
    data = {
        "points": row.points,
        "balance": row.balance_after,
        "kind": row.kind,
        "reason": row.note,
        "order_id": row.order_id,
        "posting_id": row.id,
        **extra,
    }
    if row.available_at is not None:
        data["available_at"] = row.available_at.isoformat()
    return outbox.record(
        session, shop_id, event_type, dedupe_key=f"{event_type}:posting:{row.id}", data=data, member_id=row.member_id,
        occurred_at=row.created_at,
    )  # fmt: skip
