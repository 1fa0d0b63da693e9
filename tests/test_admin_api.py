"""The embedded admin API: session tokens, settings with per-field errors, the summary, the OpenAPI document."""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest

from plugin import ledger
from plugin.db import transaction
from plugin.programme.events import Customer
from plugin.services import shops
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SECRET, SHOP, deliver


def session_token(
    *,
    shop: str = SHOP,
    iss_shop: str | None = None,
    aud: str = "test-api-key",
    secret: str = SECRET,
    expires_in: int = 60,
    not_before: int = -5,
) -> str:
    now = int(time.time())
    claims = {
        "iss": f"https://{iss_shop or shop}/admin",
        "dest": f"https://{shop}",
        "aud": aud,
        "sub": "42",
        "exp": now + expires_in,
        "nbf": now + not_before,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def call(client, method: str, path: str, token: str | None, json=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.open(f"/api/admin/{path}", method=method, headers=headers, json=json)


def test_a_valid_session_token_reads_the_settings(client, shop):
    response = call(client, "GET", "settings", session_token())
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == 1 and body["settings"]["earn"] == {"points": 1, "per_amount": "1.00"}
    assert body["settings"]["rewards"][0]["id"] == "5-off"


@pytest.mark.parametrize(
    "claims, reason",
    [
        (None, "no session token"),
        ({"expires_in": -60}, "expired"),
        ({"aud": "another-app"}, "audience"),
        ({"iss_shop": "other-shop.myshopify.com"}, "different shops"),
        ({"secret": "shpss_forged-secret-0123456789abcdef-00000"}, "signature"),
        ({"not_before": 120}, "not yet valid"),
        ({"shop": "stranger.myshopify.com"}, "has not installed the app"),
    ],
    ids=["missing", "expired", "wrong-audience", "iss-and-dest-differ", "forged", "not-yet-valid", "not-installed"],
)
def test_bad_session_tokens_are_refused_by_the_admin_and_its_support_desk(client, shop, claims, reason):
    # Minted here, not at collection: a token made minutes before its test runs may have expired meanwhile.
    token = None if claims is None else session_token(**claims)
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00")]))
    support = {"points": 5, "reason_code": "goodwill", "note": "x", "name": "n"}
    for method, path, body in [
        ("GET", "summary", None),
        ("PUT", "settings", {}),
        ("GET", "support/members?customer_id=7001", None),
        ("POST", "support/members/7001/adjustments", support),
        ("GET", "support/keys", None),
        ("POST", "support/keys", support),
        ("GET", "support/parked", None),
    ]:
        response = call(client, method, path, token, json=body)
        assert response.status_code == 401, path
        error = response.get_json()["error"]
        assert error["code"] == "invalid_session_token" and reason.lower() in error["message"].lower(), path
    member = call(client, "GET", "support/members?customer_id=7001", session_token()).get_json()
    assert member["balance"] == 60 and call(client, "GET", "settings", session_token()).get_json()["version"] == 1
    assert call(client, "GET", "support/keys", session_token()).get_json()["keys"] == []


def test_invalid_settings_come_back_with_an_error_per_field(client, shop):
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    bad = {
        **current,
        "pending_days": 999,
        "earn": {"points": "many", "per_amount": "1.00"},
        "rewards": [{"id": "5-off", "kind": "fixed_amount", "points": 500}],
    }
    response = call(client, "PUT", "settings", session_token(), json=bad)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_settings"
    assert "pending_days" in error["fields"] and "points" in error["fields"]["earn"]
    duplicate = {**current, "rewards": [current["rewards"][0], current["rewards"][0]]}
    response = call(client, "PUT", "settings", session_token(), json=duplicate)
    assert response.get_json()["error"]["fields"] == {"rewards": ["reward ids must be unique"]}
    assert call(client, "GET", "settings", session_token()).get_json()["version"] == 1  # nothing saved


def test_valid_settings_are_saved_as_a_new_version(client, settings, shop):
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    changed = {
        **current,
        "pending_days": 14,
        "earn": {"points": 2, "per_amount": "1.00"},
        "rewards": [*current["rewards"], {"id": "ship", "kind": "free_shipping", "points": 300}],
    }
    response = call(client, "PUT", "settings", session_token(), json=changed)
    assert response.status_code == 200 and response.get_json()["version"] == 2
    with transaction(settings.database_url) as session:
        stored = shops.get(session, SHOP).settings
    assert stored["pending_days"] == 14 and stored["earn"]["points"] == 2
    assert [r["id"] for r in stored["rewards"]] == ["5-off", "ship"]


def test_summary_counts_members_and_points(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "300.00", 2)]))
    deliver(client, "refunds/create", builders.refund(1, 1, {10: 1}))
    deliver(client, "orders/paid", builders.order(2, 7002, [builders.line(20, "50.00")]))
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member_id = enrol(session, shop_row.id, Customer(7001))
        ledger.post(session, shop_row.id, ledger.Entry(member_id, "redeem", -100, "redemption", "1", "r:1", "m"))
    summary = call(client, "GET", "summary", session_token()).get_json()
    assert summary == {
        "shop": SHOP,
        "currency": "USD",
        "members": 2,
        "points_issued": 650,
        "points_reversed": 300,
        "points_redeemed": 100,
        "points_outstanding": 250,
    }


def test_the_openapi_document_is_generated_from_the_schemas(client):
    spec = client.get("/api/admin/openapi.json").get_json()
    assert spec["info"]["title"] == "Loyalty admin API"
    assert {"/api/admin/settings", "/api/admin/summary"} <= set(spec["paths"])
    assert {"put", "get"} <= set(spec["paths"]["/api/admin/settings"])
    schemas = spec["components"]["schemas"]
    assert "pending_days" in schemas["ProgramSettings"]["properties"]
    assert "points_outstanding" in schemas["Summary"]["properties"]
    assert spec["components"]["securitySchemes"]["sessionToken"]["scheme"] == "bearer"


def test_the_page_may_only_be_framed_by_its_shop(client, shop):
    response = client.get(f"/admin?shop={SHOP}")
    policy = response.headers["Content-Security-Policy"]
    assert f"frame-ancestors https://{SHOP} https://admin.shopify.com;" in policy
    assert "script-src 'self' https://cdn.shopify.com" in policy  # App Bridge, and our own script only
    refused = client.get("/admin?shop=evil.example.com")
    assert refused.status_code == 400 and b"Open this app from your Shopify admin" in refused.data


def test_the_token_is_checked_before_the_body(client, shop):
    invalid = {"pending_days": 999}
    assert call(client, "PUT", "settings", None, json=invalid).status_code == 401
    assert (
        call(
            client, "PUT", "settings", session_token(secret="shpss_forged-secret-0123456789abcdef-00000"), json=invalid
        ).status_code
        == 401
    )


def test_saving_part_of_the_settings_keeps_the_rest_as_the_cli_does(app, client, settings, shop):
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    rewards = [*current["rewards"], {"id": "ship", "kind": "free_shipping", "points": 300}]
    assert call(client, "PUT", "settings", session_token(), json={"rewards": rewards}).status_code == 200
    saved = call(client, "PUT", "settings", session_token(), json={"pending_days": 14}).get_json()
    assert saved["version"] == 3 and saved["settings"]["pending_days"] == 14
    assert [r["id"] for r in saved["settings"]["rewards"]] == ["5-off", "ship"]  # left out, so kept
    result = app.test_cli_runner().invoke(args=["loyalty", "settings", SHOP, "--set", '{"include_taxes": true}'])
    by_cli = json.loads(result.output)
    assert by_cli["version"] == 4 and by_cli["settings"] == {**saved["settings"], "include_taxes": True}
