"""Postings summed per shop-local day: read for reports, compacted from the trigger's deltas, rebuilt from postings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from plugin.db import transaction
from plugin.models import LedgerDay, LedgerDayDelta, Posting, Shop


@dataclass(frozen=True)
class DayRow:
    """The postings of one shop-local day, kind and source: positive and negative sums, and how many."""

    day: date
    kind: str
    source_type: str
    points_in: int
    points_out: int
    postings: int

    @property
    def points(self) -> int:
        return self.points_in + self.points_out


def days(session: Session, shop: Shop) -> list[DayRow]:
    """Every day of the shop's ledger, summed; exact at any moment (compacted rows plus the deltas not yet moved).

    PostgreSQL reads the roll-ups (a few rows per day whatever the number of postings); SQLite, the embedded
    single-shop database without the trigger, sums the postings themselves.
    """
    if session.get_bind().dialect.name != "postgresql":
        return _days_from_postings(session, shop)
    sums: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    compacted = session.execute(
        select(
            LedgerDay.day, LedgerDay.kind, LedgerDay.source_type,
            LedgerDay.points_in, LedgerDay.points_out, LedgerDay.postings,
        ).where(LedgerDay.shop_id == shop.id)
    )  # fmt: skip
    for day, kind, source, points_in, points_out, count in compacted:
        row = sums[(day, kind, source)]
        row[0] += points_in
        row[1] += points_out
        row[2] += count
    waiting = session.execute(
        select(
            LedgerDayDelta.day, LedgerDayDelta.kind, LedgerDayDelta.source_type,
            func.sum(func.greatest(LedgerDayDelta.points, 0)), func.sum(func.least(LedgerDayDelta.points, 0)),
            func.count(),
        )
        .where(LedgerDayDelta.shop_id == shop.id)
        .group_by(LedgerDayDelta.day, LedgerDayDelta.kind, LedgerDayDelta.source_type)
    )  # fmt: skip
    for day, kind, source, points_in, points_out, count in waiting:
        row = sums[(day, kind, source)]
        row[0] += int(points_in)
        row[1] += int(points_out)
        row[2] += int(count)
    return _rows(sums)


def _days_from_postings(session: Session, shop: Shop) -> list[DayRow]:
    zone = ZoneInfo(shop.time_zone or "UTC")
    sums: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    postings = session.execute(
        select(Posting.created_at, Posting.kind, Posting.source_type, Posting.points).where(Posting.shop_id == shop.id)
    )
    for created_at, kind, source, points in postings:
        row = sums[(created_at.astimezone(zone).date(), kind, source)]
        row[0 if points > 0 else 1] += points
        row[2] += 1
    return _rows(sums)


def _rows(sums: dict[tuple[date, str, str], list[int]]) -> list[DayRow]:
    return [DayRow(day, kind, source, *values) for (day, kind, source), values in sorted(sums.items())]


COMPACT = text(
    """
    WITH moved AS (
        DELETE FROM ledger_day_deltas WHERE shop_id = :shop RETURNING day, kind, source_type, points
    )
    INSERT INTO ledger_days (shop_id, day, kind, source_type, points_in, points_out, postings)
    SELECT :shop, day, kind, source_type, sum(greatest(points, 0)), sum(least(points, 0)), count(*)
    FROM moved GROUP BY day, kind, source_type
    ON CONFLICT (shop_id, day, kind, source_type) DO UPDATE SET
        points_in = ledger_days.points_in + EXCLUDED.points_in,
        points_out = ledger_days.points_out + EXCLUDED.points_out,
        postings = ledger_days.postings + EXCLUDED.postings
    """
)


def compact(session: Session, shop_id: int) -> bool:
    """Move the shop's deltas into its day rows in one statement; False when another compaction holds the shop.

    The deltas deleted are exactly the ones summed (DELETE ... RETURNING), in the caller's transaction, so a
    posting is counted in one table or the other, never both, never neither.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    locked = session.execute(
        text("SELECT pg_try_advisory_xact_lock(hashtext('ledger_days'), CAST(:shop AS integer))"), {"shop": shop_id}
    ).scalar_one()
    if not locked:
        return False
    session.execute(COMPACT, {"shop": shop_id})
    return True


def shops_waiting(session: Session, limit: int = 100) -> list[int]:
    """Shops with deltas waiting to be compacted."""
    if session.get_bind().dialect.name != "postgresql":
        return []
    return list(session.scalars(select(LedgerDayDelta.shop_id).distinct().limit(limit)))


def compact_all(database_url: str) -> int:
    """Compact every shop with deltas waiting, one transaction per shop (the sweeper calls this); returns shops."""
    with transaction(database_url) as session:
        waiting = shops_waiting(session)
    done = 0
    for shop_id in waiting:
        with transaction(database_url) as session:
            done += compact(session, shop_id)
    return done


REBUILD = text(
    """
    INSERT INTO ledger_days (shop_id, day, kind, source_type, points_in, points_out, postings)
    SELECT :shop, (created_at AT TIME ZONE :zone)::date, kind, source_type,
           sum(greatest(points, 0)), sum(least(points, 0)), count(*)
    FROM postings WHERE shop_id = :shop
    GROUP BY 2, 3, 4
    """
)


def rebuild(session: Session, shop: Shop) -> None:
    """Recompute the shop's day rows from its postings (after a change of time zone, or to repair).

    New postings wait for this transaction (a lock on the deltas), so none is counted twice or missed.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(text("LOCK TABLE ledger_day_deltas IN SHARE ROW EXCLUSIVE MODE"))
    session.execute(text("DELETE FROM ledger_day_deltas WHERE shop_id = :shop"), {"shop": shop.id})
    session.execute(text("DELETE FROM ledger_days WHERE shop_id = :shop"), {"shop": shop.id})
    session.execute(REBUILD, {"shop": shop.id, "zone": shop.time_zone or "UTC"})
