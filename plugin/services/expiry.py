"""Points expiry: the shop's policy (validated), the daily run per shop in its time zone, reminders, next expiry.

The run is idempotent and resumable: each expiry is a posting keyed by its lot (or, on inactivity, by the member's
last activity), each reminder an outbox event keyed by member, date and reminder day; the run's row keeps a
cursor, committed with each batch of members, so a crash resumes where it stopped and repeats nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import ledger
from plugin.db import insert_for, transaction
from plugin.models import ExpiryPolicy, ExpiryRun, Member, Order, Shop, utcnow
from plugin.programme import expiry as rules
from plugin.services import announcements, expiry_batch, outbox, shops
from plugin.services.errors import Invalid

MAX_MONTHS = 120
MAX_REMINDERS = 5
MEMBERS_PER_BATCH = 500

log = logging.getLogger(__name__)


# --- the policy ------------------------------------------------------------------------------------------------


def policy_of(session: Session, shop_id: int) -> rules.Policy:
    row = session.get(ExpiryPolicy, shop_id)
    if row is None:
        return rules.Policy()
    return rules.Policy(row.policy, row.months, tuple(row.reminder_days or ()))


def policy_json(policy: rules.Policy) -> dict[str, Any]:
    return {"policy": policy.policy, "months": policy.months, "reminder_days": list(policy.reminder_days)}


def validate(body: Any) -> rules.Policy:
    """The policy asked for, or Invalid with a message per field (contradictions named on the field they break)."""
    if not isinstance(body, dict):
        raise Invalid("the expiry settings must be a JSON object", {"_schema": ["a JSON object"]})
    fields: dict[str, list[str]] = {}
    unknown = sorted(set(body) - {"policy", "months", "reminder_days"})
    for name in unknown:
        fields[name] = ["unknown field"]
    policy = body.get("policy", rules.OFF)
    months = body.get("months")
    reminder_days = body.get("reminder_days", [])
    if policy not in rules.POLICIES:
        fields["policy"] = [f"one of {', '.join(rules.POLICIES)}"]
    whole = isinstance(months, int) and not isinstance(months, bool)
    if months is not None and (not whole or not 1 <= months <= MAX_MONTHS):
        fields["months"] = [f"a whole number of months, 1 to {MAX_MONTHS}"]
    elif policy in (rules.PER_LOT, rules.INACTIVITY) and months is None:
        fields["months"] = [f"required when the policy is {policy}"]
    elif policy == rules.OFF and months is not None:
        fields["months"] = ["must be empty when expiry is off: points that never expire have no expiry period"]
    if not isinstance(reminder_days, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 365 for d in reminder_days
    ):
        fields["reminder_days"] = ["a list of whole numbers of days, 1 to 365"]
    elif len(reminder_days) > MAX_REMINDERS:
        fields["reminder_days"] = [f"at most {MAX_REMINDERS} reminders"]
    elif len(set(reminder_days)) != len(reminder_days):
        fields["reminder_days"] = ["each reminder day once"]
    elif reminder_days and policy == rules.OFF:
        fields["reminder_days"] = ["reminders need expiry: turn a policy on, or remove the reminders"]
    elif reminder_days and isinstance(months, int) and "months" not in fields and max(reminder_days) >= months * 28:
        fields["reminder_days"] = [
            f"a reminder {max(reminder_days)} days ahead comes before the points are even {months} months old"
        ]
    if fields:
        raise Invalid("the expiry settings are not valid", fields)
    return rules.Policy(policy, months, tuple(sorted(reminder_days, reverse=True)))


def save_policy(session: Session, shop_id: int, body: Any) -> rules.Policy:
    policy = validate(body)
    row = session.get(ExpiryPolicy, shop_id, with_for_update=True)
    if row is None:
        row = ExpiryPolicy(shop_id=shop_id)
        session.add(row)
    row.policy, row.months, row.reminder_days = policy.policy, policy.months, list(policy.reminder_days)
    row.updated_at = utcnow()
    return policy


# --- a member's lots -------------------------------------------------------------------------------------------


def moves(session: Session, shop_id: int, member_id: int) -> list[rules.Move]:
    return expiry_batch.moves_of(session, shop_id, [member_id])[member_id]


def next_expiry(session: Session, shop: Shop, member_id: int, now: datetime | None = None) -> dict[str, Any] | None:
    """The member's next expiry, {"date", "points"}, or None (expiry off, or nothing to expire)."""
    policy = policy_of(session, shop.id)
    if not policy.on:
        return None
    now = now or utcnow()
    zone = shops.zone(shop)
    coming = rules.upcoming(moves(session, shop.id, member_id), policy, zone, now.astimezone(zone).date(), now)
    if not coming:
        return None
    on, points = coming[0]
    return {"date": on.isoformat(), "points": points}


def next_expiry_of(session: Session, shop_id: int, member_id: int) -> dict[str, Any] | None:
    """next_expiry by ids (the widget's path): only the policy's row is read when expiry is off."""
    if not policy_of(session, shop_id).on:
        return None
    return next_expiry(session, session.get(Shop, shop_id), member_id)


# --- the daily run ---------------------------------------------------------------------------------------------


@dataclass
class RunReport:
    shop_id: int
    run_date: date
    members: int = 0
    points_expired: int = 0
    reminders: int = 0
    already_done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "shop_id": self.shop_id, "run_date": self.run_date.isoformat(), "members": self.members,
            "points_expired": self.points_expired, "reminders": self.reminders, "already_done": self.already_done,
        }  # fmt: skip


def local_today(shop: Shop, now: datetime) -> date:
    return now.astimezone(shops.zone(shop)).date()


def run_shop(database_url: str, shop_id: int, now: datetime | None = None, stop_after: int | None = None) -> RunReport:
    """Expire what is due and send the reminders due for one shop's local day; safe to run again or resume.

    `stop_after` (tests, the chaos replay) stops after that many batches as a crash would.
    """
    now = now or utcnow()
    with transaction(database_url) as session:
        shop = session.get(Shop, shop_id)
        today = local_today(shop, now)
        session.execute(
            insert_for(session)(ExpiryRun)
            .values(shop_id=shop_id, run_date=today, started_at=now, points_expired=0, reminders=0)
            .on_conflict_do_nothing(index_elements=["shop_id", "run_date"])
        )
    report = RunReport(shop_id, today)
    batches = 0
    while True:
        with transaction(database_url) as session:
            run = session.get(ExpiryRun, (shop_id, today), with_for_update=True)
            if run.completed_at is not None:
                report.already_done = batches == 0
                return report
            shop = session.get(Shop, shop_id)
            policy = policy_of(session, shop_id)
            member_ids = []
            if policy.on:
                member_ids = session.scalars(
                    select(Member.id)
                    .where(Member.shop_id == shop_id, Member.id > run.after_member_id)
                    .order_by(Member.id)
                    .limit(MEMBERS_PER_BATCH)
                ).all()
            expired, reminded = _batch(session, shop, policy, member_ids, today, now) if member_ids else (0, 0)
            report.points_expired += expired
            report.reminders += reminded
            run.points_expired += expired
            run.reminders += reminded
            report.members += len(member_ids)
            if member_ids:
                run.after_member_id = member_ids[-1]  # the cursor, committed with the batch's postings
            else:
                run.completed_at = utcnow()
        batches += 1
        if stop_after is not None and batches >= stop_after:
            return report


def _batch(session: Session, shop: Shop, policy: rules.Policy, member_ids, today: date, now: datetime):
    """The batch set-based (expiry_batch); if that fails, its members one at a time, in the same transaction."""
    try:
        with session.begin_nested():
            return expiry_batch.run_batch(session, shop, policy, member_ids, today, now)
    except Exception:  # a deadlock, a bug in the batch path: the savepoint undid it; the one-member path decides
        log.exception("expiry batch of %s members after %s failed; running them one by one", len(member_ids),
                      member_ids[0])  # fmt: skip
    expired = reminded = 0
    for member_id in member_ids:
        one_expired, one_reminded = _member(session, shop, policy, member_id, today, now)
        expired += one_expired
        reminded += one_reminded
    return expired, reminded


def _member(session: Session, shop: Shop, policy: rules.Policy, member_id: int, today: date, now: datetime):
    """Expire one member's due lots and record their due reminders; returns (points expired, reminders)."""
    zone = shops.zone(shop)
    history = moves(session, shop.id, member_id)
    found = rules.due(history, policy, zone, today, now)
    if found:
        # Lock in accrual's order (the order rows, then the member through ledger.post), so no deadlock.
        for order_id in sorted({e.lot.order_id for e in found if e.lot.order_id is not None}):
            session.execute(
                select(Order.id).where(Order.shop_id == shop.id, Order.order_id == order_id).with_for_update()
            )
        session.execute(select(Member.id).where(Member.shop_id == shop.id, Member.id == member_id).with_for_update())
        history = moves(session, shop.id, member_id)  # again, under the locks: a refund may have just landed
        found = rules.due(history, policy, zone, today, now)
    expired = 0
    for expiry in found:
        expired += _expire(session, shop, member_id, expiry, policy, history)
    reminded = 0
    if policy.reminder_days:
        if expired:  # what is left after today's expiries: read again rather than guess the new postings
            history = moves(session, shop.id, member_id)
        events = expiry_batch.reminder_events(member_id, history, policy, zone, today, now)
        reminded = outbox.record_many(session, shop.id, events)
    return expired, reminded


def _expire(session: Session, shop: Shop, member_id: int, expiry: rules.Expiry, policy: rules.Policy, history) -> int:
    entry = expiry_batch.entry_for(member_id, expiry, policy, history)
    posting_id = ledger.post(session, shop.id, entry)
    if posting_id is None:
        return 0
    if entry.order_id is not None:
        # The order holds fewer points now: a later refund takes back only what is still held (accrual.settle).
        order = session.scalars(
            select(Order).where(Order.shop_id == shop.id, Order.order_id == entry.order_id)
        ).one_or_none()
        if order is not None:
            order.points_held -= expiry.points
            order.expired_points += expiry.points
    announcements.posting(
        session, shop.id, posting_id, expires_on=expiry.on.isoformat(), lot_posting_id=expiry.lot.posting_id
    )
    return expiry.points


def due_shops(database_url: str, now: datetime | None = None) -> list[int]:
    """Shops with expiry on whose run for their current local day has not completed (the sweeper queues them)."""
    now = now or utcnow()
    with transaction(database_url) as session:
        rows = session.execute(
            select(Shop, ExpiryPolicy.policy)
            .join(ExpiryPolicy, ExpiryPolicy.shop_id == Shop.id)
            .where(Shop.active.is_(True), ExpiryPolicy.policy != rules.OFF)
        ).all()
        due = []
        for shop, _policy in rows:
            run = session.get(ExpiryRun, (shop.id, local_today(shop, now)))
            if run is None or run.completed_at is None:
                due.append(shop.id)
        return due
