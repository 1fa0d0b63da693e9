"""Webhook intake: forged, missing, oversized, malformed, duplicate and unknown-shop deliveries."""

from __future__ import annotations

import dataclasses
import io
import json

from sqlalchemy import func, select

from plugin import create_app
from plugin.config import DEFAULT_API_VERSION
from plugin.db import transaction
from plugin.models import Delivery, Member, Posting
from tests import builders
from tests.conftest import SECRET, SHOP, deliver, fixture, signed_headers


def _deliveries(settings) -> list[Delivery]:
    with transaction(settings.database_url) as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def _postings(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.execute(select(func.count()).select_from(Posting)).scalar_one()


def test_signed_paid_order_is_stored_processed_and_earns(client, settings, shop):
    response = deliver(client, "orders/paid", builders.order(1001, 7001))
    assert response.status_code == 200
    assert response.get_json()["status"] == "accepted"
    [delivery] = _deliveries(settings)
    assert (delivery.status, delivery.topic, delivery.shop_domain) == ("processed", "orders/paid", SHOP)
    assert delivery.api_version == DEFAULT_API_VERSION
    assert delivery.triggered_at == "2026-11-20T10:00:00.123456789Z"
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 100


def test_forged_signature_is_refused_and_nothing_is_stored(client, settings, shop):
    body = json.dumps(builders.order(1001)).encode()
    headers = signed_headers(body, "orders/paid", secret="not-the-secret")
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert _deliveries(settings) == []


def test_body_changed_after_signing_is_refused(client, settings, shop):
    body = json.dumps(builders.order(1001)).encode()
    headers = signed_headers(body, "orders/paid")
    response = client.post("/webhooks/shopify", data=body.replace(b"100.00", b"900.00"), headers=headers)
    assert response.status_code == 401
    assert _deliveries(settings) == []


def test_missing_signature_is_refused(client, settings, shop):
    body = json.dumps(builders.order(1001)).encode()
    headers = signed_headers(body, "orders/paid")
    del headers["X-Shopify-Hmac-Sha256"]
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["message"]
    assert _deliveries(settings) == []


def test_previous_secret_is_accepted_during_rotation(settings, shop):
    rotated = dataclasses.replace(settings, shopify_api_secret="brand-new-secret", shopify_api_secret_previous=SECRET)
    client = create_app(rotated, TESTING=True).test_client()
    assert deliver(client, "orders/paid", builders.order(1001)).status_code == 200
    retired = dataclasses.replace(settings, shopify_api_secret="brand-new-secret")
    client = create_app(retired, TESTING=True).test_client()
    assert deliver(client, "orders/paid", builders.order(1002)).status_code == 401


def test_oversized_body_is_refused_with_413(client, settings, shop):
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post("/webhooks/shopify", data=body, headers=signed_headers(body, "orders/paid"))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert _deliveries(settings) == []


def test_hostile_shop_domain_is_refused(client, settings, shop):
    for domain in ("loyal-shop.myshopify.com.attacker.net", "attacker.net", "x.myshopify.com/../y", ""):
        body = json.dumps(builders.order(1001)).encode()
        response = client.post("/webhooks/shopify", data=body, headers=signed_headers(body, "orders/paid", domain))
        assert response.status_code == 400, domain
        assert response.get_json()["error"]["code"] == "invalid_shop_domain"
    assert _deliveries(settings) == []


def test_missing_topic_is_refused(client, settings, shop):
    body = json.dumps(builders.order(1001)).encode()
    headers = signed_headers(body, "orders/paid")
    del headers["X-Shopify-Topic"]
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_topic"


def test_malformed_json_is_acknowledged_and_parked_with_its_reason(client, settings, shop):
    response = deliver(client, "orders/paid", b'{"id": 1001, "line_items": [')
    assert response.status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "parked"
    assert delivery.reason.startswith("malformed JSON")
    assert delivery.body == b'{"id": 1001, "line_items": ['  # kept byte for byte for support
    assert _postings(settings) == 0


def test_schema_error_is_parked_with_the_field_named(client, settings, shop):
    payload = builders.order(1001)
    del payload["line_items"]
    assert deliver(client, "orders/paid", payload).status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "parked"
    assert "line_items" in delivery.reason


def test_unknown_shop_is_parked_not_dropped(client, settings):
    response = deliver(client, "orders/paid", builders.order(1001), shop="stranger.myshopify.com")
    assert response.status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "parked"
    assert delivery.reason == "unknown shop stranger.myshopify.com"


def test_repeat_delivery_is_acknowledged_and_processed_once(client, settings, shop):
    payload = builders.order(1001)
    first = deliver(client, "orders/paid", payload, webhook_id="same-delivery")
    second = deliver(client, "orders/paid", payload, webhook_id="same-delivery")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.get_json() == {"status": "duplicate"}
    assert len(_deliveries(settings)) == 1
    assert _postings(settings) == 1


def test_same_order_paid_twice_under_different_delivery_ids_earns_once(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1001))
    deliver(client, "orders/paid", builders.order(1001))
    assert len(_deliveries(settings)) == 2
    assert _postings(settings) == 1


def test_unused_topic_is_stored_and_marked_ignored(client, settings, shop):
    assert deliver(client, "orders/updated", builders.order(1001)).status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "ignored"


def test_captured_canned_order_earns_nothing(client, settings, shop):
    captured = fixture("orders.paid.json")
    assert deliver(client, captured["topic"], captured["body"]).status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "processed"
    assert _postings(settings) == 0  # a cancelled, voided test order


def test_database_down_answers_503_so_the_shop_retries(settings, shop):
    unreachable = dataclasses.replace(settings, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = create_app(unreachable, TESTING=True).test_client()
    response = deliver(client, "orders/paid", builders.order(1001))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["error"]["code"] == "inbox_unavailable"


def test_oversized_chunked_body_without_a_length_is_refused_with_413(client, settings, shop):
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    headers = signed_headers(body, "orders/paid")
    response = client.post(
        "/webhooks/shopify",
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert _deliveries(settings) == []


def test_body_of_exactly_the_limit_is_accepted(client, settings, shop):
    padding = 1024 * 1024 - len(b'{"pad": ""}')
    body = b'{"pad": "' + b"x" * padding + b'"}'
    assert len(body) == 1024 * 1024
    response = client.post("/webhooks/shopify", data=body, headers=signed_headers(body, "orders/paid"))
    assert response.status_code == 200
    assert _deliveries(settings)[0].status == "parked"  # stored; then parked, as it is no order


def test_deeply_nested_json_is_parked_with_a_clear_reason(client, settings, shop):
    assert deliver(client, "orders/paid", b"[" * 100_000 + b"]" * 100_000).status_code == 200
    [delivery] = _deliveries(settings)
    assert (delivery.status, delivery.reason) == ("parked", "malformed JSON: nested too deeply")


def test_a_shop_header_longer_than_the_column_is_stored_parked_not_lost(client, settings, shop):
    long_shop = "a" * 290 + ".myshopify.com"
    body = json.dumps(builders.order(1001, 7001)).encode()
    response = client.post("/webhooks/shopify", data=body, headers=signed_headers(body, "orders/paid", long_shop))
    assert response.status_code == 200
    [delivery] = _deliveries(settings)
    assert (delivery.status, delivery.shop_domain) == ("parked", long_shop[:255])
    assert "X-Shopify-Shop-Domain is over 255 characters" in delivery.reason
    assert _postings(settings) == 0


def test_over_long_api_version_and_triggered_at_are_cut_to_the_columns_and_processed(client, settings, shop):
    body = json.dumps(builders.order(1001, 7001)).encode()
    headers = signed_headers(body, "orders/paid")
    headers["X-Shopify-API-Version"] = "2025-10" + "x" * 40
    headers["X-Shopify-Triggered-At"] = "2026-11-20T10:00:00.123456789Z" + "9" * 80
    response = client.post("/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 200
    [delivery] = _deliveries(settings)
    assert delivery.status == "processed"
    assert (len(delivery.api_version), len(delivery.triggered_at)) == (16, 64)
