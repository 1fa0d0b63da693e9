"""Merchant install through OAuth, expiring tokens and their refresh, and webhook subscriptions."""

from __future__ import annotations

import dataclasses
import json
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import responses
from sqlalchemy import select

from plugin import crypto, platforms
from plugin.config import DEFAULT_API_VERSION, DEFAULT_SCOPES
from plugin.db import transaction
from plugin.models import Member, Shop, utcnow
from plugin.platforms.shopify.admin import AdminAPIError
from plugin.platforms.shopify.oauth import query_signature
from plugin.services import shop_locale, shops, subscriptions
from tests import builders
from tests.conftest import SECRET, SHOP, deliver

TOKEN_URL = f"https://{SHOP}/admin/oauth/access_token"
GRAPHQL = f"https://{SHOP}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
GRANT = {
    "access_token": "shpat_fresh",
    "scope": DEFAULT_SCOPES,
    "expires_in": 3600,
    "refresh_token": "shprt_first",
    "refresh_token_expires_in": 7776000,
}


@pytest.fixture(autouse=True)
def locale_read_elsewhere(monkeypatch):
    """These tests count the install's calls to the shop; reading its locale after install is tested in
    tests/test_shop_locale.py, and that it is queued in tests/test_jobs.py."""
    monkeypatch.setattr(shop_locale, "fetch", lambda *args, **kwargs: None)


@pytest.fixture
def browser(app):
    return app.test_client()  # keeps the signed session cookie between /auth and /auth/callback


def start_install(browser, shop: str = SHOP) -> str:
    response = browser.get(f"/auth?shop={shop}", base_url="https://app.test")
    assert response.status_code == 302, response.get_json()
    location = urlparse(response.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", shop, "/admin/oauth/authorize")
    query = parse_qs(location.query)
    assert query["client_id"] == ["test-api-key"]
    assert query["scope"] == [DEFAULT_SCOPES]
    assert query["redirect_uri"] == ["https://app.test/auth/callback"]
    return query["state"][0]


def callback(browser, state: str, *, shop: str = SHOP, code: str = "code-1", secret: str = SECRET, **override):
    params = {"code": code, "shop": shop, "state": state, "timestamp": str(int(time.time())), "host": "YWRtaW4="}
    params |= override
    params["hmac"] = query_signature(params.items(), secret)
    return browser.get(f"/auth/callback?{urlencode(params)}", base_url="https://app.test")


def stored_shop(settings) -> Shop | None:
    with transaction(settings.database_url) as session:
        return session.execute(select(Shop).where(Shop.domain == SHOP)).scalar_one_or_none()


@pytest.mark.parametrize(
    "domain",
    [
        "loyal-shop.myshopify.com.attacker.net",
        "attacker.net",
        "https://loyal-shop.myshopify.com",
        "loyal-shop.myshopify.com/../x",
        "-shop.myshopify.com",
        "LOYAL-SHOP.myshopify.com",
        "",
    ],
)
def test_hostile_shop_domains_are_refused(browser, domain):
    response = browser.get(f"/auth?{urlencode({'shop': domain})}", base_url="https://app.test")
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_shop")


def test_an_install_request_with_a_forged_hmac_is_refused(browser):
    response = browser.get(f"/auth?shop={SHOP}&timestamp=1&hmac={'0' * 64}", base_url="https://app.test")
    assert response.status_code == 401


@responses.activate
def test_install_stores_an_encrypted_expiring_token_and_its_refresh_token(browser, settings):
    responses.post(TOKEN_URL, json=GRANT)
    response = callback(browser, start_install(browser))
    assert response.status_code == 302
    assert response.headers["Location"] == f"https://{SHOP}/admin/apps/test-api-key"
    assert json.loads(responses.calls[0].request.body) == {
        "client_id": "test-api-key",
        "client_secret": SECRET,
        "code": "code-1",
        "expiring": 1,
    }
    shop = stored_shop(settings)
    assert shop.active and shop.scopes == GRANT["scope"]
    assert b"shpat_fresh" not in shop.access_token and b"shprt_first" not in shop.refresh_token
    assert crypto.decrypt(shop.access_token, settings.encryption_keys) == "shpat_fresh"
    assert crypto.decrypt(shop.refresh_token, settings.encryption_keys) == "shprt_first"
    assert timedelta(minutes=59) < shop.token_expires_at - utcnow() <= timedelta(hours=1)


@responses.activate
def test_a_callback_with_a_bad_hmac_installs_nothing(browser, settings):
    response = callback(browser, start_install(browser), secret="forged")
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "invalid_hmac")
    assert stored_shop(settings) is None and len(responses.calls) == 0


@responses.activate
def test_a_callback_with_another_state_or_shop_installs_nothing(browser, app, settings):
    state = start_install(browser)
    assert callback(browser, "someone-elses-state").status_code == 403
    state = start_install(browser)
    other = callback(browser, state, shop="other-shop.myshopify.com")
    assert (other.status_code, other.get_json()["error"]["code"]) == (403, "invalid_state")
    fresh_browser = app.test_client()  # never started an install: no state cookie at all
    assert callback(fresh_browser, state).status_code == 403
    assert stored_shop(settings) is None and len(responses.calls) == 0


@responses.activate
def test_a_replayed_callback_or_code_is_refused(browser, settings):
    responses.post(TOKEN_URL, json=GRANT)
    state = start_install(browser)
    assert callback(browser, state).status_code == 302
    replay = callback(browser, state)
    assert (replay.status_code, replay.get_json()["error"]["code"]) == (403, "invalid_state")  # state is single use
    with browser.session_transaction(base_url="https://app.test") as cookie:  # even with the cookie put back
        cookie["oauth"] = {"state": state, "shop": SHOP}
    again = callback(browser, state)
    assert (again.status_code, again.get_json()["error"]["message"]) == (
        403,
        "this install request was already completed",
    )
    assert len(responses.calls) == 1  # the code was never sent to the shop a second time
    responses.replace(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_request"})
    reused = callback(browser, start_install(browser))  # a new state, but the shop refuses the used code
    assert (reused.status_code, reused.get_json()["error"]["code"]) == (400, "code_rejected")


@responses.activate
def test_a_stale_callback_is_refused(browser):
    response = callback(browser, start_install(browser), timestamp=str(int(time.time()) - 3600))
    assert (response.status_code, response.get_json()["error"]["code"]) == (400, "stale_request")


@responses.activate
def test_uninstall_then_reinstall_through_oauth_keeps_the_history(browser, client, settings):
    responses.post(TOKEN_URL, json=GRANT)
    callback(browser, start_install(browser))
    responses.post(GRAPHQL, json={"data": {"metafieldsSet": {"metafields": [], "userErrors": []}}})
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "25.00")]))
    responses.replace(responses.POST, GRAPHQL, status=401, json={"errors": "[API] Invalid API key or access token"})
    deliver(client, "app/uninstalled", {"id": 1, "myshopify_domain": SHOP})
    assert stored_shop(settings).access_token is None
    responses.replace(responses.POST, TOKEN_URL, json={**GRANT, "access_token": "shpat_second"})
    assert callback(browser, start_install(browser), code="code-2").status_code == 302
    shop = stored_shop(settings)
    assert shop.active and crypto.decrypt(shop.access_token, settings.encryption_keys) == "shpat_second"
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 25


def install_expiring(settings, expires_in: timedelta) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.install(session, SHOP, "shpat_old", settings.encryption_keys)
        shop.refresh_token = crypto.encrypt("shprt_old", settings.encryption_keys)
        shop.token_expires_at = utcnow() + expires_in


@responses.activate
def test_a_token_about_to_expire_is_refreshed_before_use(settings):
    install_expiring(settings, timedelta(minutes=1))
    responses.post(TOKEN_URL, json={**GRANT, "access_token": "shpat_new", "refresh_token": "shprt_new"})
    with transaction(settings.database_url) as session:
        client = platforms.admin_client(settings, shops.get(session, SHOP))
    assert client.access_token == "shpat_new"
    assert json.loads(responses.calls[0].request.body) == {
        "client_id": "test-api-key",
        "client_secret": SECRET,
        "grant_type": "refresh_token",
        "refresh_token": "shprt_old",
    }
    shop = stored_shop(settings)
    assert crypto.decrypt(shop.refresh_token, settings.encryption_keys) == "shprt_new"  # it rotates: keep the new one


@responses.activate
def test_a_401_refreshes_once_then_succeeds_or_gives_up(settings):
    install_expiring(settings, timedelta(hours=1))
    with transaction(settings.database_url) as session:
        client = platforms.admin_client(settings, shops.get(session, SHOP))
    client.sleep = lambda _s: None
    responses.post(GRAPHQL, status=401, json={"errors": "Invalid API key or access token"})
    responses.post(GRAPHQL, json={"data": {"shop": {"name": "Loyal"}}})
    responses.post(TOKEN_URL, json={**GRANT, "access_token": "shpat_after_401"})
    assert client.graphql("query { shop { name } }", {}) == {"shop": {"name": "Loyal"}}
    graphql_calls = [c for c in responses.calls if c.request.url == GRAPHQL]
    assert [c.request.headers["X-Shopify-Access-Token"] for c in graphql_calls] == ["shpat_old", "shpat_after_401"]

    responses.replace(responses.POST, GRAPHQL, status=401, json={"errors": "still no"})
    with pytest.raises(AdminAPIError, match="HTTP 401"):
        client.graphql("query { shop { name } }", {})  # the one refresh is spent: no loop


@responses.activate
def test_missing_webhook_subscriptions_are_recreated(settings):
    settings = dataclasses.replace(settings, shopify_app_url="https://app.test")
    install_expiring(settings, timedelta(hours=1))
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, SHOP).id
    uri = "https://app.test/webhooks/shopify"
    present = [
        {"id": "gid://1", "topic": "ORDERS_PAID", "uri": uri},
        {"id": "gid://2", "topic": "REFUNDS_CREATE", "uri": uri},
        {"id": "gid://3", "topic": "ORDERS_CREATE", "uri": "https://someone-else.test/hook"},
    ]
    responses.post(GRAPHQL, json={"data": {"webhookSubscriptions": {"nodes": present}}})
    responses.post(
        GRAPHQL, json={"data": {"webhookSubscriptionCreate": {"webhookSubscription": {"id": "x"}, "userErrors": []}}}
    )
    created = subscriptions.ensure(settings, shop_id, platforms.admin_client)
    assert created == [
        "ORDERS_CREATE",
        "ORDERS_CANCELLED",
        "CUSTOMERS_CREATE",
        "CUSTOMERS_UPDATE",
        "PRODUCTS_CREATE",
        "PRODUCTS_UPDATE",
        "PRODUCTS_DELETE",
        "APP_UNINSTALLED",
    ]
    sent = [json.loads(c.request.body)["variables"] for c in responses.calls[1:]]
    assert sent[0] == {"topic": "ORDERS_CREATE", "subscription": {"uri": uri}}
    assert stored_shop(settings).webhooks_checked_at is not None
    assert subscriptions.due(settings) == []  # checked: not again for a few hours
