"""Pushes members' tiers to their shop: a customer tag per tier and the `loyalty.tier` metafield.

Modelled on services/balance_push.py. A member is due while `tier` differs from `pushed_tier`. A run writes
each due member's *current* tier and records what it wrote, so several moves in a burst become one write and
the last tier wins; a tier that moved during the call stays due. A refused or failed call leaves the member
due: the shop rests, and the next signal or sweep tries again, so a push is retried, never lost. What a read's
calls sent is recorded in one transaction (services/member_marks.py), not one a member.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from sqlalchemy import func, select

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Member, Shop
from plugin.platforms.base import AdminClient, TierChange
from plugin.services import member_marks, tiers

log = logging.getLogger(__name__)

PER_RUN = 500  # members per shop per run; the next signal or sweep continues
PER_READ = 50


def _due():
    return func.coalesce(Member.tier, "") != func.coalesce(Member.pushed_tier, "")


def any_due(database_url: str) -> bool:
    """Whether some installed shop has a member whose tier it has not been sent yet."""
    with transaction(database_url) as session:
        return (
            session.execute(
                select(Member.id)
                .join(Shop, Shop.id == Member.shop_id)
                .where(Shop.active.is_(True), Shop.access_token.is_not(None), _due())
                .limit(1)
            ).first()
            is not None
        )


def change_for(shop: Shop, tier_id: str | None, pushed: str | None, customer_id: int) -> TierChange:
    """The tags to add and remove for a member now at `tier_id`: every other tier's tag goes, the old one too."""
    current = tiers.programme(shop)
    known = {t.tier_id: t for t in current.tiers} if current else {}
    tier = known.get(tier_id) if tier_id else None
    add = (tier.customer_tag,) if tier else ()
    remove = {t.customer_tag for t in known.values() if t is not tier}
    if pushed and pushed not in known:  # a tier since removed from the programme: its default tag goes too
        remove.add(f"loyalty-tier-{pushed}")
    return TierChange(customer_id, add, tuple(sorted(remove - set(add))), tier.name if tier else None)


def push_tiers(
    settings: Settings,
    client_factory: Callable[[Settings, Shop], AdminClient],
    resting: Callable[[int], bool] = lambda _shop_id: False,
    failed: Callable[[int], None] = lambda _shop_id: None,
) -> int:
    """Write due tiers to every installed shop; returns how many members were written."""
    with transaction(settings.database_url) as session:
        shop_ids = session.scalars(
            select(Shop.id)
            .where(Shop.active.is_(True), Shop.access_token.is_not(None))
            .where(select(Member.id).where(Member.shop_id == Shop.id, _due()).exists())
        ).all()
    push = partial(_push_shop, settings, client_factory=client_factory)
    return member_marks.push_each(settings.database_url, RUN_NAMESPACE, shop_ids, push, resting, failed)


# A shop's runs, one at a time (member_marks.one_run; decision 0097): two runs of a shop sent the same members twice,
# and the earlier run's stale tier could reach the shop after the later run's current one while the record kept the
# later's. The advisory lock's first key: this use's own space.
RUN_NAMESPACE = "loyalty.tier_push.run"


def _push_shop(settings: Settings, shop_id: int, client_factory: Callable[[Settings, Shop], AdminClient]) -> int:
    """One pass through the shop's due members in id order: a member whose tier moves after its write waits for
    the next run, which the drain that moved it signals (as balance_push's runs)."""
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        platform = platforms.for_shop(shop)
        client = client_factory(settings, shop)
    written = 0
    after = 0  # the last member id this run read
    held: dict[int, str] = {}  # members a drain held when their writes were recorded: tried once more at the end
    while written < PER_RUN:
        with transaction(settings.database_url) as session:
            shop = session.get(Shop, shop_id)
            due = session.execute(
                select(Member.id, Member.customer_id, Member.tier, Member.pushed_tier)
                .where(Member.shop_id == shop_id, Member.id > after, _due())
                .order_by(Member.id)
                .limit(PER_READ)
            ).all()
            changes = [(member_id, tier, change_for(shop, tier, pushed, cid)) for member_id, cid, tier, pushed in due]
        if not changes:
            break
        sent: dict[int, str] = {}
        try:
            for member_id, tier, change in changes:
                platform.push_tier(client, change)
                sent[member_id] = tier or ""
        except BaseException:
            _mark_after_failure(settings, shop_id, sent)
            raise
        if sent:
            held.update(_mark_pushed(settings, shop_id, sent))
        written += len(sent)
        after = due[-1][0]
    if held:  # most drains have committed since: their members are marked now, or stay due for the next run
        _mark_pushed(settings, shop_id, held)
    return written


def _mark_pushed(settings: Settings, shop_id: int, sent: dict[int, str]) -> dict[int, str]:
    """Record the tiers sent ('' for none) in one transaction, not one a member; returns those of the members
    another transaction holds, skipped (services/member_marks.py).

    What was sent is recorded even when the member's tier has moved since its read: it is what the shop was last
    told by this run, so the member stays due (`tier` differs) and the next run sends the current tier. Keeping an
    earlier record instead would lose a move when two runs overlap: the later run sends and records the new tier,
    then the earlier one sends its stale tier, and the record would still say the shop has the new one."""
    with transaction(settings.database_url) as session:
        free = {member_id for member_id, _ in member_marks.lock_free(session, shop_id, sorted(sent), "tier")}
        if free:
            member_marks.record(session, shop_id, "tier", {member_id: sent[member_id] for member_id in free})
    return {member_id: tier for member_id, tier in sent.items() if member_id not in free}


def _mark_after_failure(settings: Settings, shop_id: int, sent: dict[int, str]) -> None:
    """_mark_pushed for the calls the shop took before one failed; its own failure is logged, not raised, so the
    call's error still reaches the caller (which rests the shop). Unrecorded, those members stay due."""
    if not sent:
        return
    try:
        _mark_pushed(settings, shop_id, sent)
    except Exception:
        log.exception("tier push for shop %s: could not record the %d tiers sent before a failure", shop_id, len(sent))
