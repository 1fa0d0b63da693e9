"""Redemption: points become exactly one discount code, or one store credit, in the shop, or come back.

Lifecycle: `redeem` takes the points and records a pending redemption in one transaction. `issue` (an RQ job)
creates the code through the shop's Admin API under a lease; the code is stored with the redemption, so a
retried or concurrent job looks it up before creating anything. A shop that refuses the code, or stays
unreachable through every retry, fails the redemption and a `return` posting gives the points back. `cancel`
deletes an unused code and returns the points. The return posting has one key per redemption: at most once.
Store credit (kinds store_credit and cash_back) follows the same lease and look-up-first path with a credit in
place of a code, and a cancel debits it back if unspent (docs/store-credit.md).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from plugin import ledger, platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Member, Redemption, Shop, utcnow
from plugin.platforms.shopify import discounts, store_credit
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable, AdminClient
from plugin.programme import rewards
from plugin.programme.rewards import Reward, catalogue
from plugin.services import outbox

log = logging.getLogger(__name__)

PENDING, ISSUED, FAILED, CANCELLED = "pending", "issued", "failed", "cancelled"
REDEEM, GRANT = "redeem", "grant"  # a redemption's kind: points spent, or a reward earned at no point cost
# A job holds a lease on its redemption (LOYALTY_REDEMPTION_LEASE_SECONDS) and stops starting shop calls after
# two thirds of it, so the lease never runs out under a live job; a killed job's redemption
# is picked up by the sweeper once the lease has run out.
MAX_ATTEMPTS = 5
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread


class RedemptionError(Exception):
    code = "redemption_error"


class NotAMember(RedemptionError):
    code = "not_a_member"


class UnknownReward(RedemptionError):
    code = "unknown_reward"


class NotEnoughPoints(RedemptionError):
    code = "not_enough_points"


class CannotCancel(RedemptionError):
    code = "cannot_cancel"


class CreditSpent(CannotCancel):
    """A store credit the customer has (partly) spent cannot be taken back: the points stay spent."""

    code = "credit_spent"


class BadPoints(RedemptionError):
    """The points chosen for a cash-back reward are outside its bounds or not a whole number of steps."""

    code = "bad_points"


class RewardUnavailable(RedemptionError):
    """Out of its window, sold out, or this customer's limit reached; `reason` says which."""

    code = "reward_unavailable"

    def __init__(self, why: rewards.Unavailable):
        super().__init__(why.message)
        self.reason = why.reason


ClientFactory = Callable[[Settings, Shop], AdminClient]


def redeem(
    session: Session,
    shop: Shop,
    customer_id: int,
    reward_id: str,
    idempotency_key: str | None = None,
    actor: str = "shopper",
    now: datetime | None = None,
    points: int | None = None,
) -> Redemption:
    """Spend a member's available points on a reward, in the caller's transaction.

    `points` is what the shopper chose for a cash-back reward (a whole number of its steps, within its bounds);
    any other reward costs its own points.

    The member row is locked first, so concurrent redemptions are serialised and can never overdraw;
    a repeated idempotency key returns the redemption it first made.
    """
    member = session.execute(
        select(Member)
        .where(Member.shop_id == shop.id, Member.customer_id == customer_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if not shop.active:
        raise RedemptionError(f"{shop.domain} has uninstalled the app")
    if member is None:
        raise NotAMember(f"customer {customer_id} is not a member of {shop.domain}")
    if idempotency_key:
        existing = session.execute(
            select(Redemption).where(Redemption.shop_id == shop.id, Redemption.idempotency_key == idempotency_key)
        ).scalar_one_or_none()
        if existing is not None:
            if existing.member_id != member.id:
                raise RedemptionError("this idempotency key belongs to another member's redemption")
            if existing.reward["id"] != reward_id:
                raise RedemptionError("this idempotency key was used to redeem another reward")
            return existing
    reward = next((r for r in catalogue(shop.settings) if r.id == reward_id), None)
    if reward is None:
        raise UnknownReward(f"no reward {reward_id!r} in {shop.domain}'s catalogue")
    refusal = reward.refusal_for_points(points)
    if refusal is not None:
        raise BadPoints(refusal)
    cost = points if points is not None else reward.points
    if reward.is_store_credit and not shop.currency:
        raise RedemptionError(f"{shop.domain}'s currency is not known yet (it is learnt from its first order)")
    now = now or utcnow()
    if reward.limited:
        why = _unavailable(session, shop.id, member.id, reward, now, lock=True)
        if why is not None:
            raise RewardUnavailable(why)
    available = ledger.balance_of(session, shop.id, member, now).available
    if available < cost:
        raise NotEnoughPoints(f"{reward.title} costs {cost} points; {available} are available")

    redemption = _new(session, shop, member.id, reward, cost, idempotency_key, actor, now)
    entry = ledger.Entry(
        member_id=member.id,
        kind="redeem",
        points=-cost,
        source_type="redemption",
        source_id=str(redemption.id),
        idempotency_key=f"redemption:{redemption.id}:redeem",
        rule_version=f"reward:{reward.id}",
        note=f"redeemed for {reward.title}",
        actor=actor,
    )
    ledger.post(session, shop.id, entry)
    return redemption


def _new(
    session: Session, shop: Shop, member_id: int, reward: Reward, points: int, key: str | None, actor: str,
    now: datetime,
) -> Redemption:  # fmt: skip
    """A pending redemption of `reward` (worth `points`; 0 for a grant), with its code or its store credit's fields."""
    redemption = Redemption(
        shop_id=shop.id,
        member_id=member_id,
        reward=reward.to_json(),
        reward_id=reward.id,
        points=points,
        status=PENDING,
        code=f"unassigned-{secrets.token_hex(8)}",
        idempotency_key=key,
        actor=actor,
        attempts=0,
        created_at=now,
        starts_at=now,
        ends_at=now + timedelta(days=reward.lifetime_days),
    )
    if reward.is_store_credit:
        redemption.credit_milli = to_milli(reward.credit_for(reward.points if points == 0 else points))
        redemption.credit_currency = shop.currency
        redemption.credit_expires_at = _unique_expiry(session, shop.id, member_id, redemption.ends_at)
        redemption.ends_at = redemption.credit_expires_at
    session.add(redemption)
    session.flush()
    redemption.code = code_for(redemption.id)
    return redemption


def grant(
    session: Session, shop: Shop, member_id: int, reward: Reward, key: str, granted_by: dict[str, Any]
) -> Redemption:
    """A reward earned (a milestone, a referral), issued at no point cost through the same job as a redemption.

    The caller holds the lock that decides the grant (the member's milestone holding, the referral row), so a
    repeated or shuffled delivery never reaches here twice for one grant; `key` makes it idempotent regardless.
    Grants skip the reward's point price and its limits (what was earned is owed), but count towards the limits
    as live redemptions of the reward (decision 0030)."""
    existing = session.execute(
        select(Redemption).where(Redemption.shop_id == shop.id, Redemption.idempotency_key == key)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    redemption = _new(session, shop, member_id, reward, 0, key, "system", utcnow())
    redemption.kind = GRANT
    redemption.granted_by = granted_by
    return redemption


def key_taken(session: Session, shop_id: int, key: str) -> bool:
    return (
        session.execute(
            select(Redemption.id).where(Redemption.shop_id == shop_id, Redemption.idempotency_key == key)
        ).first()
        is not None
    )


to_milli, from_milli = rewards.to_milli, rewards.from_milli


def _unique_expiry(session: Session, shop_id: int, member_id: int, wanted: datetime) -> datetime:
    """The credit's expiry, in whole seconds, moved on a second until no other store credit of this member has it.

    The member row is locked by the caller, so two redemptions cannot pick the same instant. The expiry is how a
    look-up after a lost reply recognises this credit in the shop (Admin API 2026-10 takes no key or note)."""
    candidate = wanted.replace(microsecond=0)
    taken = set(
        session.scalars(
            select(Redemption.credit_expires_at).where(
                Redemption.shop_id == shop_id,
                Redemption.member_id == member_id,
                Redemption.credit_expires_at >= candidate,
                Redemption.credit_expires_at < candidate + timedelta(days=1),
            )
        )
    )
    while candidate in taken:
        candidate += timedelta(seconds=1)
    return candidate


LIVE = (PENDING, ISSUED)  # failed and cancelled redemptions gave their points, and so the reward, back


def _unavailable(
    session: Session, shop_id: int, member_id: int | None, reward: Reward, now: datetime, lock: bool = False
) -> rewards.Unavailable | None:
    """Why a limited reward cannot be redeemed now by this member (None: it can), counted from live redemptions.

    With lock, a reward with a total is first locked for the transaction, so two members redeeming the last one
    at once are serialised (the member row lock already serialises one member's redemptions)."""
    if lock and reward.total_available is not None and session.get_bind().dialect.name == "postgresql":
        # SQLite needs nothing: its write transactions begin IMMEDIATE, one at a time.
        key = f"reward-total:{shop_id}:{reward.id}"
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})
    live = (Redemption.shop_id == shop_id) & (Redemption.reward_id == reward.id) & Redemption.status.in_(LIVE)
    total = 0
    if reward.total_available is not None:
        total = session.scalar(select(func.count()).select_from(Redemption).where(live))
    mine = 0
    if reward.per_customer_limit is not None and member_id is not None:
        since = rewards.period_start(reward.per_customer_period, now)
        mine_filter = live & (Redemption.member_id == member_id)
        if since is not None:
            mine_filter = mine_filter & (Redemption.created_at >= since)
        mine = session.scalar(select(func.count()).select_from(Redemption).where(mine_filter))
    return rewards.unavailable(reward, now, total, mine)


def availability(
    session: Session, shop_id: int, member_id: int | None, offered: list[Reward], now: datetime | None = None
) -> dict[str, rewards.Unavailable]:
    """Each limited reward that this member (None: a visitor) cannot redeem now, by reward id, with the reason."""
    now = now or utcnow()
    found = {}
    for reward in offered:
        if reward.limited:
            why = _unavailable(session, shop_id, member_id, reward, now)
            if why is not None:
                found[reward.id] = why
    return found


def code_for(redemption_id: int) -> str:
    """The shop code for a redemption: its id, readable, plus a random part so codes cannot be guessed."""
    digits, n = "", redemption_id
    while True:
        n, r = divmod(n, len(CODE_ALPHABET))
        digits = CODE_ALPHABET[r] + digits
        if n == 0:
            break
    suffix = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
    return f"PTS-{digits}-{suffix}"


def issue(
    settings: Settings,
    redemption_id: int,
    client_factory: ClientFactory = platforms.admin_client,
    shop_id: int | None = None,
) -> str:
    """Create the redemption's code in the shop (job body). Safe to run any number of times, concurrently."""
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        if redemption is None or redemption.status != PENDING:
            return redemption.status if redemption else "missing"
        shop_id = redemption.shop_id  # the later transactions' look-ups name the shop, even for an old job
        now = utcnow()
        if redemption.lease_until is not None and redemption.lease_until > now:
            return "leased"  # another job is on it
        redemption.lease_until = now + timedelta(seconds=settings.redemption_lease_seconds)
        redemption.attempts += 1
        attempts = redemption.attempts
        shop = session.get(Shop, redemption.shop_id)
        member = session.get(Member, (redemption.shop_id, redemption.member_id))
        reward = Reward.from_json(redemption.reward)
        request = discounts.CodeRequest(
            redemption.code, reward, member.customer_id, redemption.starts_at, redemption.ends_at
        )
        credit = _credit_request(redemption, member.customer_id) if reward.is_store_credit else None
        try:
            client = client_factory(settings, shop)
        except AdminAPIError as error:
            return _fail(session, redemption, f"cannot call the shop: {error}")
        client.deadline = time.monotonic() + _budget(settings)

    # No database lock is held while we talk to the shop.
    if credit is not None:
        return _issue_credit(settings, redemption_id, shop_id, client, credit, attempts)
    look = _code_look(client, request.code)
    settle = _code_settle(settings, redemption_id, shop_id, client)
    try:
        found = discounts.find(client, request.code)
        if found is None:
            try:
                discount_id = discounts.create(client, request)
            except discounts.CodeTaken:
                found = discounts.find(client, request.code)  # ours, from an earlier attempt that timed out
                if found is None:
                    raise AdminAPIError(f"code {request.code} is reported taken but cannot be found") from None
                discount_id = found.discount_id
        else:
            discount_id = found.discount_id
    except AdminAPIError as error:
        return _after_refusal(settings, redemption_id, shop_id, client, look, settle, attempts, str(error))
    except AdminAPIUnavailable as error:
        return _after_unavailable(settings, redemption_id, shop_id, client, look, settle, attempts, str(error))
    return _settle_issued(settings, redemption_id, shop_id, discount_id, client)


# What the shop holds for a redemption (None: nothing), and how to record what was found as issued: a code or a
# store credit, so both share one lease and look-up-first path.
Look = Callable[[], Any]
Settle = Callable[[Any], str]


def _code_look(client: AdminClient, code: str) -> Look:
    return lambda: discounts.find(client, code)


def _code_settle(settings: Settings, redemption_id: int, shop_id: int | None, client: AdminClient) -> Settle:
    return lambda found: _settle_issued(settings, redemption_id, shop_id, found.discount_id, client)


def _after_refusal(
    settings: Settings,
    redemption_id: int,
    shop_id: int | None,
    client: AdminClient,
    look: Look,
    settle: Settle,
    attempts: int,
    problem: str,
) -> str:
    """The shop refused; but an earlier attempt whose answer was lost may have made it: look first."""
    client.deadline = time.monotonic() + _budget(settings) / 2
    try:
        found = look()
    except AdminAPIUnavailable:
        return _after_unavailable(settings, redemption_id, shop_id, client, look, settle, attempts, problem)
    except AdminAPIError:
        found = None  # the shop refuses us altogether (e.g. a revoked token): nothing more can be learnt
    if found is not None:
        return settle(found)
    return _settle_failed(settings, redemption_id, shop_id, f"the shop refused the reward: {problem}")


def _after_unavailable(
    settings: Settings,
    redemption_id: int,
    shop_id: int | None,
    client: AdminClient,
    look: Look,
    settle: Settle,
    attempts: int,
    problem: str,
) -> str:
    if attempts >= MAX_ATTEMPTS:
        client.deadline = time.monotonic() + _budget(settings) / 2  # one more look before giving up
        try:
            found = look()
        except (AdminAPIError, AdminAPIUnavailable):
            pass  # we cannot tell whether the shop made it: keep the points taken and try again later
        else:
            if found is None:  # fail only once we know the shop holds nothing for it
                reason = f"the shop was unavailable {attempts} times: {problem}"
                return _settle_failed(settings, redemption_id, shop_id, reason)
            return settle(found)
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        if redemption is not None and redemption.status == PENDING:
            # Let the sweeper try again later, a little later each time.
            redemption.lease_until = utcnow() + timedelta(seconds=min(15 * attempts, 300))
            redemption.reason = f"attempt {attempts}: {problem}"
    return "retry"


def _credit_request(redemption: Redemption, customer_id: int) -> store_credit.CreditRequest:
    return store_credit.CreditRequest(
        customer_id, from_milli(redemption.credit_milli), redemption.credit_currency, redemption.credit_expires_at
    )


CREDIT_ROUNDS = 4  # look, then credit once, this many times in one job before handing over to the sweeper


def _issue_credit(
    settings: Settings,
    redemption_id: int,
    shop_id: int | None,
    client: AdminClient,
    request: store_credit.CreditRequest,
    attempts: int,
) -> str:
    """Credit the customer's store-credit account once: look for the credit first, make it only if absent."""
    look = lambda: store_credit.find_credit(client, request)  # noqa: E731
    settle = _credit_settle(settings, redemption_id, shop_id, client, request)
    try:
        found = None
        for round_ in range(1, CREDIT_ROUNDS + 1):
            found = look()
            if found is not None:
                break
            try:
                found = store_credit.credit(client, request)  # tried once: a lost answer is found by the look
                break
            except AdminAPIUnavailable:
                if round_ == CREDIT_ROUNDS:
                    raise
                client.sleep(min(0.25 * 2 ** (round_ - 1), client.max_wait_seconds))
    except AdminAPIError as error:
        return _after_refusal(settings, redemption_id, shop_id, client, look, settle, attempts, str(error))
    except AdminAPIUnavailable as error:
        return _after_unavailable(settings, redemption_id, shop_id, client, look, settle, attempts, str(error))
    return settle(found)


def _credit_settle(
    settings: Settings,
    redemption_id: int,
    shop_id: int | None,
    client: AdminClient,
    request: store_credit.CreditRequest,
) -> Settle:
    def settle(found: store_credit.Credit) -> str:
        with transaction(settings.database_url) as session:
            redemption = _locked(session, redemption_id, shop_id)
            if redemption.status == PENDING:
                redemption.status = ISSUED
                redemption.discount_id = found.transaction_id
                shown = found.balance_after if found.balance_after is not None else found.balance_now
                redemption.credit_balance_milli = to_milli(shown) if shown is not None else None
                redemption.reason = None
                redemption.lease_until = None
                redemption.settled_at = utcnow()
                return ISSUED
            status = redemption.status
        if status in (FAILED, CANCELLED):
            # Settled meanwhile with the points given back: the credit must not outlive that.
            store_credit.debit(client, request.customer_id, request.currency, request.amount)
        return status

    return settle


def _budget(settings: Settings) -> float:
    return settings.redemption_lease_seconds * 2 / 3


def _settle_issued(
    settings: Settings, redemption_id: int, shop_id: int | None, discount_id: str, client: AdminClient
) -> str:
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        if redemption.status == PENDING:
            redemption.status = ISSUED
            redemption.discount_id = discount_id
            redemption.reason = None
            redemption.lease_until = None
            redemption.settled_at = utcnow()
            _announce(session, redemption, "reward.issued")
            return ISSUED
        status = redemption.status
    if status in (FAILED, CANCELLED):
        # Someone settled it meanwhile and returned the points: the code must not outlive that.
        discounts.delete(client, discount_id)
    return status


def _settle_failed(settings: Settings, redemption_id: int, shop_id: int | None, reason: str) -> str:
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        if redemption.status != PENDING:
            return redemption.status
        return _fail(session, redemption, reason)


def _fail(session: Session, redemption: Redemption, reason: str) -> str:
    redemption.status = FAILED
    redemption.reason = reason[:2000]
    redemption.lease_until = None
    redemption.settled_at = utcnow()
    _return_points(session, redemption, f"code could not be created: {reason}"[:500], "system")
    _announce(session, redemption, "reward.failed")
    log.warning("redemption %s failed: %s", redemption.id, reason)
    return FAILED


def _announce(session: Session, redemption: Redemption, event_type: str) -> None:
    """reward.issued or reward.failed, in the transaction that settles the redemption (once per redemption)."""
    outbox.record(
        session,
        redemption.shop_id,
        event_type,
        dedupe_key=f"{event_type}:redemption:{redemption.id}",
        member_id=redemption.member_id,
        data={
            "redemption_id": redemption.id,
            "reward_id": redemption.reward_id,
            "reward": redemption.reward,
            "points": redemption.points,
            # The code is the shopper's to use: receivers get it only once it exists in the shop.
            "code": redemption.code if event_type == "reward.issued" else None,
            "reason": redemption.reason,
        },
    )


def cancel(
    settings: Settings,
    redemption_id: int,
    reason: str,
    actor: str,
    client_factory: ClientFactory = platforms.admin_client,
    shop_id: int | None = None,
) -> Redemption:
    """Delete an unused reward's code (or debit an unspent store credit) in the shop and give the points back, once."""
    with transaction(settings.database_url) as session:
        redemption = find(session, redemption_id, shop_id)
        if redemption is None:
            raise LookupError(f"no redemption {redemption_id}")
        shop_id = redemption.shop_id
        _check_cancellable(redemption)
        client = client_factory(settings, session.get(Shop, redemption.shop_id))
        code = redemption.code
        is_credit = redemption.credit_milli is not None
    if is_credit:
        _debit_back(settings, redemption_id, shop_id, client)
        return _cancelled(settings, redemption_id, shop_id, reason, actor)
    found = discounts.find(client, code)
    if found is not None and found.used > 0:
        raise CannotCancel(f"code {code} has already been used {found.used} time(s)")
    if found is not None:
        try:
            discounts.delete(client, found.discount_id)
        except AdminAPIError:
            # A retried delete is refused when the first one worked but its answer was lost: look again.
            if discounts.find(client, code) is not None:
                raise
    return _cancelled(settings, redemption_id, shop_id, reason, actor)


def _cancelled(settings: Settings, redemption_id: int, shop_id: int | None, reason: str, actor: str) -> Redemption:
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        _check_cancellable(redemption)
        redemption.status = CANCELLED
        redemption.reason = reason
        redemption.settled_at = utcnow()
        _return_points(session, redemption, f"reward cancelled by {actor}: {reason}", actor)
        return redemption


# A debit we look for may be stamped by the shop's clock, a little behind ours.
CLOCK_SKEW = timedelta(minutes=5)


def _debit_back(settings: Settings, redemption_id: int, shop_id: int | None, client: AdminClient) -> None:
    """Take an unspent store credit back out of the customer's account, once; CreditSpent if it was spent.

    The time the debit began is stored first. A cancel retried after a lost reply finds that debit (one made by
    us, not at checkout, of this amount, since then) and does not debit again."""
    with transaction(settings.database_url) as session:
        redemption = _locked(session, redemption_id, shop_id)
        _check_cancellable(redemption)
        member = session.get(Member, (redemption.shop_id, redemption.member_id))
        request = _credit_request(redemption, member.customer_id)
        earlier = redemption.debit_started_at
        if earlier is None:
            redemption.debit_started_at = utcnow()
    if earlier is not None and store_credit.find_debit(
        client, request.customer_id, request.currency, request.amount, earlier - CLOCK_SKEW
    ):
        return  # an earlier cancel debited it and lost the answer
    found = store_credit.find_credit(client, request)
    try:
        if found is None:
            raise store_credit.InsufficientFunds("the credit is no longer in the customer's account (expired?)")
        if found.spent > 0:
            raise store_credit.InsufficientFunds(
                f"{found.spent} of {request.amount} {request.currency} store credit has already been spent"
            )
        store_credit.debit(client, request.customer_id, request.currency, request.amount)
    except store_credit.InsufficientFunds as error:
        message = f"cannot take the store credit back: {error}; nothing was debited and the points stay spent"
        with transaction(settings.database_url) as session:
            redemption = _locked(session, redemption_id, shop_id)
            redemption.debit_started_at = None  # nothing of ours is in the shop
            redemption.reason = message[:2000]  # support sees why on the redemption
        raise CreditSpent(message) from None


def _check_cancellable(redemption: Redemption) -> None:
    if redemption.status == PENDING:
        raise CannotCancel("the code is still being created; try again in a moment")
    if redemption.status != ISSUED:
        raise CannotCancel(f"redemption {redemption.id} is {redemption.status}; its points were already returned")


def _return_points(session: Session, redemption: Redemption, note: str, actor: str) -> None:
    if redemption.points == 0:
        return  # a grant cost no points: there are none to give back
    entry = ledger.Entry(
        member_id=redemption.member_id,
        kind="return",
        points=redemption.points,
        source_type="redemption",
        source_id=str(redemption.id),
        idempotency_key=f"redemption:{redemption.id}:return",
        rule_version=f"reward:{redemption.reward['id']}",
        note=note,
        actor=actor,
    )
    ledger.post(session, redemption.shop_id, entry)


def find(session: Session, redemption_id: int, shop_id: int | None = None) -> Redemption | None:
    """The redemption with this id, of this shop when `shop_id` is given (the look-up a sharded database routes)."""
    query = select(Redemption).where(Redemption.id == redemption_id)
    if shop_id is not None:
        query = query.where(Redemption.shop_id == shop_id)
    return session.execute(query).scalar_one_or_none()


def _locked(session: Session, redemption_id: int, shop_id: int | None = None) -> Redemption | None:
    query = select(Redemption).where(Redemption.id == redemption_id)
    if shop_id is not None:
        query = query.where(Redemption.shop_id == shop_id)
    return session.execute(query.with_for_update().execution_options(populate_existing=True)).scalar_one_or_none()


def for_member(session: Session, shop: Shop, customer_id: int, limit: int = 50) -> list[Redemption]:
    return list(
        session.scalars(
            select(Redemption)
            .join(Member, Member.id == Redemption.member_id)
            .where(Redemption.shop_id == shop.id, Member.shop_id == shop.id, Member.customer_id == customer_id)
            .order_by(Redemption.id.desc())
            .limit(limit)
        )
    )


def unsettled(database_url: str, older_than: timedelta, limit: int = 500) -> list[tuple[int, int]]:
    """(shop id, redemption id) of pending redemptions whose job is not running (never started, lost, or waiting
    to retry). The sweeper's one look across shops; the jobs it queues then name their shop."""
    now = utcnow()
    with transaction(database_url) as session:
        return [
            (shop_id, redemption_id)
            for shop_id, redemption_id in session.execute(
                select(Redemption.shop_id, Redemption.id)
                .where(
                    Redemption.status == PENDING,
                    Redemption.created_at <= now - older_than,
                    (Redemption.lease_until.is_(None)) | (Redemption.lease_until <= now),
                )
                .order_by(Redemption.id)
                .limit(limit)
            )
        ]
