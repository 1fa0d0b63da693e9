"""Referral link visits: a friend opens /apps/loyalty/r/CODE, gets a signed cart attribute and a discount code.

The friend's code is made like a redemption's (services/redemption.py): recorded first, then created in the shop
by a queued job under a lease, looking the code up before creating it, so a retried job never makes two.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plugin import platforms
from plugin.config import Settings
from plugin.db import insert_for, transaction
from plugin.models import Member, ReferralSettings, ReferralVisit, Shop, utcnow
from plugin.platforms.shopify import discounts
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable
from plugin.programme import referrals as rules
from plugin.programme.rewards import Reward
from plugin.services.redemption import CODE_ALPHABET, MAX_ATTEMPTS, ClientFactory
from plugin.services.referrals import setup

log = logging.getLogger(__name__)

NONE, PENDING, ISSUED, FAILED = "none", "pending", "issued", "failed"


@dataclass(frozen=True)
class Visit:
    visit_id: str
    token: str  # the signed value the widget puts in the cart attribute
    code_status: str
    friend_code: str | None
    reward_title: str | None
    fresh: bool  # made by this request (False: a replayed request found its visit)
    reward: dict | None = None  # the friend's reward as given (kind, amount, percent ...)


def open_link(
    session: Session, shop: Shop, code: str, request_key: str, visitor: int | None, now: datetime | None = None
) -> Visit | None:
    """Record a visit of an advocate's link; None (the plain storefront) for a code that does not fit this shop."""
    row = session.get(ReferralSettings, shop.id)
    config = rules.read_settings(row.settings if row else None)
    if row is None or not config.enabled:
        return None
    advocate_id = setup.advocate_for_code(session, shop.id, code)
    if advocate_id is None:
        return None
    if visitor is not None and _is_member(session, shop.id, advocate_id, visitor):
        return None  # the advocate opening their own link: nothing to give
    replay = _by_request(session, shop.id, request_key)
    if replay is not None:
        return _visit(row, replay, fresh=False)
    now = now or utcnow()
    gives_code = _codes_today(session, shop.id, advocate_id, now) < config.friend_codes_per_day
    reward = config.friend_reward()
    visit_id = secrets.token_hex(12)
    made = session.execute(
        insert_for(session)(ReferralVisit)
        .values(
            shop_id=shop.id,
            visit_id=visit_id,
            advocate_member_id=advocate_id,
            request_key=request_key[:128],
            visitor_customer_id=visitor,
            code_status=PENDING if gives_code else NONE,
            friend_code=friend_code() if gives_code else None,
            friend_reward=reward.to_json() if gives_code else None,
            attempts=0,
            created_at=now,
            ends_at=now + timedelta(days=config.friend_code_days) if gives_code else None,
        )
        .on_conflict_do_nothing()
        .returning(ReferralVisit.visit_id)
    ).scalar_one_or_none()
    visit = _by_request(session, shop.id, request_key)
    return _visit(row, visit, fresh=made is not None)


def _visit(row: ReferralSettings, visit: ReferralVisit, *, fresh: bool) -> Visit:
    title = (visit.friend_reward or {}).get("title")
    return Visit(
        visit.visit_id, setup.sign(row, visit.visit_id), visit.code_status, visit.friend_code, title, fresh,
        visit.friend_reward,
    )  # fmt: skip


def _by_request(session: Session, shop_id: int, request_key: str) -> ReferralVisit | None:
    return session.execute(
        select(ReferralVisit).where(ReferralVisit.shop_id == shop_id, ReferralVisit.request_key == request_key[:128])
    ).scalar_one_or_none()


def _is_member(session: Session, shop_id: int, member_id: int, customer_id: int) -> bool:
    found = session.execute(
        select(Member.id).where(Member.shop_id == shop_id, Member.id == member_id, Member.customer_id == customer_id)
    ).scalar_one_or_none()
    return found is not None


def _codes_today(session: Session, shop_id: int, advocate_id: int, now: datetime) -> int:
    return session.scalar(
        select(func.count())
        .select_from(ReferralVisit)
        .where(
            ReferralVisit.shop_id == shop_id,
            ReferralVisit.advocate_member_id == advocate_id,
            ReferralVisit.created_at >= now - timedelta(days=1),
            ReferralVisit.friend_code.is_not(None),
        )
    )


def friend_code() -> str:
    return "FRIEND-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(10))


def find_visit(session: Session, shop_id: int, token: str) -> Visit | None:
    """The visit a signed token names (what the widget shows the friend); None for a forged or foreign one."""
    row = session.get(ReferralSettings, shop_id)
    visit_id = setup.verify(row, token) if row else None
    visit = session.get(ReferralVisit, (shop_id, visit_id)) if visit_id else None
    return _visit(row, visit, fresh=False) if visit else None


def issue(
    settings: Settings, shop_id: int, visit_id: str, client_factory: ClientFactory = platforms.admin_client
) -> str:
    """Create the friend's code in the shop (job body): safe to run any number of times, concurrently."""
    with transaction(settings.database_url) as session:
        visit = _locked(session, shop_id, visit_id)
        if visit is None or visit.code_status != PENDING:
            return visit.code_status if visit else "missing"
        now = utcnow()
        if visit.lease_until is not None and visit.lease_until > now:
            return "leased"
        visit.lease_until = now + timedelta(seconds=settings.redemption_lease_seconds)
        visit.attempts += 1
        attempts = visit.attempts
        request = discounts.CodeRequest(
            visit.friend_code, Reward.from_json(visit.friend_reward), 0, visit.created_at, visit.ends_at
        )
        try:
            client = client_factory(settings, session.get(Shop, shop_id))
        except AdminAPIError as error:
            return _settle(visit, FAILED, reason=f"cannot call the shop: {error}")
        client.deadline = time.monotonic() + settings.redemption_lease_seconds * 2 / 3
    try:
        found = discounts.find(client, request.code)
        if found is None:
            try:
                discount_id = discounts.create(client, request)
            except discounts.CodeTaken:  # ours, from an earlier attempt whose answer was lost
                found = discounts.find(client, request.code)
                if found is None:
                    raise AdminAPIError(f"code {request.code} is reported taken but cannot be found") from None
                discount_id = found.discount_id
        else:
            discount_id = found.discount_id
    except AdminAPIError as error:
        return _finish(settings, shop_id, visit_id, FAILED, reason=f"the shop refused the code: {error}")
    except AdminAPIUnavailable as error:
        if attempts >= MAX_ATTEMPTS:
            return _finish(settings, shop_id, visit_id, FAILED, reason=f"unavailable {attempts} times: {error}")
        with transaction(settings.database_url) as session:
            visit = _locked(session, shop_id, visit_id)
            if visit is not None and visit.code_status == PENDING:
                visit.lease_until = utcnow() + timedelta(seconds=min(15 * attempts, 300))
                visit.reason = f"attempt {attempts}: {error}"[:2000]
        return "retry"
    return _finish(settings, shop_id, visit_id, ISSUED, discount_id=discount_id)


def _finish(
    settings: Settings, shop_id: int, visit_id: str, status: str, *, reason: str | None = None,
    discount_id: str | None = None,
) -> str:  # fmt: skip
    with transaction(settings.database_url) as session:
        visit = _locked(session, shop_id, visit_id)
        if visit.code_status != PENDING:
            return visit.code_status
        return _settle(visit, status, reason=reason, discount_id=discount_id)


def _settle(visit: ReferralVisit, status: str, *, reason: str | None = None, discount_id: str | None = None) -> str:
    visit.code_status, visit.reason, visit.discount_id, visit.lease_until = status, reason, discount_id, None
    if status == FAILED:
        log.warning("referral code %s failed: %s", visit.friend_code, reason)
    return status


def _locked(session: Session, shop_id: int, visit_id: str) -> ReferralVisit | None:
    return session.execute(
        select(ReferralVisit)
        .where(ReferralVisit.shop_id == shop_id, ReferralVisit.visit_id == visit_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def unsettled(database_url: str, older_than: timedelta, limit: int = 500) -> list[tuple[int, str]]:
    """Friends' codes whose job is not running (never started, lost, or waiting to retry)."""
    now = utcnow()
    with transaction(database_url) as session:
        rows = session.execute(
            select(ReferralVisit.shop_id, ReferralVisit.visit_id)
            .where(
                ReferralVisit.code_status == PENDING,
                ReferralVisit.created_at <= now - older_than,
                (ReferralVisit.lease_until.is_(None)) | (ReferralVisit.lease_until <= now),
            )
            .order_by(ReferralVisit.created_at)
            .limit(limit)
        )
        return [(shop_id, visit_id) for shop_id, visit_id in rows]
