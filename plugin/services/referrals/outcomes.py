"""Referral outcomes: tie a friend's paid orders to advocates, decide each from the facts, post the difference.

Runs as a member-level rule inside the transaction that changed the friend's order (services/member_rules.py),
and from a time-driven job once a pending period ends. Everything is recomputed from stored facts (the orders'
facts, refunds, cancellations, approvals), so duplicate or shuffled deliveries land in the same state.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from plugin import ledger
from plugin.db import insert_for
from plugin.models import Member, Order, Referral, ReferralSettings, ReferralVisit, Refund, Shop, utcnow
from plugin.programme import referrals as rules
from plugin.programme import reward_grants
from plugin.programme.rewards import catalogue
from plugin.programme.settings import program_settings
from plugin.services import outbox, shops
from plugin.services import reward_grants as grant_service  # aliased: programme.reward_grants is imported too
from plugin.services.referrals import setup

log = logging.getLogger(__name__)


def after_order_change(session: Session, shop: Shop, member_id: int) -> None:
    """Member rule: tie this member's paid orders to advocates, then bring every advocate concerned up to date."""
    row = session.get(ReferralSettings, shop.id)
    if row is None:  # the shop never set up referrals: one primary-key read, then nothing
        return
    config = rules.read_settings(row.settings)
    # Accrual runs without autoflush: the order's new facts must reach the database before they are read back.
    session.flush()
    if config.enabled:
        _attribute(session, shop, row, member_id)
        session.flush()
    zone = shops.zone(shop)
    # Caps count within a month, so only the months of this friend's referrals can change; the advocate's own
    # order (their addresses, phones) can change any of theirs.
    months: dict[int, set[Month] | None] = defaultdict(set)
    for advocate_id, ordered in session.execute(
        select(Referral.advocate_member_id, Referral.ordered_at).where(
            Referral.shop_id == shop.id, Referral.friend_member_id == member_id
        )
    ):
        months[advocate_id].add(month_of(ordered, zone))
    is_advocate = session.execute(
        select(Referral.order_id).where(Referral.shop_id == shop.id, Referral.advocate_member_id == member_id).limit(1)
    ).first()
    if is_advocate:
        months[member_id] = None
    for advocate_id in sorted(months):  # one order, so two transactions lock advocates alike
        recompute(session, shop, advocate_id, config, months=months[advocate_id])


def _attribute(session: Session, shop: Shop, row: ReferralSettings, member_id: int) -> None:
    known = set(
        session.scalars(
            select(Referral.order_id).where(Referral.shop_id == shop.id, Referral.friend_member_id == member_id)
        )
    )
    paid = session.execute(
        select(Order.order_id, Order.paid_at, Order.facts).where(
            Order.shop_id == shop.id, Order.member_id == member_id, Order.facts.is_not(None)
        )
    ).all()
    for order_id, paid_at, facts in paid:
        if order_id in known:
            continue
        found = _signal(session, shop.id, row, facts)
        if found is None:
            continue
        visit, matched_by = found
        session.execute(
            insert_for(session)(Referral)
            .values(
                shop_id=shop.id,
                order_id=order_id,
                advocate_member_id=visit.advocate_member_id,
                friend_member_id=member_id,
                visit_id=visit.visit_id,
                matched_by=matched_by,
                ordered_at=ordered_at(facts, paid_at),
                status=rules.QUALIFIED,
                reward_points=0,
                points_held=0,
                points_owed=0,
                moves=0,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["shop_id", "order_id"])
        )


def _signal(
    session: Session, shop_id: int, row: ReferralSettings, facts: dict[str, Any]
) -> tuple[ReferralVisit, str] | None:
    """The visit an order names: by the friend's code it used, else by the signed cart attribute."""
    codes = [str(code).upper() for code in facts.get("discount_codes") or []][:20]
    if codes:
        visit = session.execute(
            select(ReferralVisit).where(ReferralVisit.shop_id == shop_id, ReferralVisit.friend_code.in_(codes)).limit(1)
        ).scalar_one_or_none()
        if visit is not None:
            return visit, "friend_code"
    token = (facts.get("contact") or {}).get("referral")
    visit_id = setup.verify(row, token) if token else None
    if visit_id is not None:
        visit = session.get(ReferralVisit, (shop_id, visit_id))
        if visit is not None:
            return visit, "cookie"
    return None


def ordered_at(facts: dict[str, Any], paid_at: datetime | None) -> datetime:
    """When the shopper ordered (what "first order" and the caps count by), whatever the delivery order."""
    if facts.get("processed_at"):
        return datetime.fromisoformat(facts["processed_at"])
    return paid_at or datetime.fromisoformat(facts["paid_at"])


Month = tuple[int, int]


def month_of(moment: datetime, zone: ZoneInfo) -> Month:
    local = moment.astimezone(zone)
    return local.year, local.month


def _month_range(month: Month, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The month's first instant and the next month's, in the shop's zone."""
    year, number = month
    following = (year + 1, 1) if number == 12 else (year, number + 1)
    return datetime(year, number, 1, tzinfo=zone), datetime(*following, 1, tzinfo=zone)


def recompute(
    session: Session,
    shop: Shop,
    advocate_id: int,
    config: rules.ReferralSettings,
    now: datetime | None = None,
    months: set[Month] | None = None,
) -> None:
    """Decide one advocate's referrals again (those ordered in `months`, or all) and post what the advocate should
    hold, under row locks. A month is decided whole: its cap and its days' limits never reach into another."""
    now = now or utcnow()
    query = select(Referral).where(Referral.shop_id == shop.id, Referral.advocate_member_id == advocate_id)
    if months is not None:
        if not months:
            return
        ranges = [_month_range(month, shops.zone(shop)) for month in sorted(months)]
        query = query.where(
            or_(*((Referral.ordered_at >= start) & (Referral.ordered_at < end) for start, end in ranges))
        )
    rows = list(
        session.scalars(query.order_by(Referral.order_id).with_for_update().execution_options(populate_existing=True))
    )
    if not rows:
        return
    candidates = {c.order_id: c for c in _candidates(session, shop, advocate_id, rows)}
    outcomes = rules.decide(list(candidates.values()), config, shops.zone(shop), now)
    settings = program_settings(shop.settings, shop.settings_version)
    for row in rows:
        outcome = outcomes[row.order_id]
        candidate = candidates[row.order_id]
        row.status, row.block_reason, row.available_at = outcome.status, outcome.reason, candidate.available_at
        # Earned: qualified and past its pending period (the points may be 0 when the reward is a catalogue one).
        earned = outcome.status == rules.QUALIFIED and candidate.available_at <= now
        if earned and not row.reward_points and row.reward_id is None:
            # Fixed when first given: later settings never change what this referral gives.
            row.reward_points, row.reward_id = config.advocate_points, config.advocate_reward
        target = row.reward_points if earned else 0
        if target != row.points_held:
            _post_difference(session, shop, row, target, settings.spent_points_policy)
        _bring_reward(session, shop, row, earned)
        row.updated_at = now


def _bring_reward(session: Session, shop: Shop, row: Referral, earned: bool) -> None:
    """Hold the advocate's catalogue reward while the referral is earned: issue it once, or ask for it back."""
    if earned and row.reward_id and row.reward_redemption_id is None:
        reward = reward_grants.find(catalogue(shop.settings), row.reward_id)
        if reward is None:
            log.warning("shop %s: referral reward %r is no longer in the catalogue", shop.id, row.reward_id)
            return
        # Earned again after its reward was taken back (support approved it): a new reward (the grant's next key).
        issued = grant_service.issue(
            session, shop, row.advocate_member_id, reward, "referral", str(row.order_id), 1, "referral",
            f"referral of order {row.order_id}",
        )  # fmt: skip
        row.reward_redemption_id = issued.id
    elif not earned and row.reward_redemption_id is not None:
        why = f"referral of order {row.order_id}: the friend's order was refunded or cancelled"
        grant_service.request_revoke(session, shop.id, row.reward_redemption_id, why)
        row.reward_redemption_id = None


def _candidates(session: Session, shop: Shop, advocate_id: int, rows: list[Referral]) -> list[rules.Candidate]:
    order_ids = [row.order_id for row in rows]
    orders = {
        order.order_id: order
        for order in session.scalars(select(Order).where(Order.shop_id == shop.id, Order.order_id.in_(order_ids)))
    }
    friends = {row.friend_member_id for row in rows if row.friend_member_id is not None}
    members = {
        m.id: m
        for m in session.scalars(
            select(Member).where(Member.shop_id == shop.id, Member.id.in_(friends | {advocate_id}))
        )
    }
    first = _first_orders(session, shop.id, friends)
    advocate = _contact_of(session, shop.id, advocate_id, members.get(advocate_id))
    ended = _fully_refunded_at(session, shop.id, orders)
    pending_days = program_settings(shop.settings, shop.settings_version).pending_days
    candidates = []
    for row in rows:
        order = orders.get(row.order_id)
        facts = (order.facts if order else None) or {}
        contact = facts.get("contact") or {}
        friend = members.get(row.friend_member_id)
        same_customer = row.friend_member_id == advocate_id or (
            friend is not None and advocate.customer_id is not None and friend.customer_id == advocate.customer_id
        )
        email = contact.get("email") or rules.email_key(friend.email if friend else None)
        paid_at = order.paid_at if order and order.paid_at else row.ordered_at
        available = order.available_at if order and order.available_at else None
        if available is None:
            available = rules.available_at(paid_at, 0 if order is not None and order.lot else pending_days)
        endings = [t for t in (order.cancelled_at if order else None, ended.get(row.order_id)) if t is not None]
        candidates.append(
            rules.Candidate(
                order_id=row.order_id,
                ordered_at=row.ordered_at,
                same_customer=same_customer,
                same_email=_shared(email, advocate.emails),
                same_address=_shared(contact.get("address"), advocate.addresses),
                same_phone=_shared(contact.get("phone"), advocate.phones),
                first_order=first.get(row.friend_member_id) in (None, row.order_id),
                ended_at=min(endings) if endings else None,
                available_at=available,
                approved=row.approved_at is not None,
            )
        )
    return candidates


def _shared(key: str | None, keys: set[str]) -> bool:
    return key is not None and key in keys


class _Contact:
    def __init__(self, customer_id: int | None):
        self.customer_id = customer_id
        self.emails: set[str] = set()
        self.addresses: set[str] = set()
        self.phones: set[str] = set()


def _contact_of(session: Session, shop_id: int, member_id: int, member: Member | None) -> _Contact:
    """The advocate's e-mail, and every address and phone their own paid orders carried."""
    contact = _Contact(member.customer_id if member else None)
    if member is not None and rules.email_key(member.email):
        contact.emails.add(rules.email_key(member.email))
    facts_of_orders = session.scalars(
        select(Order.facts).where(Order.shop_id == shop_id, Order.member_id == member_id, Order.facts.is_not(None))
    )
    for facts in facts_of_orders:
        keys = facts.get("contact") or {}
        for name, found in (("email", contact.emails), ("address", contact.addresses), ("phone", contact.phones)):
            if keys.get(name):
                found.add(keys[name])
    return contact


def _first_orders(session: Session, shop_id: int, member_ids: set[int]) -> dict[int, int]:
    """Each friend's first paid order we know of, by when it was ordered (then by id), whatever arrived first."""
    if not member_ids:
        return {}
    firsts: dict[int, tuple[datetime, int]] = {}
    paid = session.execute(
        select(Order.member_id, Order.order_id, Order.paid_at, Order.facts).where(
            Order.shop_id == shop_id, Order.member_id.in_(member_ids), Order.facts.is_not(None)
        )
    )
    for member_id, order_id, paid_at, facts in paid:
        key = (ordered_at(facts, paid_at), order_id)
        if member_id not in firsts or key < firsts[member_id]:
            firsts[member_id] = key
    return {member_id: key[1] for member_id, key in firsts.items()}


def _fully_refunded_at(session: Session, shop_id: int, orders: dict[int, Order]) -> dict[int, datetime]:
    """When each order's refunds came to cover every line it had (a partial refund leaves the referral standing)."""
    refunds: dict[int, list[Refund]] = defaultdict(list)
    if not orders:
        return {}
    for refund in session.scalars(
        select(Refund).where(Refund.shop_id == shop_id, Refund.order_id.in_(list(orders))).order_by(Refund.id)
    ):
        refunds[refund.order_id].append(refund)
    ended = {}
    for order_id, found in refunds.items():
        facts = orders[order_id].facts or {}
        wanted = {int(line[0]): int(line[1]) for line in facts.get("lines", [])}
        if not wanted:
            continue
        taken: dict[int, int] = defaultdict(int)
        for refund in sorted(found, key=_refund_time):
            for line, quantity in refund.facts.get("line_quantities", {}).items():
                taken[int(line)] += int(quantity)
            if all(taken[line] >= quantity for line, quantity in wanted.items()):
                ended[order_id] = _refund_time(refund)
                break
    return ended


def _refund_time(refund: Refund) -> datetime:
    made = (refund.facts or {}).get("created_at")
    return datetime.fromisoformat(made) if made else refund.created_at


def _post_difference(session: Session, shop: Shop, row: Referral, target: int, policy: str) -> None:
    """Move the advocate's points from what the referral holds to `target`; a reversal follows the shop's policy."""
    delta = target - row.points_held
    label = f"referral of order {row.order_id}"
    key = f"referral:{row.order_id}:{row.moves}:{row.points_held}->{target}"
    if delta > 0:
        _post(session, shop, row, "bonus", delta, key, f"{label}: the friend's first order stood its pending period")
        outbox.record(
            session,
            shop.id,
            "referral.completed",
            dedupe_key=f"referral.completed:{row.order_id}",
            member_id=row.advocate_member_id,
            data={
                "advocate_member_id": row.advocate_member_id,
                "friend_member_id": row.friend_member_id,
                "order_id": row.order_id,
                "points": delta,
                "matched_by": row.matched_by,
            },
        )
        row.points_held = target
        return
    owed = 0
    if policy != "allow_negative":
        payable = max(_locked_balance(session, shop.id, row.advocate_member_id), 0)
        shortfall = max(-delta - payable, 0)
        if shortfall and policy == "stop_at_zero":
            note = f"{label}: stop_at_zero forgives {shortfall} points already spent"
            _post(session, shop, row, "forgive", shortfall, f"{key}:forgive", note)
        elif shortfall:  # claw_back: take what is there; the rest stays owed on the referral
            owed, delta = shortfall, -payable
    if delta:
        _post(session, shop, row, "reverse", delta, key, f"{label}: the friend's order was refunded or cancelled")
    row.points_owed += owed
    row.points_held = target


def _post(session: Session, shop: Shop, row: Referral, kind: str, points: int, key: str, note: str) -> None:
    entry = ledger.Entry(
        member_id=row.advocate_member_id,
        kind=kind,
        points=points,
        source_type="referral",
        source_id=str(row.order_id),
        idempotency_key=key,
        rule_version="referral",
        note=note,
    )
    if ledger.post(session, shop.id, entry) is None:
        raise ledger.LedgerError(f"referral posting {key} already exists")
    row.moves += 1


def _locked_balance(session: Session, shop_id: int, member_id: int) -> int:
    return session.execute(
        select(Member.balance).where(Member.shop_id == shop_id, Member.id == member_id).with_for_update()
    ).scalar_one()


def _not_given():
    """A referral whose advocate holds nothing for it yet: no points, and no reward."""
    return (Referral.points_held == 0) & Referral.reward_redemption_id.is_(None)


def due_shops(session: Session, now: datetime | None = None, limit: int = 100) -> list[int]:
    """Shops with a qualified referral whose pending period is over and whose points are not posted yet."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Referral.shop_id)
            .where(Referral.status == rules.QUALIFIED, _not_given(), Referral.available_at <= now)
            .group_by(Referral.shop_id)
            .limit(limit)
        )
    )


def settle_due(session: Session, shop: Shop, now: datetime | None = None) -> int:
    """Post the rewards whose pending period has ended (a time-driven job: run twice, it posts once)."""
    now = now or utcnow()
    zone = shops.zone(shop)
    due: dict[int, set[Month]] = defaultdict(set)
    for advocate_id, ordered in session.execute(
        select(Referral.advocate_member_id, Referral.ordered_at).where(
            Referral.shop_id == shop.id,
            Referral.status == rules.QUALIFIED,
            _not_given(),
            Referral.available_at <= now,
        )
    ):
        due[advocate_id].add(month_of(ordered, zone))
    config = setup.current(session, shop.id)
    for advocate_id in sorted(due):
        recompute(session, shop, advocate_id, config, now, months=due[advocate_id])
    return len(due)


def approve(session: Session, shop: Shop, order_id: int, actor: str, reason: str) -> Referral:
    """Support approves a blocked referral (audited: who, when, why); the guards then let it through."""
    row = session.execute(
        select(Referral).where(Referral.shop_id == shop.id, Referral.order_id == order_id).with_for_update()
    ).scalar_one_or_none()
    if row is None:
        raise LookupError(f"no referral for order {order_id}")
    if row.approved_at is None:
        if row.status != rules.BLOCKED:
            raise ValueError(f"the referral of order {order_id} is {row.status}, not blocked")
        row.approved_by, row.approved_reason, row.approved_at = actor, reason, utcnow()
    month = {month_of(row.ordered_at, shops.zone(shop))}
    recompute(session, shop, row.advocate_member_id, setup.current(session, shop.id), months=month)
    return row
