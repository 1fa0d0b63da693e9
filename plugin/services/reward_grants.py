"""Reward grants: a grant issued under its key (`issue`); one the facts no longer earn is deactivated or taken back.

A milestone or a referral grants a catalogue reward as a redemption of kind "grant" (services/redemption.py
`grant`), issued by the same leased, look-up-first job as a redemption. When later facts un-earn it (a refund
below the threshold, a cancelled punch, the friend's order refunded), the transaction that learnt it requests the
take-back (`request_revoke`); the job `revoke` then works with the shop, outside any database lock:

- the code unused (or the store credit unspent): deleted (debited back), and the grant is cancelled;
- used: the reward stays with the customer and its point value is taken back under the shop's spent-points
  policy (programme/reward_grants.py `used_reward_take_back`), in postings that say so.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import select

from plugin import ledger, platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Member, Redemption, Shop, utcnow
from plugin.platforms.shopify import discounts
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable
from plugin.programme import reward_grants
from plugin.programme.rewards import Reward
from plugin.programme.settings import program_settings
from plugin.services import announcements, redemption
from plugin.services.redemption import CANCELLED, FAILED, GRANT, PENDING, ClientFactory

log = logging.getLogger(__name__)


def issue(
    session, shop: Shop, member_id: int, reward: Reward, source_type: str, source_id: str, number: int,
    rule_version: str, label: str,
) -> Redemption:  # fmt: skip
    """Grant `reward` as grant `number` of a rule (a milestone's, a referral's), keyed by the grant
    (programme/reward_grants.py `key`), in the caller's transaction, under the caller's lock on the grant."""
    generation = 0
    while redemption.key_taken(
        session, shop.id, key := reward_grants.key(source_type, source_id, member_id, number, rule_version, generation)
    ):
        generation += 1  # the same grant earned again after its reward was taken back: a new reward, a new key
    granted_by = {
        "source_type": source_type, "source_id": source_id, "number": number, "rule_version": rule_version,
        "label": label,
    }  # fmt: skip
    return redemption.grant(session, shop, member_id, reward, key, granted_by)


def request_revoke(session, shop_id: int, redemption_id: int, why: str) -> None:
    """Ask for a grant's reward to be taken back (in the caller's transaction); the job does it after the commit."""
    row = redemption._locked(session, redemption_id, shop_id)
    if row is None or row.kind != GRANT or row.revoke_requested_at is not None:
        return
    row.revoke_requested_at = utcnow()
    row.reason = f"taken back: {why}"[:2000]


def due(database_url: str, limit: int = 200) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(shop id, redemption id) of grants to issue now (pending, no job on them) and of take-backs to do."""
    now = utcnow()
    free = Redemption.lease_until.is_(None) | (Redemption.lease_until <= now)
    with transaction(database_url) as session:
        issue = session.execute(
            select(Redemption.shop_id, Redemption.id)
            .where(Redemption.status == PENDING, Redemption.kind == GRANT, free)
            .order_by(Redemption.id)
            .limit(limit)
        ).all()
        revoke = session.execute(
            select(Redemption.shop_id, Redemption.id)
            .where(_revoke_due(), Redemption.status != PENDING, free)
            .order_by(Redemption.id)
            .limit(limit)
        ).all()
    return [tuple(row) for row in issue], [tuple(row) for row in revoke]


def _revoke_due():
    # The same condition as the partial index ix_redemptions_revoke_due (models.REVOKE_DUE).
    return Redemption.revoke_requested_at.is_not(None) & Redemption.revoked_at.is_(None)


def revoke(
    settings: Settings,
    redemption_id: int,
    shop_id: int | None = None,
    client_factory: ClientFactory = platforms.admin_client,
) -> str:
    """Take one grant's reward back (job body); safe to run any number of times, concurrently."""
    with transaction(settings.database_url) as session:
        row = redemption._locked(session, redemption_id, shop_id)
        if row is None or row.revoke_requested_at is None or row.revoked_at is not None:
            return "nothing"
        now = utcnow()
        if row.status in (FAILED, CANCELLED):
            row.revoked_at = now  # never issued, or already cancelled by support: nothing is in the shop
            return "nothing"
        if row.status == PENDING:
            return PENDING  # the issue job settles it first; the sweeper comes back for the take-back
        if row.lease_until is not None and row.lease_until > now:
            return "leased"
        row.lease_until = now + timedelta(seconds=settings.redemption_lease_seconds)
        shop_id = row.shop_id
        code, is_credit = row.code, row.credit_milli is not None
        # A tier's free-shipping code is a status, not a value earned once: it goes when the tier goes, used or not.
        status_only = (row.granted_by or {}).get("source_type") == "tier_free_shipping"
        try:
            client = client_factory(settings, session.get(Shop, shop_id))
        except AdminAPIError as error:
            row.lease_until = None
            log.warning("grant %s: cannot call the shop to take it back: %s", redemption_id, error)
            return "retry"
        client.deadline = time.monotonic() + settings.redemption_lease_seconds * 2 / 3

    try:
        used = _take_from_shop(settings, redemption_id, shop_id, client, code, is_credit, status_only)
    except (AdminAPIError, AdminAPIUnavailable) as error:
        with transaction(settings.database_url) as session:
            row = redemption._locked(session, redemption_id, shop_id)
            row.lease_until = utcnow() + timedelta(seconds=60)  # the sweeper tries again after this
            log.warning("grant %s: take-back not done yet: %s", redemption_id, error)
        return "retry"
    with transaction(settings.database_url) as session:
        row = redemption._locked(session, redemption_id, shop_id)
        if row.revoked_at is not None:
            return "nothing"
        row.revoked_at, row.lease_until = utcnow(), None
        if used is None:
            row.status, row.settled_at = CANCELLED, row.revoked_at
            row.reason = f"{row.reason}; the reward was unused and is deactivated"[:2000]
            return CANCELLED
        _take_value(session, row, used)
        return "taken_back"


def _take_from_shop(
    settings, redemption_id, shop_id, client, code: str, is_credit: bool, status_only: bool = False
) -> str | None:
    """Deactivate the reward in the shop if unused; returns None when done, or what shows it was used."""
    if is_credit:
        try:
            redemption._debit_back(settings, redemption_id, shop_id, client)
        except redemption.CreditSpent as spent:
            return str(spent)
        return None
    found = discounts.find(client, code)
    if found is not None and found.used > 0 and not status_only:
        return f"code {code} was already used {found.used} time(s)"
    if found is not None:
        try:
            discounts.delete(client, found.discount_id)
        except AdminAPIError:
            if discounts.find(client, code) is not None:  # a lost answer to a delete that worked: look again
                raise
    return None


def _take_value(session, row: Redemption, used: str) -> None:
    """The reward was used: take its point value back under the shop's spent-points policy, saying so."""
    shop = session.get(Shop, row.shop_id)
    policy = program_settings(shop.settings, shop.settings_version).spent_points_policy
    balance = session.execute(
        select(Member.balance).where(Member.shop_id == row.shop_id, Member.id == row.member_id).with_for_update()
    ).scalar_one()
    value = int(row.reward.get("points") or 0)
    decision = reward_grants.used_reward_take_back(policy, value, balance)
    label = (row.granted_by or {}).get("label") or "reward grant"
    note = f"{label}: {row.reward.get('title')} taken back after it was used ({used}); {decision.remark}"
    if decision.forgive:
        _post(session, row, "forgive", decision.forgive, "revoke:forgive", note)
    if decision.reverse:
        _post(session, row, "reverse", decision.reverse, "revoke", note)
    if decision.owed:
        _owe(session, row, decision.owed)
    row.reason = f"{row.reason}; {used}; {decision.remark}"[:2000]


def _owe(session, row: Redemption, owed: int) -> None:
    """claw_back: what the balance could not pay is owed on the milestone rule's holding, netted against its next
    grant (as its points' take-backs are). A referral has no next grant of its own: the debt is only noted."""
    granted_by = row.granted_by or {}
    if granted_by.get("source_type") not in ("threshold", "punch_card"):
        return
    from plugin.services.milestones import grants  # the milestone rules import this module: no cycle at load

    holding = grants.lock(session, row.shop_id, row.member_id, f"{granted_by['source_type']}:{granted_by['source_id']}")
    holding.points_held += owed
    holding.unpaid += owed


def _post(session, row: Redemption, kind: str, points: int, suffix: str, note: str) -> None:
    posting_id = ledger.post(
        session,
        row.shop_id,
        ledger.Entry(
            member_id=row.member_id,
            kind=kind,
            points=points,
            source_type="redemption",
            source_id=str(row.id),
            idempotency_key=f"redemption:{row.id}:{suffix}",
            rule_version=f"reward:{row.reward_id}",
            note=note[:500],
        ),
    )
    announcements.posting(session, row.shop_id, posting_id)
