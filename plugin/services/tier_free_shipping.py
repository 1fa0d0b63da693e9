"""A tier's free shipping: a free-shipping discount code for the member, issued on entering the tier, taken back on
leaving it (unless the programme keeps it: `free_shipping_on_leave: "keep"`).

The code is a reward grant (decision 0030): a `redemptions` row of kind "grant", made in the transaction of the
tier move and issued by the same leased, look-up-first job as redemption codes (services/redemption.py `issue`,
run by `settle_grants`), so retries and killed jobs never make two. Its key names the member, the tier and the
move that entered it: one code per stay in the tier, whatever repeats. Leaving requests the take-back, which the
same job does outside any lock (services/reward_grants.py): the code is deleted in the shop, used or not.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import Member, Redemption, Shop
from plugin.programme import tiers as tier_rules
from plugin.programme.rewards import Reward
from plugin.services import redemption, reward_grants

SOURCE = "tier_free_shipping"  # granted_by's source_type
LIFETIME_DAYS = 3650  # a lifetime tier's code: deleted when the member leaves, so its end date is a backstop


def reward_id(tier_id: str) -> str:
    return f"tier-ship:{tier_id}"[:40]


def after_move(
    session: Session,
    shop: Shop,
    current: tier_rules.TierProgramme,
    member: Member,
    before: str | None,
    seq: int,
    until: datetime | None,
) -> None:
    """The member moved from `before` to `member.tier` (move `seq`): the old tier's code goes, the new one's comes.

    `until`: how long the new tier is kept as of now (None: for good); the code ends then at the latest."""
    old = current.tier(before)
    if old is not None and old.free_shipping and current.free_shipping_on_leave == "deactivate":
        for row in live_codes(session, shop.id, member.id, old.tier_id):
            reward_grants.request_revoke(session, shop.id, row.id, f"left the {old.name} tier")
    new = current.tier(member.tier)
    if new is None or not new.free_shipping:
        return
    reward = Reward(
        id=reward_id(new.tier_id), kind="free_shipping", points=0, title=f"{new.name} free shipping",
        lifetime_days=LIFETIME_DAYS, customer_only=True, single_use=False,
    )  # fmt: skip
    granted_by: dict[str, Any] = {
        "source_type": SOURCE, "source_id": new.tier_id, "number": seq, "rule_version": current.version,
        "label": f"{new.name} tier",
    }  # fmt: skip
    row = redemption.grant(session, shop, member.id, reward, f"{SOURCE}:{member.id}:{new.tier_id}:{seq}", granted_by)
    if until is not None and row.ends_at is not None and until < row.ends_at:
        row.ends_at = until  # no longer than the tier is kept when it is issued


def live_codes(session: Session, shop_id: int, member_id: int, tier_id: str | None = None) -> list[Redemption]:
    """The member's tier free-shipping codes not taken back (of one tier, or of any)."""
    query = select(Redemption).where(
        Redemption.shop_id == shop_id,
        Redemption.member_id == member_id,
        Redemption.kind == redemption.GRANT,
        Redemption.status.in_(redemption.LIVE),
        Redemption.revoke_requested_at.is_(None),
    )
    if tier_id is not None:
        query = query.where(Redemption.reward_id == reward_id(tier_id))
    else:
        query = query.where(Redemption.reward_id.like("tier-ship:%"))
    return list(session.scalars(query.order_by(Redemption.id)))


def widget_code(session: Session, shop_id: int, member_id: int, tier_id: str) -> dict[str, Any] | None:
    """The member's issued free-shipping code for the tier they hold (None: none yet, or the tier gives none)."""
    rows = [r for r in live_codes(session, shop_id, member_id, tier_id) if r.status == redemption.ISSUED]
    if not rows:
        return None
    row = rows[-1]
    ends = None if row.ends_at is None else (row.ends_at - timedelta(seconds=1)).date().isoformat()
    return {"code": row.code, "ends_on": ends}
