"""The widget's Redis cache never shows points that are not there: every commit that changes an answer outdates it."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis
from sqlalchemy import event, text

from plugin import create_app, generations, inbox, ledger
from plugin.db import engine_for, transaction
from plugin.models import Redemption
from plugin.services import desk, privacy, shops
from storefront_widget import proxy, widget_cache, widget_sql
from tests import builders
from tests.conftest import SHOP, TEST_REDIS_URL, deliver
from tests.test_storefront_proxy import get, give, post, signed

REDIS = Redis.from_url(TEST_REDIS_URL)


def balance_of(client, customer_id: int) -> int:
    response = get(client, "widget", signed(customer_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["customer"]["balance"]


def prefix(settings) -> str:
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, SHOP).id
    return generations.shop_prefix(settings.queue_name, settings.database_url, shop_id)


def entry(settings, customer_id: int | None) -> dict[bytes, bytes]:
    return REDIS.hgetall(widget_cache.entry_key(prefix(settings), customer_id))


def generation(settings, customer_id: int | None = None) -> bytes | None:
    return REDIS.get(generations.generation_keys(prefix(settings), customer_id)[-2])


def cached_twice(client, customer_id: int | None) -> dict:
    """Read twice: the first read learns the shop's id in this process, the second fills the cache."""
    get(client, "widget", signed(customer_id))
    return get(client, "widget", signed(customer_id)).get_json()


def served_from_cache(client, settings, customer_id: int | None) -> bool:
    """Whether the next read is the stored entry: a marker planted in it under its own stamp comes back."""
    held = entry(settings, customer_id)
    if not held:
        return False
    planted = json.dumps({**json.loads(held[b"body"]), "marker": "from the cache"}).encode()
    REDIS.hset(widget_cache.entry_key(prefix(settings), customer_id), "body", planted)
    return get(client, "widget", signed(customer_id)).get_json().get("marker") == "from the cache"


def bonus(settings, customer_id: int, points: int) -> None:
    """Post points to an existing member, in a transaction of its own (an adjustment-like write)."""
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member_id = shops.member(session, shop, customer_id).id
        key = uuid.uuid4().hex
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", points, "support", "s", key, "m"))


@contextmanager
def after_our_bump(settings, action: Callable[[], None]) -> Iterator[None]:
    """Run `action` inside the next commit, after the generations were bumped and before PostgreSQL commits."""
    engine = engine_for(settings.database_url)
    actions = [action]

    def listener(_conn):
        while actions:
            actions.pop()()

    event.listen(engine, "commit", listener)  # listeners run in order: generations' own was installed first
    try:
        yield
    finally:
        event.remove(engine, "commit", listener)


def test_a_repeated_read_is_answered_from_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    first = get(client, "widget", signed(7001))  # learns the shop's id in this process
    second = get(client, "widget", signed(7001))  # notes the generations, misses, fills
    assert entry(settings, 7001)
    assert served_from_cache(client, settings, 7001)
    assert first.get_json() == second.get_json()


def test_a_hit_asks_postgresql_nothing(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    statements = []
    engine = engine_for(settings.database_url)
    counter = event.listens_for(engine, "before_cursor_execute")(lambda *args: statements.append(args[2]))
    try:
        assert balance_of(client, 7001) == 1000
    finally:
        event.remove(engine, "before_cursor_execute", counter)
    assert statements == []


def test_after_a_redemption_commits_the_next_read_shows_the_new_balance(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    assert cached_twice(client, 7001)["customer"]["balance"] == 1000
    made = post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    assert made.status_code == 201
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 500
    assert [r["id"] for r in widget["redemptions"]] == [made.get_json()["redemption"]["id"]]


def test_after_a_reversal_commits_the_next_read_shows_the_new_balance(cached):
    client, settings = cached
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "80.00"), builders.line(11, "20.00")]))
    inbox.drain(settings.database_url)
    assert cached_twice(client, 7001)["customer"]["balance"] == 100
    deliver(client, "refunds/create", builders.refund(91, 1, {10: 1}))
    inbox.drain(settings.database_url)
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 20
    assert [h["kind"] for h in widget["history"]] == ["reverse", "earn"]


def test_a_fill_that_read_before_a_redemption_committed_is_never_stored(cached):
    # The race: a read notes the generations and reads its data, a redemption commits, and only then does the
    # read try to store what it saw (1000 points that are no longer there). The compare-and-set refuses it.
    client, settings = cached
    give(settings, 7001, 1000)
    get(client, "widget", signed(7001))  # the process learns the shop's id
    app = client.application

    def read_then_redeem_before_storing() -> dict:
        with app.app_context(), transaction(settings.database_url) as session:
            stale = proxy.read_widget(session, SHOP, 7001)
        assert post(client, "redeem", signed(7001), {"reward_id": "5-off"}).status_code == 201
        return stale

    with app.test_request_context():
        stale = widget_cache.served(settings, SHOP, 7001, read_then_redeem_before_storing)
    assert stale.get_json()["customer"]["balance"] == 1000  # what that slow read answered at the time
    assert not entry(settings, 7001)  # and did not store
    assert balance_of(client, 7001) == 500
    assert balance_of(client, 7001) == 500  # the refill holds the new figure


def test_a_posting_between_noting_the_generations_and_reading_is_not_hidden(cached):
    # The other order: the generations are noted, a posting commits, then the data is read (and shows it).
    # The fill is refused (the generation moved on); the next read fills again, never the reverse.
    client, settings = cached
    give(settings, 7001, 1000)
    get(client, "widget", signed(7001))
    app = client.application

    def redeem_then_read() -> dict:
        assert post(client, "redeem", signed(7001), {"reward_id": "5-off"}).status_code == 201
        with app.app_context(), transaction(settings.database_url) as session:
            return proxy.read_widget(session, SHOP, 7001)

    with app.test_request_context():
        answered = widget_cache.served(settings, SHOP, 7001, redeem_then_read)
    assert answered.get_json()["customer"]["balance"] == 500
    assert not entry(settings, 7001)
    assert balance_of(client, 7001) == 500
    assert served_from_cache(client, settings, 7001)


def test_a_writer_that_dies_after_its_commit_leaves_no_stale_entry(cached, monkeypatch):
    # Between the writer's bump and its commit a read fills with the old balance; the writer then commits and
    # dies before its release (its second bump and the removal of its dirty marks). The read saw the marks, so
    # it did not store: no later read can be served 1000.
    client, settings = cached
    give(settings, 7001, 1000)
    assert cached_twice(client, 7001)["customer"]["balance"] == 1000
    held = entry(settings, 7001)
    monkeypatch.setattr(generations, "_release", lambda info: info.pop(generations._PENDING, None))
    during = []
    with after_our_bump(settings, lambda: during.append(balance_of(client, 7001))):
        bonus(settings, 7001, 5)
    assert during == [1000]  # read before the commit, and computed (the old entry's generation had moved on)
    assert entry(settings, 7001) == held  # not stored over
    assert balance_of(client, 7001) == 1005
    assert balance_of(client, 7001) == 1005
    assert entry(settings, 7001) == held  # nothing is stored while the dead writer's marks live


def test_a_writer_that_dies_before_its_commit_only_delays_caching(cached, monkeypatch):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    monkeypatch.setattr(generations, "DIRTY_SECONDS", 2)
    monkeypatch.setattr(generations, "_release", lambda info: info.pop(generations._PENDING, None))

    def die():
        raise RuntimeError("the writer dies before PostgreSQL commits")

    with after_our_bump(settings, die), pytest.raises(RuntimeError):
        bonus(settings, 7001, 5)
    assert balance_of(client, 7001) == 1000  # nothing was committed
    assert not served_from_cache(client, settings, 7001)  # the marks keep readers computing...
    time.sleep(3.1)  # ...until they expire (DIRTY_SECONDS, on Redis's clock)
    cached_twice(client, 7001)
    assert served_from_cache(client, settings, 7001)


def test_generations_lost_by_redis_never_match_an_entry_kept(cached):
    # Redis loses the generations (eviction, a restart, a DEL) but keeps an entry, and a write is made that
    # Redis never hears of: the generations start again at a random value, so the kept entry is not served.
    client, settings = cached
    give(settings, 7001, 1000)
    REDIS.delete(*generations.generation_keys(prefix(settings), 7001))
    assert cached_twice(client, 7001)["customer"]["balance"] == 1000  # stored under generations started anew
    REDIS.delete(*generations.generation_keys(prefix(settings), 7001))
    generations.forget()  # the write below bumps nothing
    bonus(settings, 7001, 5)
    assert entry(settings, 7001)  # the old entry is still there...
    assert balance_of(client, 7001) == 1005  # ...and not served


def test_a_commit_is_refused_when_redis_cannot_be_bumped(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    create_app(dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0"))  # names an unreachable Redis
    with pytest.raises(generations.CacheUnavailable):
        bonus(settings, 7001, 5)
    with transaction(settings.database_url) as session:  # a transaction that writes none of those tables
        session.execute(text("SELECT 1"))
        session.execute(text("UPDATE deliveries SET attempts = attempts WHERE false"))
    with transaction(settings.database_url) as session:  # the refused commit changed nothing
        assert shops.member(session, shops.get(session, SHOP), 7001).balance == 1000


def test_a_code_issued_later_shows(cached):
    # The issue job changes the redemption row, not the balance: the redemptions trigger notes the shopper.
    client, settings = cached
    give(settings, 7001, 1000)
    made = post(client, "redeem", signed(7001), {"reward_id": "5-off"}).get_json()["redemption"]
    assert cached_twice(client, 7001)["redemptions"][0]["code"] is None  # pending
    assert entry(settings, 7001)
    with transaction(settings.database_url) as session:
        session.execute(
            Redemption.__table__.update()
            .where(Redemption.id == made["id"])
            .values(status="issued", code="PTS-TEST-CODE")
        )
    assert get(client, "widget", signed(7001)).get_json()["redemptions"][0]["code"] == "PTS-TEST-CODE"


def test_a_support_adjustment_reaches_cached_readers(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    assert cached_twice(client, 7001)["customer"]["balance"] == 1000
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, SHOP).id
    desk.adjust(settings, shop_id, 7001, {"points": -300, "reason_code": "goodwill", "note": "test"}, "support")
    assert balance_of(client, 7001) == 700


def test_the_set_based_drain_outdates_every_member_it_posted_for(cached):
    client, settings = cached
    customers = range(7001, 7011)
    for n, customer in enumerate(customers):
        deliver(client, "orders/paid", builders.order(n + 1, customer, [builders.line(10, "10.00")]))
    inbox.drain(settings.database_url)
    for customer in customers:
        assert cached_twice(client, customer)["customer"]["balance"] == 10
    for n, customer in enumerate(customers):
        deliver(client, "orders/paid", builders.order(n + 101, customer, [builders.line(10, "5.00")]))
    inbox.drain(settings.database_url)
    assert [balance_of(client, customer) for customer in customers] == [15] * len(customers)


def test_a_settings_change_reaches_cached_readers(cached):
    client, settings = cached
    give(settings, 7001, 10)
    before = cached_twice(client, None)
    assert served_from_cache(client, settings, None)  # the visitor's entry
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"earn": {"points": 3, "per_amount": "1.00"}})
    after = get(client, "widget", signed(None)).get_json()
    assert (before["program"]["earn"]["points"], after["program"]["earn"]["points"]) == (1, 3)


def test_an_uninstalled_shop_is_never_answered_from_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001), cached_twice(client, None)
    with transaction(settings.database_url) as session:
        privacy.uninstall(session, shops.get(session, SHOP))
    for customer_id in (7001, None):
        response = get(client, "widget", signed(customer_id))
        assert (response.status_code, response.get_json()["error"]["code"]) == (404, "unknown_shop")
    with transaction(settings.database_url) as session:
        shops.install(session, SHOP, None, settings.encryption_keys)
    assert balance_of(client, 7001) == 1000


def test_a_bulk_write_over_the_cap_outdates_the_whole_shop(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    member_generation = generation(settings, 7001)
    shop_generation = generation(settings)
    with transaction(settings.database_url) as session:
        session.execute(
            text(
                "INSERT INTO members (shop_id, customer_id, balance, enrolled_at) "
                "SELECT :shop, 8000000 + n, 0, now() FROM generate_series(1, 600) n"
            ),
            {"shop": shops.get(session, SHOP).id},
        )
        touched = session.execute(text("SELECT current_setting('loyalty.widget_touched', true)")).scalar()
    assert touched == f",{shops_id(settings)}:*,"
    assert generation(settings, 7001) == member_generation  # not one key per member...
    assert generation(settings) != shop_generation  # ...but the shop's
    assert not served_from_cache(client, settings, 7001)


def shops_id(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.get(session, SHOP).id


def test_the_members_trigger_watches_every_column_the_widget_can_show(cached):
    # A members column added later must be added to the trigger's list (migration 0031) or deliberately left out.
    _client, settings = cached
    with transaction(settings.database_url) as session:
        columns = set(
            session.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = 'members'")
            ).scalars()
        )
        watched = set(
            session.execute(
                text(
                    "SELECT a.attname FROM pg_trigger t JOIN pg_attribute a "
                    "ON a.attrelid = t.tgrelid AND a.attnum = ANY (t.tgattr::int2[]) "
                    "WHERE t.tgname = 'widget_touched_update' AND t.tgrelid = 'members'::regclass"
                )
            ).scalars()
        )
    assert watched == columns - {"balance", "pushed_balance", "pushed_tier"}


def test_forged_requests_are_refused_before_the_cache(cached):
    client, settings = cached
    give(settings, 7001, 1000)
    cached_twice(client, 7001)
    forged = signed(7001)
    forged[-1] = ("signature", "0" * 64)
    response = get(client, "widget", forged)
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "invalid_signature")


def test_an_entry_lives_no_longer_than_its_first_pending_line():
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)

    def answer(*matures: timedelta) -> dict:
        return {"customer": {"pending_until": [{"points": 5, "available_at": (now + m).isoformat()} for m in matures]}}

    assert widget_cache.lifetime(answer(), now) == widget_cache.TTL_SECONDS
    assert widget_cache.lifetime(answer(timedelta(days=2), timedelta(seconds=12.5)), now) == 12
    assert widget_cache.lifetime(answer(timedelta(milliseconds=400)), now) is None
    assert widget_cache.lifetime({"customer": None}, now) == widget_cache.TTL_SECONDS  # a visitor


def test_a_worker_watches_from_its_start_without_an_app(worker_environment, shop):
    # The Procfile's worker never calls create_app: LoyaltyWorker's start registers the database, so a job's commit
    # (in a work horse it forks) bumps the shopper's generation. Settings.from_env alone registers nothing.
    queued = worker_environment
    if engine_for(queued.database_url).dialect.name != "postgresql":
        pytest.skip("the widget cache needs PostgreSQL's triggers to find its writers")
    from plugin.config import Settings
    from plugin.worker import LoyaltyWorker

    give(queued, 7001, 0)
    Settings.from_env()
    bonus(queued, 7001, 5)
    assert generation(queued, 7001) is None  # nobody registered: nothing bumped
    LoyaltyWorker([queued.queue_name], connection=REDIS)
    bonus(queued, 7001, 5)
    assert generation(queued, 7001) is not None


READ_ONLY_CTES = [
    str(widget_sql._WIDGET),  # the widget's own read
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 3) SELECT n FROM t",
    "with held as (select id from members where shop_id = 1 for no key update) select id from held",
    "WITH updates_due AS (SELECT id, enrolled_at FROM members FOR UPDATE SKIP LOCKED) SELECT id FROM updates_due",
]
WRITING_CTES = [
    "WITH holder AS (SELECT balance FROM members WHERE id = 1 FOR UPDATE) INSERT INTO postings (points) VALUES (1)",
    "WITH x AS (SELECT 1) UPDATE members SET tier = NULL",
    "with gone as (delete from redemptions where id = 1 returning id) select id from gone",
    "WITH\n  made AS (INSERT INTO members (shop_id) VALUES (1) RETURNING id)\nSELECT id FROM made",
    "WITH src AS (SELECT 1 AS id) MERGE INTO members m USING src ON m.id = src.id WHEN MATCHED THEN DELETE",
]


@pytest.mark.parametrize("statement", READ_ONLY_CTES)
def test_a_with_of_selects_only_is_a_read(statement):
    assert not generations.may_write(statement)


@pytest.mark.parametrize("statement", [*WRITING_CTES, "INSERT INTO members (shop_id) VALUES (1)", "UPDATE shops"])
def test_a_with_that_modifies_is_a_write(statement):
    assert generations.may_write(statement)


def test_a_transaction_of_read_only_ctes_asks_nothing_at_commit(cached, monkeypatch):
    # A commit after a write reads the triggers' setting (one more round trip) and bumps; after a WITH of SELECTs,
    # nothing is asked.
    _, settings = cached
    give(settings, 7001, 1000)
    asked = []
    bump = generations._bump_before_commit
    monkeypatch.setattr(generations, "_bump_before_commit", lambda *args: asked.append(args) or bump(*args))
    with transaction(settings.database_url) as session:
        for statement in READ_ONLY_CTES[1:]:
            session.execute(text(statement)).all()
    assert asked == []
    before = generation(settings, 7001)
    bonus(settings, 7001, 5)  # ledger.post: WITH holder AS (SELECT ... FOR UPDATE) INSERT INTO postings
    assert len(asked) == 1
    assert generation(settings, 7001) != before
