"""A committed, correctly signed webhook delivery is acknowledged before Flask, exactly as the view answers it;
every other request is answered by the view, as before."""

from __future__ import annotations

import io
import json
import logging

import pytest
from flask import Flask, Response, request_started
from sqlalchemy.exc import OperationalError
from werkzeug.test import Client

from plugin import create_app, inbox, platforms
from tests import builders
from tests.conftest import deliver, flask_calls_behind, signed_headers
from tests.test_intake import _deliveries
from webhooks import intake_acks

PATH = intake_acks.PATH


def acks_of(app: Flask) -> intake_acks.IntakeAcks:
    """The IntakeAcks layer in the app's chain of WSGI middleware."""
    layer = app.wsgi_app
    while not isinstance(layer, intake_acks.IntakeAcks):
        layer = layer.wsgi_app  # fails with AttributeError when Flask's own is reached without one
    return layer


@pytest.fixture
def flask_calls(client, monkeypatch):
    """The paths of the requests that reached Flask's own wsgi_app."""
    return flask_calls_behind(acks_of(client.application), monkeypatch)


@pytest.fixture
def through_flask(client):
    """A client for the same app whose requests skip the layer: what the view answers."""
    return Client(acks_of(client.application).wsgi_app, Response)


def post(client, body: bytes, **header_changes):
    headers = signed_headers(body, "orders/paid")
    for name, value in header_changes.items():
        name = name.replace("_", "-")
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    return client.post(PATH, data=body, headers=headers)


def order_body(order_id: int = 1001) -> bytes:
    return json.dumps(builders.order(order_id, 7001)).encode()


def test_a_signed_delivery_is_stored_and_answered_without_flask(client, settings, shop, flask_calls):
    response = deliver(client, "orders/paid", builders.order(1001, 7001))
    [delivery] = _deliveries(settings)
    assert response.status == "200 OK"
    assert response.get_data() == b'{"delivery_id":%d,"status":"accepted"}\n' % delivery.id
    assert flask_calls == []
    assert delivery.status == "processed"  # signalled: the test settings run the drain inline


def test_the_answers_are_the_views_status_headers_and_bytes(client, through_flask, settings, shop, flask_calls):
    body = order_body()
    by_view = post(through_flask, body, X_Shopify_Webhook_Id="first")
    by_layer = post(client, body, X_Shopify_Webhook_Id="second")
    assert flask_calls == []
    first, second = _deliveries(settings)
    assert by_view.get_data() == b'{"delivery_id":%d,"status":"accepted"}\n' % first.id
    assert by_layer.get_data() == b'{"delivery_id":%d,"status":"accepted"}\n' % second.id
    assert len(str(first.id)) == len(str(second.id))  # so the two Content-Lengths are comparable
    assert by_layer.status == by_view.status == "200 OK"
    assert list(by_layer.headers.items()) == list(by_view.headers.items())
    # A repeat: both answer the same bytes, and nothing more is stored.
    again_by_view = post(through_flask, body, X_Shopify_Webhook_Id="first")
    again_by_layer = post(client, body, X_Shopify_Webhook_Id="first")
    assert flask_calls == []
    assert again_by_layer.get_data() == again_by_view.get_data() == b'{"status":"duplicate"}\n'
    assert list(again_by_layer.headers.items()) == list(again_by_view.headers.items())
    assert again_by_layer.status == again_by_view.status == "200 OK"
    assert len(_deliveries(settings)) == 2


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"X_Shopify_Hmac_Sha256": "Zm9yZ2Vk"}, 401, "invalid_signature"),
        ({"X_Shopify_Hmac_Sha256": None}, 401, "invalid_signature"),
        ({"X_Shopify_Shop_Domain": "loyal-shop.myshopify.com.attacker.net"}, 400, "invalid_shop_domain"),
        ({"X_Shopify_Shop_Domain": None}, 400, "invalid_shop_domain"),
        ({"X_Shopify_Topic": None}, 400, "invalid_topic"),
        ({"X_Shopify_Topic": "t" * 65}, 400, "invalid_topic"),
    ],
    ids=["forged", "unsigned", "foreign-domain", "no-domain", "no-topic", "long-topic"],
)
def test_a_refused_delivery_is_refused_by_the_view_and_nothing_is_stored(
    client, settings, shop, flask_calls, changes, status, code
):
    # The shop-domain and topic refusals come after the signature check: the view reads the very body the layer
    # read, or it would refuse the signature instead.
    response = post(client, order_body(), **changes)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == code
    assert flask_calls == [PATH]
    assert _deliveries(settings) == []


def test_an_oversized_body_is_refused_by_the_view_with_413_before_it_is_read(client, settings, shop, flask_calls):
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    response = client.post(PATH, data=body, headers=signed_headers(body, "orders/paid"))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert flask_calls == [PATH]
    assert _deliveries(settings) == []


def test_a_chunked_body_goes_to_the_view(client, settings, shop, flask_calls):
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'  # over the limit, and no length declared
    response = client.post(
        PATH,
        input_stream=io.BytesIO(body),
        headers={**signed_headers(body, "orders/paid"), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert flask_calls == [PATH]
    assert _deliveries(settings) == []


def test_a_body_shorter_than_declared_is_answered_as_the_view_answers_it(
    client, through_flask, settings, shop, monkeypatch
):
    body = order_body()
    short = {"CONTENT_LENGTH": str(len(body) + 10)}  # the client went away before sending it all
    by_view = through_flask.post(PATH, data=body, headers=signed_headers(body, "orders/paid"), environ_overrides=short)
    assert by_view.status_code == 400  # werkzeug's ClientDisconnected
    calls = flask_calls_behind(acks_of(client.application), monkeypatch)
    by_layer = client.post(PATH, data=body, headers=signed_headers(body, "orders/paid"), environ_overrides=short)
    assert (by_layer.status_code, by_layer.get_data()) == (by_view.status_code, by_view.get_data())
    assert calls == [PATH]
    assert _deliveries(settings) == []


def test_an_inbox_that_cannot_store_is_a_503_from_the_view_after_one_attempt(client, settings, shop, monkeypatch):
    attempts = []

    def unavailable(engine, incoming):
        attempts.append(incoming.webhook_id)
        raise OperationalError("connect", {}, Exception("the pool could not connect"))

    monkeypatch.setattr(inbox, "store", unavailable)
    response = deliver(client, "orders/paid", builders.order(1001, 7001), webhook_id="w-1")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.get_json()["error"]["code"] == "inbox_unavailable"
    assert attempts == ["w-1"]  # the view answered the layer's failure; it did not try (and log) again


def test_an_error_in_the_layer_leaves_the_request_to_the_view(client, settings, shop, flask_calls, monkeypatch):
    def broken(_environ, _limit):
        raise RuntimeError("a bug before anything is stored")

    monkeypatch.setattr(intake_acks, "read_body", broken)
    response = deliver(client, "orders/paid", builders.order(1001, 7001))
    assert response.status_code == 200
    assert response.get_json()["status"] == "accepted"
    assert flask_calls == [PATH]
    assert len(_deliveries(settings)) == 1


def test_other_paths_and_methods_go_to_flask(client, shop, flask_calls):
    body = order_body()
    headers = signed_headers(body, "orders/paid")
    assert client.post(PATH + "/", data=body, headers=headers).status_code == 404
    assert client.put(PATH, data=body, headers=headers).status_code == 405
    assert flask_calls == [PATH + "/", PATH]


def test_hooks_registered_later_are_never_skipped(settings, shop):
    app = create_app(settings, TESTING=True)
    assert intake_acks.before_flask.runs_nothing_around(app, "webhooks")  # the app as it is: no hook

    @app.after_request
    def stamped(response: Response) -> Response:
        response.headers["X-Stamp"] = "seen"
        return response

    response = deliver(app.test_client(), "orders/paid", builders.order(1001, 7001))
    assert response.status_code == 200
    assert response.headers.get("X-Stamp") == "seen"


def test_a_request_signal_receiver_is_never_skipped(settings, shop):
    app = create_app(settings, TESTING=True)
    started = []

    def receiver(sender, **_extra):
        started.append(sender)

    with request_started.connected_to(receiver, app):
        assert deliver(app.test_client(), "orders/paid", builders.order(1001, 7001)).status_code == 200
    assert started == [app]


def test_a_blueprint_hook_is_never_skipped(settings, shop):
    app = create_app(settings, TESTING=True)
    seen = []
    app.before_request_funcs.setdefault("webhooks", []).append(lambda: seen.append("webhooks"))
    assert deliver(app.test_client(), "orders/paid", builders.order(1001, 7001)).status_code == 200
    assert seen == ["webhooks"]


def test_a_forged_body_is_verified_once_and_refused_by_the_view(client, settings, shop, flask_calls, monkeypatch):
    verified = []
    shopify = platforms.get("shopify")
    verify = shopify.verify_webhook

    def counting(body, signature, secrets):
        verified.append(len(body))
        return verify(body, signature, secrets)

    monkeypatch.setattr(shopify, "verify_webhook", counting)
    response = post(client, order_body(), X_Shopify_Hmac_Sha256="Zm9yZ2Vk")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert flask_calls == [PATH]
    assert verified == [len(order_body())]  # the layer's check is the view's answer: no second HMAC of the body
    assert _deliveries(settings) == []


def test_an_error_in_the_layer_is_logged(client, settings, shop, monkeypatch, caplog):
    def broken(_environ, _limit):
        raise RuntimeError("a bug before anything is stored")

    monkeypatch.setattr(intake_acks, "read_body", broken)
    with caplog.at_level(logging.ERROR, logger="plugin.web.before_flask"):
        assert deliver(client, "orders/paid", builders.order(1001, 7001)).status_code == 200
    [record] = [r for r in caplog.records if r.name == "plugin.web.before_flask"]
    assert "answered by Flask after an error" in record.getMessage()
    assert "a bug before anything is stored" in record.exc_text


def test_a_lower_max_content_length_is_the_layers_limit_too(settings, shop):
    app = create_app(settings, TESTING=True)
    app.config["MAX_CONTENT_LENGTH"] = 100  # a deployment's lower limit
    client = app.test_client()
    body = order_body()
    assert len(body) > 100
    response = client.post(PATH, data=body, headers=signed_headers(body, "orders/paid"))
    assert response.status_code == 413
    assert _deliveries(settings) == []
