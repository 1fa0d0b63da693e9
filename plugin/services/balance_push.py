"""Pushes members' balances to their shop, where themes can show them (on Shopify, the customer metafield
`loyalty.points`: plugin/platforms/shopify/metafields.py), with the next expiry when the shop has expiry on.

A member is due a push while it has a `balance_push_due` row: the posting trigger adds it when the balance moves
(once: a member already due stays one row), and a run removes it when the balance it sent is still the balance
(decision 0062; a partial index on `balance IS DISTINCT FROM pushed_balance` made every balance change a non-HOT
update of members). A run writes the *current* balance of due members (as many per call as the platform takes) and
records what it wrote, so many changes in a burst become one write and the last value always wins; a balance that
moved during the call stays due for the next run.

A run goes once through the shop's due members, in id order: a member whose balance moves again after its write
in this run waits for the next run, which the posting that moved it signals (decision 0052). Going round again
within the run, as it once did, wrote the busiest members of a burst again and again while drains kept moving them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from sqlalchemy import delete, select

from plugin import platforms
from plugin.config import Settings
from plugin.db import insert_for, transaction
from plugin.models import BalancePushDue, Member, Shop
from plugin.platforms.base import AdminClient
from plugin.services import expiry, member_marks

MAX_CALLS_PER_RUN = 400  # a run ends; the next signal or sweep continues


def any_due(database_url: str) -> bool:
    """Whether some installed shop has a member whose balance it has not been sent yet."""
    with transaction(database_url) as session:
        return (
            session.execute(
                select(BalancePushDue.member_id)
                .join(Shop, Shop.id == BalancePushDue.shop_id)
                .where(Shop.active.is_(True), Shop.access_token.is_not(None))
                .limit(1)
            ).first()
            is not None
        )


def push_balances(
    settings: Settings,
    client_factory: Callable[[Settings, Shop], AdminClient],
    resting: Callable[[int], bool] = lambda _shop_id: False,
    failed: Callable[[int], None] = lambda _shop_id: None,
) -> int:
    """Write due balances to every installed shop; returns how many metafields were written.

    `resting(shop_id)` skips a shop that failed recently; `failed(shop_id)` is told of each new failure.
    """
    with transaction(settings.database_url) as session:
        shop_ids = session.scalars(
            select(Shop.id)
            .where(Shop.active.is_(True), Shop.access_token.is_not(None))
            .where(select(BalancePushDue.member_id).where(BalancePushDue.shop_id == Shop.id).exists())
        ).all()
    push = partial(_push_shop, settings, client_factory=client_factory)
    return member_marks.push_each(settings.database_url, RUN_NAMESPACE, shop_ids, push, resting, failed)


# A shop's runs, one at a time (member_marks.one_run; decision 0098): two runs of a shop wrote the same members
# twice, and the order of their records could leave the record ahead of the shop. The advisory lock's first key.
RUN_NAMESPACE = "loyalty.balance_push.run"


def _push_shop(settings: Settings, shop_id: int, client_factory: Callable[[Settings, Shop], AdminClient]) -> int:
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        platform = platforms.for_shop(shop)
        client = client_factory(settings, shop)
        # With expiry on, each member's next expiry travels with the balance (a second metafield per member).
        expiring = expiry.policy_of(session, shop_id).on
    per_call = max(platform.max_balances_per_call // 2, 1) if expiring else platform.max_balances_per_call
    written = 0
    after = 0  # the last member id this run sent: one pass (a member a drain held is behind it too)
    for _ in range(MAX_CALLS_PER_RUN):
        with transaction(settings.database_url) as session:
            due = session.execute(
                select(Member.id, Member.customer_id, Member.balance)
                .join(
                    BalancePushDue, (BalancePushDue.shop_id == Member.shop_id) & (BalancePushDue.member_id == Member.id)
                )
                .where(BalancePushDue.shop_id == shop_id, BalancePushDue.member_id > after)
                .order_by(BalancePushDue.member_id)
                .limit(per_call)
            ).all()
            if expiring:
                shop = session.get(Shop, shop_id)
                batch = [(cid, balance, expiry.next_expiry(session, shop, mid)) for mid, cid, balance in due]
            else:
                batch = [(customer_id, balance) for _, customer_id, balance in due]
        if not due:
            break
        platform.push_balances(client, batch)
        _mark_pushed(settings, shop_id, {member_id: balance for member_id, _, balance in due})
        written += len(due)
        after = due[-1][0]
    return written


def _mark_pushed(settings: Settings, shop_id: int, sent: dict[int, int]) -> list[int]:
    """Record the balances sent, skipping members another transaction holds (services/member_marks.py); returns
    the ids skipped: a held member's balance is about to change anyway, so it stays due and the push its posting
    signals sends the new balance.

    A member stops being due only if the balance sent is its balance now, read under its lock: every posting
    takes that lock before it moves the balance and lists the member as due again.
    """
    with transaction(settings.database_url) as session:
        locked = member_marks.lock_free(session, shop_id, sorted(sent), "balance")
        free = [member_id for member_id, _ in locked]
        if free:  # one UPDATE for the call's members, not one each (25 statements a call before)
            member_marks.record(session, shop_id, "balance", {member_id: sent[member_id] for member_id in free})
        settled = [member_id for member_id, balance in locked if balance == sent[member_id]]
        if settled:
            session.execute(
                delete(BalancePushDue).where(BalancePushDue.shop_id == shop_id, BalancePushDue.member_id.in_(settled))
            )
        # Listed again, not only kept: two overlapping runs (a signal during a run starts another) may mark in the
        # other order than the shop received their writes; a run that sent a stale balance and marks last would
        # otherwise find the member's row already deleted by the run that sent the current one. On PostgreSQL a
        # shop's runs no longer overlap (member_marks.one_run, decision 0098); SQLite's inline runs still may.
        behind = [member_id for member_id, balance in locked if balance != sent[member_id]]
        if behind:
            session.execute(
                insert_for(session)(BalancePushDue)
                .values([{"shop_id": shop_id, "member_id": member_id} for member_id in behind])
                .on_conflict_do_nothing(index_elements=["shop_id", "member_id"])
            )
    return sorted(set(sent) - set(free))
