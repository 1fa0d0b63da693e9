"""A current cached widget read is answered before Flask, exactly as the view answers it; nothing else is."""

from __future__ import annotations

import dataclasses
from urllib.parse import urlencode

import pytest
from flask import Response
from werkzeug.test import Client

from plugin import create_app, direct_redis
from storefront_widget import widget_hits
from tests.conftest import flask_calls_behind
from tests.test_storefront_proxy import get, give, signed
from tests.test_widget_cache import balance_of, cached_twice, served_from_cache


@pytest.fixture
def flask_calls(cached, monkeypatch):
    """The test client and settings, and the requests that reached Flask's own wsgi_app."""
    client, settings = cached
    hits = client.application.wsgi_app
    assert isinstance(hits, widget_hits.WidgetHits)
    calls = flask_calls_behind(hits, monkeypatch)
    return client, settings, calls


@pytest.fixture
def redis_commands(monkeypatch):
    """The commands sent through plugin.direct_redis (the widget cache's read and store), by name."""
    sent: list[str] = []
    execute = direct_redis.execute

    def counted(client, *args):
        sent.append(args[0])
        return execute(client, *args)

    monkeypatch.setattr(direct_redis, "execute", counted)
    return sent


def test_a_hit_runs_no_flask_and_one_redis_command(flask_calls, redis_commands):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    calls.clear(), redis_commands.clear()
    assert balance_of(client, 7001) == 1000
    assert (calls, redis_commands) == ([], ["EVALSHA"])


def test_a_hit_is_answered_with_the_views_status_headers_and_body(flask_calls):
    client, settings, _calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    params = signed(7001)
    fast = get(client, "widget", params)
    through_flask = get(Client(client.application.wsgi_app.wsgi_app, Response), "widget", params)
    assert through_flask.status == fast.status == "200 OK"
    assert list(fast.headers.items()) == list(through_flask.headers.items())
    assert fast.get_data() == through_flask.get_data()


def test_a_miss_asks_redis_once_before_computing(flask_calls, redis_commands):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    get(client, "widget", signed(7001))  # learns the shop's id in this process
    redis_commands.clear()
    assert balance_of(client, 7001) == 1000  # a miss: read, computed by the view, stored
    assert calls == ["/proxy/widget", "/proxy/widget"]
    assert redis_commands == ["EVALSHA", "EVALSHA"]  # the read (once, not again in the view) and the store


@pytest.mark.parametrize(
    "change",
    [
        lambda p: [*p[:-1], ("signature", "0" * 64)],  # forged
        lambda p: [(k, "1000" if k == "timestamp" else v) for k, v in p],  # stale (and so no longer matching)
        lambda p: [*p, p[0]],  # a repeated parameter
        lambda p: [("extra", "1"), *p],  # an unexpected one
    ],
    ids=["forged", "stale", "repeated", "unexpected"],
)
def test_a_refused_request_is_refused_by_flask_even_with_an_entry_cached(flask_calls, redis_commands, change):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    calls.clear(), redis_commands.clear()
    response = get(client, "widget", change(signed(7001)))
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert calls == ["/proxy/widget"]
    assert redis_commands == []  # nothing is read for a request whose signature does not hold


def test_a_stale_signature_with_a_valid_hmac_is_refused(flask_calls):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    response = get(client, "widget", signed(7001, timestamp=1000))  # signed correctly, 56 years ago
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert calls[-1] == "/proxy/widget"


def test_a_secret_replaced_in_the_apps_settings_is_the_one_checked(flask_calls):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    client.application.extensions["loyalty"] = dataclasses.replace(settings, shopify_api_secret="rotated-secret")
    calls.clear()
    response = get(client, "widget", signed(7001))  # signed with the secret the app no longer holds
    assert response.status_code == 401, response.get_data(as_text=True)
    assert calls == ["/proxy/widget"]  # refused by Flask, not served from the cache with the old secret
    assert get(client, "widget", signed(7001, secret="rotated-secret")).status_code == 200


def test_a_hook_the_app_adds_is_never_skipped(cached):
    _client, settings = cached
    give(settings, 7001, 1000)
    app = create_app(settings, TESTING=True)

    @app.after_request
    def stamped(response: Response) -> Response:
        response.headers["X-Stamp"] = "seen"
        return response

    client = app.test_client()
    cached_twice(client, 7001)
    assert served_from_cache(client, settings, 7001)  # the cached entry, through Flask and its hook
    assert get(client, "widget", signed(7001)).headers.get("X-Stamp") == "seen"
    assert widget_hits.flask_runs_nothing_around_the_widget(create_app(settings))  # the app as it is: no hook


def test_other_methods_and_paths_go_to_flask(flask_calls):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    calls.clear()
    params = signed(7001)
    assert client.head(f"/proxy/widget?{urlencode(params)}").status_code == 200
    assert get(client, "widget/", params).status_code == 404
    assert calls == ["/proxy/widget", "/proxy/widget/"]


def test_an_error_before_flask_leaves_the_request_to_flask(flask_calls, monkeypatch):
    client, settings, calls = flask_calls
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    calls.clear()

    def broken(_app):
        raise RuntimeError("a bug in the hit path")

    monkeypatch.setattr(widget_hits, "flask_runs_nothing_around_the_widget", broken)
    assert balance_of(client, 7001) == 1000
    assert calls == ["/proxy/widget"]
