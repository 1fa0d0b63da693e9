"""The widget's Redis cache never shows points that are not there: a posting's commit outdates every entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from flask import Response
from redis import Redis

from plugin import create_app, inbox
from plugin.db import engine_for, transaction
from plugin.models import Redemption
from plugin.services import shops
from storefront_widget import proxy, widget_cache, widget_sql
from tests import builders
from tests.conftest import SHOP, TEST_REDIS_URL, deliver
from tests.test_storefront_proxy import get, give, post, signed


@pytest.fixture
def cached(queued, shop):
    """A test client whose widget reads go through the cache (PostgreSQL and a real Redis)."""
    if engine_for(queued.database_url).dialect.name != "postgresql":
        pytest.skip("the widget cache is PostgreSQL's (its version is read from row versions); SQLite computes")
    widget_sql.shop_ids.clear()  # every test database numbers its shops from 1
    return create_app(queued, TESTING=True).test_client(), queued


def balance_of(client, customer_id: int) -> int:
    response = get(client, "widget", signed(customer_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["customer"]["balance"]


def key(settings, customer_id: int | None) -> str:
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, SHOP).id
    return widget_cache.cache_key(settings, shop_id, customer_id)


def entry(settings, customer_id: int | None) -> bytes | None:
    return Redis.from_url(TEST_REDIS_URL).get(key(settings, customer_id))


def test_a_repeated_read_is_answered_from_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    first = get(client, "widget", signed(7001))  # learns the shop's id in this process
    second = get(client, "widget", signed(7001))  # reads the version, misses, fills
    assert entry(settings, 7001) is not None
    # A planted answer under the current version is what the next read serves: proof the cache is read.
    version, _, body = entry(settings, 7001).partition(b"\n")
    planted = json.dumps({**json.loads(body), "marker": "from the cache"}).encode()
    Redis.from_url(TEST_REDIS_URL).set(key(settings, 7001), version + b"\n" + planted)
    third = get(client, "widget", signed(7001))
    assert third.get_json()["marker"] == "from the cache"
    assert first.get_json() == second.get_json() == {k: v for k, v in third.get_json().items() if k != "marker"}


def test_after_a_redemption_commits_the_next_read_shows_the_new_balance(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    assert balance_of(client, 7001) == 1000
    assert balance_of(client, 7001) == 1000  # now cached
    made = post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    assert made.status_code == 201
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 500
    assert [r["id"] for r in widget["redemptions"]] == [made.get_json()["redemption"]["id"]]


def test_after_a_reversal_commits_the_next_read_shows_the_new_balance(cached):
    client, settings = cached
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "80.00"), builders.line(11, "20.00")]))
    inbox.drain(settings.database_url)
    assert balance_of(client, 7001) == 100
    assert balance_of(client, 7001) == 100  # now cached
    deliver(client, "refunds/create", builders.refund(91, 1, {10: 1}))
    inbox.drain(settings.database_url)
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 20
    assert [h["kind"] for h in widget["history"]] == ["reverse", "earn"]


def test_a_fill_that_read_before_a_redemption_committed_is_never_served(cached):
    # The race: a read takes its version and its data, a redemption commits, and only then does the read store
    # what it saw. The stored answer shows 1000 points that are no longer there; no later read may serve it.
    client, settings = cached
    give(settings, 7001, 1000)
    get(client, "widget", signed(7001))  # the process learns the shop's id
    app = client.application

    def read_then_redeem_before_storing() -> Response:
        with app.app_context(), transaction(settings.database_url) as session:
            stale = proxy.jsonify(proxy.read_widget(session, SHOP, 7001))
        assert post(client, "redeem", signed(7001), {"reward_id": "5-off"}).status_code == 201
        return stale

    with app.test_request_context():
        stale = widget_cache.served(settings, SHOP, 7001, proxy.REDEMPTION_LINES, read_then_redeem_before_storing)
    assert stale.get_json()["customer"]["balance"] == 1000  # what that slow read answered at the time
    assert b'"balance":1000' in entry(settings, 7001)  # and it was stored, after the redemption committed
    assert balance_of(client, 7001) == 500
    assert balance_of(client, 7001) == 500  # the refill holds the new figure


def test_a_posting_between_the_version_read_and_the_data_read_is_not_hidden(cached):
    # The other order: the version is read, a posting commits, then the data is read (and shows it). The entry
    # is stored under the older version: the next read misses and reads again, never the reverse.
    client, settings = cached
    give(settings, 7001, 1000)
    get(client, "widget", signed(7001))
    app = client.application

    def redeem_then_read() -> Response:
        assert post(client, "redeem", signed(7001), {"reward_id": "5-off"}).status_code == 201
        with app.app_context(), transaction(settings.database_url) as session:
            return proxy.jsonify(proxy.read_widget(session, SHOP, 7001))

    with app.test_request_context():
        answered = widget_cache.served(settings, SHOP, 7001, proxy.REDEMPTION_LINES, redeem_then_read)
    assert answered.get_json()["customer"]["balance"] == 500
    stored_version = entry(settings, 7001).partition(b"\n")[0]
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, SHOP).id
    now = widget_cache.current_version(settings.database_url, shop_id, SHOP, 7001, proxy.REDEMPTION_LINES)
    assert stored_version != now
    assert balance_of(client, 7001) == 500


def test_a_redemption_issued_later_shows_its_code(cached):
    # The issue job changes the redemption row, not the balance: the row's version is in the shopper's version.
    client, settings = cached
    give(settings, 7001, 1000)
    made = post(client, "redeem", signed(7001), {"reward_id": "5-off"}).get_json()["redemption"]
    for _ in range(2):  # the first read learns the shop's id, the second fills the cache
        assert get(client, "widget", signed(7001)).get_json()["redemptions"][0]["code"] is None  # pending
    assert entry(settings, 7001) is not None
    with transaction(settings.database_url) as session:
        session.execute(
            Redemption.__table__.update()
            .where(Redemption.id == made["id"])
            .values(status="issued", code="PTS-TEST-CODE")
        )
    assert get(client, "widget", signed(7001)).get_json()["redemptions"][0]["code"] == "PTS-TEST-CODE"


def test_a_settings_change_reaches_cached_readers(cached):
    client, settings = cached
    give(settings, 7001, 10)
    before = get(client, "widget", signed(None)).get_json()
    assert get(client, "widget", signed(None)).get_json() == before  # the visitor's entry, cached
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"earn": {"points": 3, "per_amount": "1.00"}})
    assert get(client, "widget", signed(None)).get_json()["program"]["earn"]["points"] == 3


def test_forged_requests_are_refused_before_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    balance_of(client, 7001), balance_of(client, 7001)  # cached
    forged = signed(7001)
    forged[-1] = ("signature", "0" * 64)
    response = get(client, "widget", forged)
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "invalid_signature")


def test_an_unknown_or_inactive_shop_is_never_answered_from_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    balance_of(client, 7001), balance_of(client, 7001)  # cached
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).active = False
    response = get(client, "widget", signed(7001))
    assert (response.status_code, response.get_json()["error"]["code"]) == (404, "unknown_shop")


def test_an_entry_lives_no_longer_than_its_first_pending_line():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def answer(*matures: timedelta) -> Response:
        pending = [{"points": 5, "available_at": (now + m).isoformat()} for m in matures]
        return Response(json.dumps({"customer": {"pending_until": pending}}), mimetype="application/json")

    assert widget_cache.lifetime(answer(), now) == widget_cache.TTL_SECONDS
    assert widget_cache.lifetime(answer(timedelta(days=2), timedelta(seconds=12.5)), now) == 12
    assert widget_cache.lifetime(answer(timedelta(milliseconds=400)), now) is None
    assert widget_cache.lifetime(Response("{}", status=404, mimetype="application/json"), now) is None
