"""Shops: install without OAuth (development and tests), look up, and change programme settings."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import crypto, platforms
from plugin.models import Member, Shop, utcnow
from plugin.programme.settings import stored_settings, validate_settings


class ShopNotFound(LookupError):
    pass


def zone(shop: Shop) -> ZoneInfo:
    """The shop's time zone, in which periods, birthdays, expiry days and reports are counted (UTC if unknown)."""
    try:
        return ZoneInfo(shop.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def install(
    session: Session, domain: str, token: str | None, keys: tuple[str, ...], platform: str = platforms.DEFAULT
) -> Shop:
    """Install a shop, or re-activate it with its history if it was uninstalled; its platform checks the domain."""
    adapter = platforms.get(platform)
    if not adapter.is_valid_shop_domain(domain):
        raise ValueError(f"{domain!r} is not a {adapter.shop_domain_hint} domain")
    shop = session.execute(select(Shop).where(Shop.domain == domain)).scalar_one_or_none()
    if shop is None:
        shop = Shop(domain=domain, platform=adapter.name, settings=validate_settings({}), settings_version=1)
        session.add(shop)
    shop.active = True
    shop.installed_at = utcnow()
    shop.uninstalled_at = None
    if token:
        shop.access_token = crypto.encrypt(token, keys)
    session.flush()
    return shop


def get(session: Session, domain: str) -> Shop:
    shop = session.execute(select(Shop).where(Shop.domain == domain)).scalar_one_or_none()
    if shop is None:
        raise ShopNotFound(f"no shop {domain}")
    return shop


def member(session: Session, shop: Shop, customer_id: int) -> Member | None:
    return session.execute(
        select(Member).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
    ).scalar_one_or_none()


def update_settings(session: Session, shop: Shop, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate and save a change of settings, as a new version; every door (admin PUT, CLI --set) calls this.

    The fields given replace the stored ones and the others are kept (a top-level merge: `earn` and `rewards` are
    replaced whole), so a client that sends part of the settings cannot reset the rest by leaving it out.
    Earned lots keep the version they were made with.
    """
    if not isinstance(changes, dict):
        raise ValidationError({"_schema": ["send a JSON object of settings"]})
    # Onto the readable stored settings: a part that no longer validates is already at its default there, so a
    # save after a broken row repairs it instead of failing on what the merchant did not send.
    merged = {**stored_settings(shop.settings), **changes}
    shop.settings = validate_settings(merged, shop.currency)
    shop.settings_version += 1
    return shop.settings
