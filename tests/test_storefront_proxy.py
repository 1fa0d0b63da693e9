"""Signed App Proxy endpoints: who may see and spend which points."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from plugin import create_app, ledger
from plugin.db import transaction
from plugin.platforms.shopify.adapter import ProxyAuthError, proxy_signature, verify_proxy
from plugin.programme.events import Customer
from plugin.services import shops
from plugin.services.accrual import enrol
from storefront_widget.proxy import widget_payload
from tests import builders
from tests.conftest import SECRET, SHOP, deliver


def signed(
    customer_id: int | None,
    *,
    shop: str = SHOP,
    timestamp: int | None = None,
    secret: str = SECRET,
    extra: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    params = [
        *(extra or []),
        ("shop", shop),
        ("logged_in_customer_id", "" if customer_id is None else str(customer_id)),
        ("path_prefix", "/apps/loyalty"),
        ("timestamp", str(int(time.time()) if timestamp is None else timestamp)),
    ]
    return [*params, ("signature", proxy_signature(params, secret))]


def get(client, path: str, params: list[tuple[str, str]]):
    return client.get(f"/proxy/{path}?{urlencode(params)}")


def post(client, path: str, params: list[tuple[str, str]], body: dict):
    return client.post(f"/proxy/{path}?{urlencode(params)}", json=body)


def give(settings, customer_id: int, points: int) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member_id = enrol(session, shop.id, Customer(customer_id))
        if points:
            entry = ledger.Entry(member_id, "bonus", points, "support", "s", f"s:{customer_id}", "m")
            ledger.post(session, shop.id, entry)


@pytest.fixture
def api_client(fake_shop_api, shop_with_token):
    """A test client whose redemptions create codes in the in-process fake shop."""
    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings, state


def test_signature_matches_shopifys_published_example():
    params = [
        ("extra", "1"),
        ("extra", "2"),
        ("shop", "shop-name.myshopify.com"),
        ("logged_in_customer_id", "1"),
        ("path_prefix", "/apps/awesome_reviews"),
        ("timestamp", "1317327555"),
    ]
    assert proxy_signature(params, "hush") == "4c68c8624d737112c91818c11017d24d334b524cb5c2b8ba08daa056f7395ddb"


def test_reordered_parameters_still_verify():
    params = signed(7001)
    assert verify_proxy(list(reversed(params)), [SECRET], time.time()).customer_id == 7001


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda p: [(k, "7002" if k == "logged_in_customer_id" else v) for k, v in p], "does not match"),
        (lambda p: [(k, v) for k, v in p if k != "signature"], "exactly one 'signature'"),
        (lambda p: [*p, ("shop", "other.myshopify.com")], "'shop' is repeated"),
        (lambda p: [(k, "0" * 64 if k == "signature" else v) for k, v in p], "does not match"),
    ],
    ids=["another-customer", "missing", "repeated-shop", "forged"],
)
def test_tampered_requests_are_refused(tamper, reason):
    with pytest.raises(ProxyAuthError, match=reason):
        verify_proxy(tamper(signed(7001)), [SECRET], time.time())


@pytest.mark.parametrize("customer", ["²", "٣٠٣٠", "12a", "-5"])
def test_a_customer_id_that_is_not_plain_ascii_digits_is_refused(customer):
    params = [("shop", SHOP), ("logged_in_customer_id", customer), ("timestamp", str(int(time.time())))]
    params.append(("signature", proxy_signature(params, SECRET)))
    with pytest.raises(ProxyAuthError, match="not a customer id"):
        verify_proxy(params, [SECRET], time.time())


def test_stale_request_is_refused():
    with pytest.raises(ProxyAuthError, match="stale"):
        verify_proxy(signed(7001, timestamp=int(time.time()) - 600), [SECRET], time.time())


def test_widget_refuses_a_bad_signature_with_a_json_401(client, shop):
    params = [(k, "7002" if k == "logged_in_customer_id" else v) for k, v in signed(7001)]
    response = get(client, "widget", params)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"


def test_visitor_sees_the_programme_and_a_sign_in_prompt(client, shop):
    response = get(client, "widget", signed(None))
    assert response.status_code == 200
    data = response.get_json()
    assert data["customer"] is None and data["history"] == [] and data["redemptions"] == []
    assert data["program"]["earn"] == {"points": 1, "per_amount": "1.00"}
    assert data["sign_in_url"] == "/account/login"
    assert [(r["id"], r["points"], r["affordable"]) for r in data["rewards"]] == [("5-off", 500, False)]


def test_member_sees_only_their_own_points_and_history(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "620.00")]))
    deliver(client, "orders/paid", builders.order(2, 7002, [builders.line(20, "30.00")]))
    mine = get(client, "widget", signed(7001)).get_json()
    assert {k: mine["customer"][k] for k in ("id", "balance", "pending", "available")} == {
        "id": 7001,
        "balance": 620,
        "pending": 0,
        "available": 620,
    }
    assert [(h["kind"], h["points"], h["label"]) for h in mine["history"]] == [("earn", 620, "Order #1")]
    assert mine["rewards"][0]["affordable"] is True
    theirs = get(client, "widget", signed(7002)).get_json()
    assert theirs["customer"]["balance"] == 30 and theirs["rewards"][0]["affordable"] is False


def test_pending_points_show_when_they_become_available(client, settings, shop):
    with transaction(settings.database_url) as session:
        # The longest wait allowed: conftest's orders are paid on 2026-11-20 (X-Shopify-Triggered-At), and the widget
        # reads the real clock, so a shorter wait would have matured by the day the suite runs.
        shops.update_settings(session, shops.get(session, SHOP), {"pending_days": 365})
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "80.00")]))
    customer = get(client, "widget", signed(7001)).get_json()["customer"]
    assert (customer["balance"], customer["pending"], customer["available"]) == (80, 80, 0)
    assert [p["points"] for p in customer["pending_until"]] == [80]


def test_redeem_through_the_proxy_is_idempotent_and_shows_the_code(api_client):
    client, settings, state = api_client
    give(settings, 7001, 1000)
    first = post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    again = post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    assert (first.status_code, again.status_code) == (201, 201)
    made = first.get_json()["redemption"]
    assert made["id"] == again.get_json()["redemption"]["id"]
    assert made["status"] == "issued" and made["code"] in state.codes  # jobs run inline here
    assert list(state.creates.values()) == [1]
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 500
    assert [(r["id"], r["code"]) for r in widget["redemptions"]] == [(made["id"], made["code"])]
    assert state.metafields == {"gid://shopify/Customer/7001 loyalty.points": "500"}


def test_redeem_needs_a_signed_in_shopper_with_enough_points(client, settings, shop):
    give(settings, 7001, 100)
    anonymous = post(client, "redeem", signed(None), {"reward_id": "5-off"})
    assert (anonymous.status_code, anonymous.get_json()["error"]["code"]) == (401, "not_signed_in")
    short = post(client, "redeem", signed(7001), {"reward_id": "5-off"})
    assert (short.status_code, short.get_json()["error"]["code"]) == (409, "not_enough_points")
    unknown = post(client, "redeem", signed(7001), {"reward_id": "yacht"})
    assert (unknown.status_code, unknown.get_json()["error"]["code"]) == (404, "unknown_reward")
    invalid = post(client, "redeem", signed(7001), {"reward": "5-off"})
    assert (invalid.status_code, invalid.get_json()["error"]["code"]) == (400, "invalid_request")


def test_a_shopper_cannot_read_another_shoppers_redemption(api_client):
    client, settings, _ = api_client
    give(settings, 7001, 500)
    give(settings, 7002, 0)
    made = post(client, "redeem", signed(7001), {"reward_id": "5-off"}).get_json()["redemption"]
    mine = get(client, f"redemptions/{made['id']}", signed(7001))
    assert mine.status_code == 200 and mine.get_json()["redemption"]["code"] == made["code"]
    stranger = get(client, f"redemptions/{made['id']}", signed(7002))
    assert (stranger.status_code, stranger.get_json()["error"]["code"]) == (404, "not_found")


def test_unknown_shop_is_refused(client, shop):
    response = get(client, "widget", signed(7001, shop="nowhere.myshopify.com"))
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "unknown_shop")


def test_the_one_statement_read_answers_exactly_what_the_orm_read_does(api_client):
    # On PostgreSQL /proxy/widget reads everything in one statement; widget_payload reads through the ORM.
    client, settings, state = api_client
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"pending_days": 365})  # still pending today
    give(settings, 7001, 1000)
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "80.00"), builders.line(11, "20.50")]))
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    deliver(client, "orders/paid", builders.order(2, 7002, [builders.line(20, "30.00")]))  # someone else's
    for customer_id in (7001, 7002, 7003, None):  # a member with everything, another, a stranger, a visitor
        answered = get(client, "widget", signed(customer_id)).get_json()
        with transaction(settings.database_url) as session:
            expected = widget_payload(session, shops.get(session, SHOP), customer_id)
        assert answered == json.loads(json.dumps(expected))
    rich = get(client, "widget", signed(7001)).get_json()
    assert [h["kind"] for h in rich["history"]] == ["redeem", "reverse", "earn", "bonus"]
    assert rich["customer"]["pending_until"] and rich["redemptions"][0]["code"] in state.codes


def resplit_of_a_visitors_query(victim: int) -> list[tuple[str, str]]:
    """A visitor's genuinely signed query, re-split so the same signature names customer `victim`."""
    visitor = signed(None, extra=[("a", f"Xlogged_in_customer_id={victim}m=Y")])
    signature = dict(visitor)["signature"]
    others = [(k, v) for k, v in visitor if k not in ("a", "logged_in_customer_id", "signature")]
    forged = [("a", "X"), ("logged_in_customer_id", str(victim)), ("m", "Ylogged_in_customer_id="), *others]
    assert proxy_signature(forged, SECRET) == signature  # the re-split really fits the visitor's signature
    return [*forged, ("signature", signature)]


def test_a_resplit_signed_query_cannot_act_as_another_shopper(client, settings, shop):
    give(settings, 1003, 500)
    with pytest.raises(ProxyAuthError):
        verify_proxy(resplit_of_a_visitors_query(1003), [SECRET], time.time())
    response = get(client, "widget", resplit_of_a_visitors_query(1003))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_signature"
    assert b"500" not in response.data


@pytest.mark.parametrize(
    "extra, reason",
    [
        ([("extra", "1")], "unexpected parameter 'extra'"),
        ([("path_prefix", "/apps/loyalty")], "'path_prefix' is repeated"),
        ([("logged_in_customer_id", "1003")], "'logged_in_customer_id' is repeated"),
        ([("note", "a=b")], "contains '='"),
        ([("x=y", "")], "contains '='"),
    ],
    ids=["unknown", "repeated-prefix", "repeated-customer", "equals-in-value", "equals-in-name"],
)
def test_only_shopifys_parameters_once_each_and_without_equals_are_accepted(extra, reason):
    with pytest.raises(ProxyAuthError, match=reason):
        verify_proxy(signed(7001, extra=extra), [SECRET], time.time())


def test_an_equals_sign_inside_a_signed_shopify_value_is_refused():
    params = [
        ("shop", SHOP),
        ("logged_in_customer_id", ""),
        ("path_prefix", "/a=b"),
        ("timestamp", str(int(time.time()))),
    ]
    params.append(("signature", proxy_signature(params, SECRET)))
    with pytest.raises(ProxyAuthError, match="contains '='"):
        verify_proxy(params, [SECRET], time.time())


@pytest.mark.parametrize("path", ["/proxy//widget", "//proxy/widget", "/proxy/widget/", "/proxy//redemptions/1"])
def test_a_signed_request_is_never_redirected(client, shop, path):
    query = urlencode(signed(7001))
    response = client.get(f"{path}?{query}")
    assert response.status_code == 404
    assert "Location" not in response.headers
    assert dict(signed(7001))["signature"].encode() not in response.data


def test_gunicorn_run_as_the_procfile_says_logs_no_signature(settings, shop, tmp_path):
    """The Procfile's web command, started for real: its access log shows the path, never the signed query."""
    import requests

    from tests.processes import start_procfile_web, stop

    log_path = tmp_path / "gunicorn.log"
    server, url = start_procfile_web(settings, log_path)
    params = signed(7001)
    try:
        answer = requests.get(f"{url}/proxy/widget?{urlencode(params)}", timeout=10)
        assert answer.status_code == 200
        referred = requests.get(
            f"{url}/proxy//widget?{urlencode(params)}",
            headers={"Referer": f"https://{SHOP}/apps/loyalty/widget?{urlencode(params)}"},
            timeout=10,
            allow_redirects=False,
        )
        assert referred.status_code == 404
        for _ in range(200):  # gunicorn writes an access line after answering: wait for it, polled, not timed
            if '" 404 ' in log_path.read_text():
                break
            time.sleep(0.05)
    finally:
        stop(server)
    written = log_path.read_text()
    assert '"GET /proxy/widget HTTP/1.1" 200' in written  # the request was logged...
    assert dict(params)["signature"] not in written  # ...without its signature
    assert "signature=[redacted]" in written  # the referrer's copy was cut out
