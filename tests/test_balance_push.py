"""Balances pushed to the shop's customer metafield `loyalty.points`: coalesced, last value wins."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
import requests
from sqlalchemy import event, text

from plugin import create_app, ledger, platforms
from plugin.db import engine_for, transaction
from plugin.platforms.shopify import metafields
from plugin.programme.events import Customer
from plugin.services import balance_push, shops
from plugin.services.accrual import enrol
from tests import builders, run_locks
from tests.conftest import SHOP, deliver
from tests.processes import finish, run_worker, start_fake_shop, stop


def grant(settings, customer_id: int, points: int, key: str) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member_id = enrol(session, shop.id, Customer(customer_id))
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", points, "support", key, key, "manual"))


def test_push_writes_each_due_balance_once_and_the_latest_value(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    grant(settings, 7001, 40, "a")
    grant(settings, 7002, 15, "b")
    assert balance_push.any_due(settings.database_url)
    assert balance_push.push_balances(settings, platforms.admin_client) == 2
    assert state.metafields == {
        "gid://shopify/Customer/7001 loyalty.points": "40",
        "gid://shopify/Customer/7002 loyalty.points": "15",
    }
    assert not balance_push.any_due(settings.database_url)
    assert balance_push.push_balances(settings, platforms.admin_client) == 0  # nothing due: no call

    grant(settings, 7001, 5, "c")
    grant(settings, 7001, 7, "d")
    assert balance_push.push_balances(settings, platforms.admin_client) == 1  # two changes, one write
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "52"
    assert state.metafield_writes == 3


def test_shops_without_a_token_are_not_pushed_to(settings, shop):
    grant(settings, 7001, 40, "a")
    assert not balance_push.any_due(settings.database_url)
    assert balance_push.push_balances(settings, platforms.admin_client) == 0


@pytest.mark.integration
def test_a_burst_of_orders_becomes_a_few_metafield_writes(queued, shop):
    process, base_url = start_fake_shop("--token", "shpat_test_token")
    try:
        settings = dataclasses.replace(queued, shopify_api_base_url=base_url)
        with transaction(settings.database_url) as session:
            shops.install(session, SHOP, "shpat_test_token", settings.encryption_keys)
        client = create_app(settings, TESTING=True).test_client()
        for n in range(1, 61):
            deliver(client, "orders/paid", builders.order(n, 7001 + n % 2, [builders.line(n * 10, "3.00")]))
        finish(run_worker(settings))  # drains the inbox, then runs the one push it signalled
        pushed = requests.get(f"{base_url}/_fake/metafields", timeout=5).json()
    finally:
        stop(process)
    assert pushed["metafields"] == {
        "gid://shopify/Customer/7001 loyalty.points": "90",
        "gid://shopify/Customer/7002 loyalty.points": "90",
    }
    assert pushed["writes"] <= 6  # 60 balance changes, a handful of writes


def test_a_shop_that_refuses_a_push_rests_before_the_next_try(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    grant(settings, 7001, 40, "a")
    state.token = "shpat_someone_else"  # the shop now rejects our token
    resting: set[int] = set()
    pushed = balance_push.push_balances(settings, platforms.admin_client, resting.__contains__, resting.add)
    assert pushed == 0 and len(resting) == 1
    calls = state.calls
    assert calls >= 1  # it was asked, and refused
    assert balance_push.push_balances(settings, platforms.admin_client, resting.__contains__, resting.add) == 0
    assert state.calls == calls  # resting: not asked again
    assert balance_push.any_due(settings.database_url)  # still due for later


def test_with_expiry_on_the_push_carries_the_next_expiry(fake_shop_api, shop_with_token):
    from plugin.services import expiry

    settings, state = fake_shop_api
    with transaction(settings.database_url) as session:
        expiry.save_policy(session, shop_with_token, {"policy": "per_lot", "months": 6})
    grant(settings, 7001, 40, "a")
    grant(settings, 7002, 15, "b")
    assert balance_push.push_balances(settings, platforms.admin_client) == 2
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        coming = expiry.next_expiry(session, shop, shops.member(session, shop, 7001).id)
    assert coming["points"] == 40
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "40"
    assert json.loads(state.metafields["gid://shopify/Customer/7001 loyalty.next_expiry"]) == coming
    with transaction(settings.database_url) as session:
        expiry.save_policy(session, shop_with_token, {"policy": "off"})
    grant(settings, 7001, 5, "c")
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "45"  # expiry off: balance only


def test_a_member_a_drain_holds_is_skipped_not_waited_for(fake_shop_api, shop_with_token):
    """The push marks what it sent without waiting on a member row another transaction (a drain batch) holds:
    waiting there, while holding other members in another order, deadlocked drain batches."""
    settings, state = fake_shop_api
    if settings.database_url.startswith("sqlite"):
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) are PostgreSQL's; SQLite writers take the whole database")
    grant(settings, 7001, 40, "a")
    grant(settings, 7002, 15, "b")
    done: list[int] = []
    with transaction(settings.database_url) as holder:  # a drain batch's lock on 7001, held to its commit
        holder.execute(text("SELECT id FROM members WHERE customer_id = 7001 FOR UPDATE"))
        pushing = threading.Thread(
            target=lambda: done.append(balance_push.push_balances(settings, platforms.admin_client))
        )
        pushing.start()
        pushing.join(timeout=60)
        assert not pushing.is_alive(), "the push waited for the held member"
    assert done == [2]
    assert state.metafield_writes == 2  # 7001 sent once, not again and again while it stayed due in this run
    assert balance_push.any_due(settings.database_url)  # 7001's send was not recorded: the next push sends it
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "40"
    assert not balance_push.any_due(settings.database_url)


def test_a_run_writes_each_member_once_even_when_its_balance_moves_during_the_run(
    fake_shop_api, shop_with_token, monkeypatch
):
    """During a burst the drains keep moving balances: a run goes once through the due members, and a member that
    moved after its write waits for the next run (its posting signals one) instead of being written again now."""
    settings, state = fake_shop_api
    for n in range(30):  # two calls' worth (25 a call)
        grant(settings, 7001 + n, 10 + n, f"first-{n}")
    real = metafields.push_balances
    calls: list[int] = []

    def push_then_a_drain_moves_the_first_member(client, balances):
        real(client, balances)
        calls.append(len(balances))
        if len(calls) == 1:
            grant(settings, 7001, 5, "moved-during-the-run")

    monkeypatch.setattr(metafields, "push_balances", push_then_a_drain_moves_the_first_member)
    assert balance_push.push_balances(settings, platforms.admin_client) == 30
    assert calls == [25, 5]
    assert balance_push.any_due(settings.database_url)  # 7001's new balance: the next run sends it
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "15"
    assert not balance_push.any_due(settings.database_url)


def test_recording_a_calls_balances_is_one_update_whatever_the_members(fake_shop_api, shop_with_token):
    settings, _state = fake_shop_api
    for n in range(30):
        grant(settings, 7001 + n, 10 + n, f"g-{n}")
    engine = engine_for(settings.database_url)
    updates: list[str] = []

    def seen(_conn, _cursor, statement, *_rest) -> None:
        if statement.lstrip().upper().startswith("UPDATE MEMBERS"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert balance_push.push_balances(settings, platforms.admin_client) == 30
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(updates) == 2  # one per call of 25 and 5 members, not one per member
    with transaction(settings.database_url) as session:
        assert session.execute(text("SELECT count(*) FROM members WHERE balance <> pushed_balance")).scalar() == 0


def test_a_run_leaves_a_shop_another_run_is_pushing(fake_shop_api, shop_with_token, pg_engine):
    """One run a shop at a time (decision 0098): a second run finds the shop's run lock held and writes nothing; the
    lock is free again once the first run is over."""
    settings, state = fake_shop_api
    grant(settings, 7001, 40, "a")
    with run_locks.held_elsewhere(pg_engine, balance_push.RUN_NAMESPACE, shop_with_token):
        assert balance_push.push_balances(settings, platforms.admin_client) == 0
        assert state.metafields == {} and balance_push.any_due(settings.database_url)
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields == {"gid://shopify/Customer/7001 loyalty.points": "40"}
    with run_locks.held_elsewhere(pg_engine, balance_push.RUN_NAMESPACE, shop_with_token):
        pass  # taken: the run released it
