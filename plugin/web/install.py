"""Merchant install through OAuth: GET /auth starts it, GET /auth/callback checks everything and keeps the token."""

from __future__ import annotations

import logging
import secrets
import time

from flask import Blueprint, Response, current_app, redirect, request, session

from plugin import jobs
from plugin.config import Settings
from plugin.db import engine_for, insert_for, transaction
from plugin.models import UsedOAuthState, utcnow
from plugin.platforms.shopify import oauth as shopify_oauth
from plugin.platforms.shopify import tokens
from plugin.platforms.shopify.adapter import is_valid_shop_domain
from plugin.services import shops
from plugin.web.errors import json_error

log = logging.getLogger(__name__)
bp = Blueprint("install", __name__)
MAX_CALLBACK_AGE_SECONDS = 600  # Shopify redirects back within seconds of the merchant's approval
MAX_CLOCK_AHEAD_SECONDS = 60


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def _params() -> list[tuple[str, str]]:
    return list(request.args.items(multi=True))


@bp.get("/auth")
def start() -> Response:
    settings = _settings()
    shop = request.args.get("shop", "")
    if not is_valid_shop_domain(shop):
        return json_error(400, "invalid_shop", "shop must be a *.myshopify.com domain")
    if "hmac" in request.args and not shopify_oauth.verify_query(_params(), settings.webhook_secrets):
        return json_error(401, "invalid_hmac", "the install request's hmac does not match")
    if not current_app.secret_key:
        return json_error(500, "not_configured", "SECRET_KEY must be set to sign the OAuth state cookie")
    state = secrets.token_urlsafe(24)
    session["oauth"] = {"state": state, "shop": shop}  # Flask's session cookie is signed with SECRET_KEY
    redirect_uri = f"{settings.shopify_app_url or request.host_url.rstrip('/')}/auth/callback"
    return redirect(
        shopify_oauth.authorize_url(shop, settings.shopify_api_key, settings.shopify_scopes, redirect_uri, state)
    )


@bp.get("/auth/callback")
def callback() -> Response:
    settings = _settings()
    expected = session.pop("oauth", None) or {}  # and each state is recorded when used: a replay is refused
    shop = request.args.get("shop", "")
    if not shopify_oauth.verify_query(_params(), settings.webhook_secrets):
        return json_error(401, "invalid_hmac", "the callback's hmac does not match")
    if not is_valid_shop_domain(shop):
        return json_error(400, "invalid_shop", "shop must be a *.myshopify.com domain")
    state = request.args.get("state", "")
    if not expected or not secrets.compare_digest(state, expected.get("state", "")) or expected.get("shop") != shop:
        return json_error(403, "invalid_state", "the state does not match this browser's install request")
    try:
        age = time.time() - int(request.args.get("timestamp", "0"))
        if age > MAX_CALLBACK_AGE_SECONDS or age < -MAX_CLOCK_AHEAD_SECONDS:
            return json_error(400, "stale_request", "the callback is too old")
    except ValueError:
        return json_error(400, "stale_request", "the callback has no valid timestamp")
    if not _first_use(settings, state, shop):
        return json_error(403, "invalid_state", "this install request was already completed")
    try:
        grant = shopify_oauth.exchange_code(
            shop,
            request.args.get("code", ""),
            settings.shopify_api_key,
            settings.shopify_api_secret,
            settings.shopify_api_base_url,
        )
    except shopify_oauth.TokenRequestFailed as error:
        log.warning("token exchange for %s refused: %s", shop, error)
        return json_error(400, "code_rejected", "the shop refused the authorization code; start the install again")
    with transaction(settings.database_url) as db:
        installed = shops.install(db, shop, None, settings.encryption_keys)
        tokens.store(installed, grant, settings.encryption_keys)
        shop_id = installed.id
    jobs.enqueue_webhook_check(settings, shop_id)
    jobs.enqueue_locale_read(settings, shop_id)
    log.info("installed %s (scopes %s)", shop, grant.scope)
    return redirect(f"https://{shop}/admin/apps/{settings.shopify_api_key}")


def _first_use(settings: Settings, state: str, shop: str) -> bool:
    """Record the state as consumed; False when a callback already used it (a replay with the same cookie)."""
    statement = (
        insert_for(engine_for(settings.database_url))(UsedOAuthState)
        .values(state=state, shop_domain=shop, used_at=utcnow())
        .on_conflict_do_nothing(index_elements=["state"])
        .returning(UsedOAuthState.state)
    )
    with engine_for(settings.database_url).begin() as connection:
        return connection.execute(statement).scalar() is not None
