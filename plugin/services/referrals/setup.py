"""The shop's referral settings and its members' personal links."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.db import insert_for
from plugin.models import Member, ReferralLink, ReferralSettings, Shop, utcnow
from plugin.programme import referrals as rules
from plugin.programme import reward_grants
from plugin.programme.rewards import catalogue

LINK_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread when a friend types it
LINK_LENGTH = 8


def settings_row(session: Session, shop_id: int) -> ReferralSettings:
    """The shop's settings row, made with the defaults (disabled) and a fresh signing key the first time."""
    row = session.get(ReferralSettings, shop_id)
    if row is not None:
        return row
    session.execute(
        insert_for(session)(ReferralSettings)
        .values(
            shop_id=shop_id,
            settings=rules.ReferralSettings().to_json(),
            version=1,
            signing_key=secrets.token_hex(32),
            updated_by="system",
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["shop_id"])
    )
    return session.get(ReferralSettings, shop_id, populate_existing=True)


def current(session: Session, shop_id: int) -> rules.ReferralSettings:
    row = session.get(ReferralSettings, shop_id)
    return rules.read_settings(row.settings if row else None)


def update_settings(session: Session, shop: Shop, changes: Any, actor: str) -> dict[str, Any]:
    """Validate a change onto the current settings (absent keys keep their values) and save it as a new version."""
    if not isinstance(changes, dict):
        raise ValidationError({"_schema": ["send a JSON object of settings"]})
    row = settings_row(session, shop.id)
    merged = {**rules.read_settings(row.settings).to_json(), **changes}
    clean = rules.validate_settings(merged)
    reward = clean.get("advocate_reward")
    why = reward_grants.refusal(catalogue(shop.settings), reward, utcnow()) if reward else None
    if why:  # refused before anything changes
        raise ValidationError({"advocate_reward": [why]})
    row.settings = clean
    row.version += 1
    row.updated_by = actor
    row.updated_at = utcnow()
    return row.settings


def link_code(session: Session, shop_id: int, member_id: int) -> str:
    """The member's personal code, made on first ask; the same code ever after."""
    existing = session.execute(
        select(ReferralLink.code).where(ReferralLink.shop_id == shop_id, ReferralLink.member_id == member_id)
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    for _ in range(5):  # 32^8 codes: a clash is rare, and a second draw ends it
        code = "".join(secrets.choice(LINK_ALPHABET) for _ in range(LINK_LENGTH))
        made = session.execute(
            insert_for(session)(ReferralLink)
            .values(shop_id=shop_id, member_id=member_id, code=code, created_at=utcnow())
            .on_conflict_do_nothing()
            .returning(ReferralLink.code)
        ).scalar_one_or_none()
        if made is not None:
            return made
        again = session.execute(
            select(ReferralLink.code).where(ReferralLink.shop_id == shop_id, ReferralLink.member_id == member_id)
        ).scalar_one_or_none()
        if again is not None:  # a concurrent request made it
            return again
    raise RuntimeError("could not draw a free referral code")


def advocate_for_code(session: Session, shop_id: int, code: str) -> int | None:
    """The member behind a code in this shop; None for a malformed or unknown code (or another shop's)."""
    code = code.strip().upper()
    if not rules.CODE_PATTERN.match(code):
        return None
    return session.execute(
        select(ReferralLink.member_id)
        .join(Member, (Member.shop_id == ReferralLink.shop_id) & (Member.id == ReferralLink.member_id))
        .where(ReferralLink.shop_id == shop_id, ReferralLink.code == code)
    ).scalar_one_or_none()


def sign(row: ReferralSettings, visit_id: str) -> str:
    """The cart attribute's value: the visit and a signature over the shop and the visit."""
    return f"{visit_id}.{_mac(row, visit_id)}"


def verify(row: ReferralSettings, token: str) -> str | None:
    """The visit id a cart attribute names, if this shop signed it; None for anything else."""
    visit_id, _, mac = (token or "").partition(".")
    if not visit_id or len(visit_id) > 32 or not mac:
        return None
    return visit_id if hmac.compare_digest(mac, _mac(row, visit_id)) else None


def _mac(row: ReferralSettings, visit_id: str) -> str:
    message = f"{row.shop_id}.{visit_id}".encode()
    return hmac.new(row.signing_key.encode(), message, hashlib.sha256).hexdigest()[:24]
