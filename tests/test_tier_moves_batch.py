"""A drained round's tier moves are numbered after each member's last, in one statement on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event, select

from plugin.db import engine_for, transaction
from plugin.models import Member, TierMove
from plugin.programme.tiers import TierStatus
from plugin.services import member_rules_batch

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _state(tier_id: str | None, reason: str) -> TierStatus:
    return TierStatus(tier_id, 1, 1, None, None, Decimal("10.00"), None, reason)


def test_each_move_follows_its_members_last_and_the_writes_match_the_plans(settings, shop):
    with transaction(settings.database_url) as session:
        members = [Member(shop_id=shop, customer_id=900 + n, balance=0, enrolled_at=NOW) for n in range(3)]
        session.add_all(members)
        session.flush()
        moved, fresh, untouched = (member.id for member in members)
        session.add_all(
            TierMove(shop_id=shop, member_id=member_id, seq=seq, from_tier=None, to_tier="silver", reason="earlier",
                     tiers_version=1, occurred_at=NOW)
            for member_id, seq in ((moved, 1), (moved, 2), (untouched, 1), (untouched, 7))
        )  # fmt: skip
        session.flush()
        statements: list[str] = []
        engine = engine_for(settings.database_url)
        keep = lambda _conn, _cursor, statement, *_args: statements.append(statement)  # noqa: E731
        event.listen(engine, "before_cursor_execute", keep)
        try:
            plans = [(moved, "silver", _state("gold", "x" * 2500)), (fresh, None, _state("silver", "in"))]
            seqs = member_rules_batch._insert_moves(session, shop, 3, plans, NOW)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
        assert seqs == {moved: 3, fresh: 1}
        rows = session.execute(
            select(TierMove.member_id, TierMove.seq, TierMove.from_tier, TierMove.to_tier, TierMove.reason,
                   TierMove.tiers_version, TierMove.occurred_at)
            .where(TierMove.shop_id == shop, TierMove.tiers_version == 3)
            .order_by(TierMove.member_id)
        ).all()  # fmt: skip
    assert [tuple(row) for row in rows] == [
        (moved, 3, "silver", "gold", "x" * 2000, 3, NOW),  # the reason kept to 2,000 characters, as tiers.move keeps it
        (fresh, 1, None, "silver", "in", 3, NOW),
    ]
    if settings.database_url.startswith("postgresql"):
        assert len(statements) == 1  # the last moves read in the INSERT itself
