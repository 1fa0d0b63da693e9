"""Shop access tokens: stored encrypted, refreshed before they expire and once when the shop says 401."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import crypto
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.platforms.shopify import oauth as shopify_oauth
from plugin.platforms.shopify.admin import AdminAPIError

REFRESH_AHEAD = timedelta(minutes=5)


def store(shop: Shop, grant: shopify_oauth.TokenGrant, keys: tuple[str, ...]) -> None:
    shop.access_token = crypto.encrypt(grant.access_token, keys)
    shop.token_expires_at = grant.expires_at
    shop.refresh_token = crypto.encrypt(grant.refresh_token, keys) if grant.refresh_token else None
    shop.refresh_expires_at = grant.refresh_expires_at
    if grant.scope:
        shop.scopes = grant.scope


def current(session: Session, settings: Settings, shop: Shop) -> str:
    """The shop's token, refreshed first (in the caller's transaction) if it expires within five minutes."""
    if shop.access_token is None:
        raise AdminAPIError(f"{shop.domain} has no access token")
    if shop.token_expires_at is not None and shop.token_expires_at - utcnow() < REFRESH_AHEAD:
        return _refresh_locked(session, settings, shop.id, force=False)
    return crypto.decrypt(shop.access_token, settings.encryption_keys)


def refresh_now(settings: Settings, shop_id: int) -> str:
    """After a 401: refresh once in a transaction of its own; returns the new token."""
    with transaction(settings.database_url) as session:
        return _refresh_locked(session, settings, shop_id, force=True)


def _refresh_locked(session: Session, settings: Settings, shop_id: int, force: bool) -> str:
    # The row lock makes concurrent workers refresh one at a time; the second sees the fresh token.
    shop = session.execute(
        select(Shop).where(Shop.id == shop_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    fresh = shop.token_expires_at is None or shop.token_expires_at - utcnow() >= REFRESH_AHEAD
    if shop.access_token is not None and fresh and not force:
        return crypto.decrypt(shop.access_token, settings.encryption_keys)
    if shop.refresh_token is None:
        raise AdminAPIError(f"{shop.domain}'s token has expired and cannot be refreshed; reinstall the app")
    try:
        grant = shopify_oauth.refresh_token(
            shop.domain,
            crypto.decrypt(shop.refresh_token, settings.encryption_keys),
            settings.shopify_api_key,
            settings.shopify_api_secret,
            settings.shopify_api_base_url,
        )
    except shopify_oauth.TokenRequestFailed as error:
        raise AdminAPIError(f"{shop.domain}: token refresh refused: {error}") from None
    store(shop, grant, settings.encryption_keys)
    return grant.access_token
