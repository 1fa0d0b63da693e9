"""Pending opening balances: rows of shoppers not yet members, posted the moment the member appears."""

from __future__ import annotations

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from plugin.models import utcnow
from plugin.programme.import_formats import LAYOUTS
from plugin.services.imports import openings
from plugin.services.imports.tables import INVALID, MATCHED, PENDING, ImportBatch, ImportRow


def claim(session: Session, shop_id: int, member_id: int, customer_id: int, email: str | None) -> int:
    """Post every pending opening balance of this shop that names this member; returns the points posted.

    A row names the member by customer id, or (when it has no customer id) by email. Called when a member is
    enrolled, and by the Admin API match; a row already posted is never posted again (its key is unique).
    """
    whom = ImportRow.customer_id == customer_id
    if email:
        whom = or_(whom, and_(ImportRow.customer_id.is_(None), ImportRow.email == email.strip().lower()))
    rows = session.execute(
        select(ImportRow.id, ImportRow.batch_id, ImportRow.line, ImportRow.points)
        .where(ImportRow.shop_id == shop_id, ImportRow.status == PENDING, whom)
        .order_by(ImportRow.batch_id, ImportRow.line)
        .with_for_update()
    ).all()
    posted = 0
    # Batches in which this member already holds an opening balance (a row by id, and now one by email).
    taken = set(
        session.scalars(
            select(ImportRow.batch_id).where(ImportRow.shop_id == shop_id, ImportRow.member_id == member_id)
        )
    )
    for row_id, batch_id, line, points in rows:
        if batch_id in taken:
            # A second row of the same file naming the same member (once by id, once by email): a duplicate.
            session.execute(
                update(ImportRow)
                .where(ImportRow.shop_id == shop_id, ImportRow.id == row_id)
                .values(
                    status=INVALID, shopper_key=None, error="duplicate shopper: an earlier line matched the same member"
                )
                .execution_options(synchronize_session=False)
            )
            _count(session, shop_id, batch_id, pending=-1, points_pending=-(points or 0), invalid=1)
            continue
        taken.add(batch_id)
        batch = session.execute(
            select(ImportBatch).where(ImportBatch.shop_id == shop_id, ImportBatch.id == batch_id)
        ).scalar_one()
        session.execute(
            update(ImportRow)
            .where(ImportRow.shop_id == shop_id, ImportRow.id == row_id)
            .values(status=MATCHED, member_id=member_id, matched_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        note = openings.history_note(batch, LAYOUTS[batch.source].title)
        posted += openings.post(
            session, shop_id, batch, [openings.Opening(member_id, line, points or 0)], note, batch.actor
        )
        _count(
            session, shop_id, batch_id, pending=-1, matched=1, points_pending=-(points or 0), points_matched=points or 0
        )
    return posted


def _count(session: Session, shop_id: int, batch_id: int, **changes: int) -> None:
    session.execute(
        update(ImportBatch)
        .where(ImportBatch.shop_id == shop_id, ImportBatch.id == batch_id)
        .values({getattr(ImportBatch, name): getattr(ImportBatch, name) + delta for name, delta in changes.items()})
        .execution_options(synchronize_session=False)
    )


def forget_shopper(session: Session, shop_id: int, customer_id: int, member_id: int | None, email: str | None) -> int:
    """A customers/redact request: the shopper's import rows keep their amounts but lose who they were."""
    whom = ImportRow.customer_id == customer_id
    if member_id is not None:
        whom = or_(whom, ImportRow.member_id == member_id)
    if email:
        whom = or_(whom, ImportRow.email == email.strip().lower())
    return session.execute(
        update(ImportRow)
        .where(ImportRow.shop_id == shop_id, whom)
        .values(customer_id=None, email=None, birthday=None, shopper_key=None)
        .execution_options(synchronize_session=False)
    ).rowcount
