"""App Proxy endpoints for referrals: the personal link /apps/loyalty/r/CODE and what the widget's share panel shows.

Shopify strips cookies from App Proxy requests and responses, so the link answers with a redirect to the
storefront carrying a signed token; the widget keeps it in a first-party cookie and puts it into the cart as an
attribute (docs/decisions/0025-referrals.md).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from plugin.config import Settings
from plugin.db import transaction
from plugin.jobs.tasks import enqueue_referral_code
from plugin.models import Shop
from plugin.platforms.shopify import adapter as shopify
from plugin.programme import referrals as rules
from plugin.programme import reward_grants
from plugin.programme.rewards import catalogue
from plugin.services import referrals, shops
from plugin.web.errors import json_error

bp = Blueprint("storefront_referrals", __name__, url_prefix="/proxy")
NO_REDIRECT = {"merge_slashes": False, "strict_slashes": True}
TOKEN_PARAM = "loyalty_referral"  # the query parameter the widget reads on the storefront
MAX_TOKEN = 80


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def _verified(allowed: frozenset[str] = frozenset()) -> shopify.ProxyRequest | None:
    params = list(request.args.items(multi=True))
    try:
        return shopify.verify_proxy(params, _settings().webhook_secrets, time.time(), allowed=allowed)
    except shopify.ProxyAuthError:
        return None


def _storefront(token: str | None = None) -> Response:
    """The shop's home page (relative, so it stays on the shop's own domain), with the token when there is one."""
    return redirect("/" + (f"?{urlencode({TOKEN_PARAM: token})}" if token else ""), code=302)


@bp.get("/r/<path:code>", **NO_REDIRECT)
def open_link(code: str) -> Response:
    """A friend follows an advocate's link: record the visit (once per signed request) and send them shopping.

    Whatever is wrong (an unknown, malformed or foreign code, a shop without referrals, a bad signature), the
    shopper lands on the plain storefront: no reward, no error page.
    """
    caller = _verified()
    if caller is None or len(code) > 64:
        return _storefront()
    with transaction(_settings().database_url) as session:
        shop = _active_shop(session, caller.shop_domain)
        visit = None
        if shop is not None:
            request_key = request.args.get("signature", "")
            visit = referrals.open_link(session, shop, code, request_key, caller.customer_id)
        shop_id = shop.id if shop is not None else None
    if visit is None:
        return _storefront()
    if visit.fresh and visit.code_status == "pending":
        enqueue_referral_code(_settings(), shop_id, visit.visit_id)
    return _storefront(visit.token)


@bp.get("/referral", **NO_REDIRECT)
def share_panel() -> Response:
    """What the widget's referral panel shows: the member's own link, and a referred friend's code."""
    caller = _verified(frozenset({"token"}))
    if caller is None:
        return json_error(401, "invalid_signature", "the App Proxy signature is missing or wrong")
    token = request.args.get("token", "")[:MAX_TOKEN]
    with transaction(_settings().database_url) as session:
        shop = _active_shop(session, caller.shop_domain)
        if shop is None:
            return json_error(404, "unknown_shop", f"{caller.shop_domain} does not run this programme")
        return jsonify(_panel(session, shop, caller.customer_id, token))


def _panel(session, shop: Shop, customer_id: int | None, token: str) -> dict[str, Any]:
    config = referrals.current(session, shop.id)
    answer: dict[str, Any] = {"enabled": config.enabled, "link": None, "friend": None}
    if not config.enabled:
        return answer
    answer["advocate_points"] = config.advocate_points
    granted = reward_grants.find(catalogue(shop.settings), config.advocate_reward)
    answer["advocate_reward"] = granted.to_json() if granted is not None else None  # described as the rewards list
    answer["friend_reward"] = rules.friend_reward_title(config)
    answer["friend_reward_offer"] = _offer(config.friend_reward().to_json())
    member = shops.member(session, shop, customer_id) if customer_id else None
    if member is not None:
        referrals.settings_row(session, shop.id)
        code = referrals.link_code(session, shop.id, member.id)
        answer["link"] = {"code": code, "path": f"/apps/loyalty/r/{code}"}
    visit = referrals.find_visit(session, shop.id, token) if token else None
    if visit is not None:
        answer["friend"] = {
            "code_status": visit.code_status,
            "code": visit.friend_code if visit.code_status == "issued" else None,
            "reward": visit.reward_title,
            "offer": _offer(visit.reward),
            "cart_attribute": {"name": rules.CART_ATTRIBUTE, "value": visit.token},
        }
    return answer


def _offer(reward: dict[str, Any] | None) -> dict[str, Any] | None:
    """The reward's kind and value, for the widget to word in the shopper's language and currency."""
    if not reward:
        return None
    return {"kind": reward["kind"], "amount": reward.get("amount"), "percent": reward.get("percent")}


def _active_shop(session, domain: str) -> Shop | None:
    try:
        shop = shops.get(session, domain)
    except shops.ShopNotFound:
        return None
    return shop if shop is not None and shop.active else None
