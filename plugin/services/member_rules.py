"""Member-level rules (milestones, tiers, referrals) recomputed whenever one of a member's orders changes."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from plugin.models import Shop

# Each recomputes what the member should have from stored facts and posts only the difference, idempotently,
# so it may run any number of times; it runs in the transaction that changed the order.
MemberRule = Callable[[Session, Shop, int], None]


def registered() -> tuple[MemberRule, ...]:
    """The member-level rules, in the order they run (one line each; imported late to keep accrual's imports light)."""
    from plugin.services import referrals, tier_corrections, tiers
    from plugin.services.milestones import rules as milestones

    return (
        tiers.after_order_change,
        tier_corrections.after_order_change,  # after the tier: orders' tier shares follow the member's history
        milestones.recompute,
        referrals.after_order_change,
    )


def after_order_change(session: Session, shop: Shop, member_id: int) -> None:
    """Bring every member-level rule up to date for this member after one of their orders changed."""
    for rule in registered():
        rule(session, shop, member_id)
