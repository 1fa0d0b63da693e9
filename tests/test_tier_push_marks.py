"""A tier push records what it sent in one transaction a read, skips members a drain holds, and records what the
shop took when a later call fails (services/tier_push.py, services/member_marks.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from plugin import create_app, platforms
from plugin.db import engine_for, transaction
from plugin.jobs import tasks
from plugin.models import Member
from plugin.platforms.base import AdminAPIError
from plugin.services import tier_push
from tests import builders, run_locks
from tests.test_tiers_e2e import deliver_at, save

CUSTOMERS = (7101, 7102, 7103)


@pytest.fixture
def gold_members(fake_shop_api, shop_with_token, monkeypatch):
    """Three members just moved to gold, none of them pushed yet; the fake shop's settings and state."""
    settings, state = fake_shop_api
    save(settings)
    client = create_app(settings, TESTING=True).test_client()
    monkeypatch.setattr(tasks, "signal_tiers", lambda _settings: None)  # the tests push themselves
    for n, customer_id in enumerate(CUSTOMERS):
        deliver_at(client, "orders/paid", builders.order(900 + n, customer_id, [builders.line(11, "350.00")]))
    return settings, state


def _quick(settings, shop):
    admin = platforms.admin_client(settings, shop)
    admin.sleep = lambda _seconds: None
    return admin


def _due(settings) -> list[int]:
    with transaction(settings.database_url) as session:
        return sorted(
            session.scalars(select(Member.customer_id).where(Member.tier.is_distinct_from(Member.pushed_tier))).all()
        )


def test_a_run_records_every_tier_it_sent_with_one_update(gold_members):
    settings, state = gold_members
    updates: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("UPDATE MEMBERS"):
            updates.append(statement)

    engine = engine_for(settings.database_url)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert tier_push.push_tiers(settings, _quick) == len(CUSTOMERS)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(updates) == 1, updates  # one a member before
    assert _due(settings) == []
    assert all(state.customer_tags[f"gid://shopify/Customer/{c}"] == ["loyalty-tier-gold"] for c in CUSTOMERS)
    assert tier_push.push_tiers(settings, _quick) == 0


def test_a_member_a_drain_holds_is_sent_and_stays_due_until_the_next_run(gold_members, pg_engine):
    settings, state = gold_members
    with Session(pg_engine) as holder, holder.begin():
        holder.execute(text("SELECT 1 FROM members WHERE customer_id = :c FOR UPDATE"), {"c": CUSTOMERS[1]})
        assert tier_push.push_tiers(settings, _quick) == len(CUSTOMERS)  # never waits for the held row
        assert _due(settings) == [CUSTOMERS[1]]
    assert state.customer_tags[f"gid://shopify/Customer/{CUSTOMERS[1]}"] == ["loyalty-tier-gold"]
    assert tier_push.push_tiers(settings, _quick) == 1
    assert _due(settings) == []


def test_the_calls_the_shop_took_are_recorded_when_a_later_one_fails(gold_members):
    settings, _state = gold_members
    calls = []

    def refuse_second(customer, n):
        calls.append(customer)
        if n == 2:
            raise AdminAPIError("the shop refused the second call")

    resting: set[int] = set()
    pushed = tier_push.push_tiers(
        settings, lambda s, shop: _calls_with(s, shop, refuse_second), resting.__contains__, resting.add
    )
    assert pushed == 0 and len(calls) == 2 and resting  # the shop rests after the failure
    assert _due(settings) == list(CUSTOMERS[1:])  # the first call's member is recorded, the rest stay due
    assert tier_push.push_tiers(settings, _quick) == 2
    assert _due(settings) == []


def _calls_with(settings_, shop_, during):
    """An admin client whose every call runs `during(customer gid, call number)` first."""
    admin = _quick(settings_, shop_)
    graphql, calls = admin.graphql, []

    def call(document, variables):
        calls.append(variables.get("id"))
        during(variables.get("id"), len(calls))
        return graphql(document, variables)

    admin.graphql = call
    return admin


def test_a_tier_another_run_sent_meanwhile_leaves_the_member_due(gold_members):
    """Two runs overlap: while this one calls for the first member, the member moves to silver and another run sends
    and records silver. This run's gold reaches the shop after it, so the member must be due again, not left as if
    the shop had silver."""
    settings, state = gold_members
    first = f"gid://shopify/Customer/{CUSTOMERS[0]}"

    def other_run(customer, _n):
        if customer == first:
            with transaction(settings.database_url) as session:
                session.execute(
                    update(Member)
                    .where(Member.customer_id == CUSTOMERS[0])
                    .values(tier="silver", pushed_tier="silver")
                    .execution_options(synchronize_session=False)
                )

    assert tier_push.push_tiers(settings, lambda s, shop: _calls_with(s, shop, other_run)) == len(CUSTOMERS)
    assert state.customer_tags[first] == ["loyalty-tier-gold"]  # this run's stale write came last
    assert _due(settings) == [CUSTOMERS[0]]  # recorded as gold, now silver: the next run sends silver


def test_a_failure_to_record_after_a_refused_call_leaves_the_calls_error_to_rest_the_shop(gold_members, monkeypatch):
    settings, _state = gold_members

    def refuse_second(_customer, n):
        if n == 2:
            raise AdminAPIError("the shop refused the second call")

    def broken(*_args):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(tier_push, "_mark_pushed", broken)
    resting: set[int] = set()
    pushed = tier_push.push_tiers(
        settings, lambda s, shop: _calls_with(s, shop, refuse_second), resting.__contains__, resting.add
    )
    assert pushed == 0 and resting  # the call's error, not the record's, reached push_tiers: the shop rests
    assert _due(settings) == list(CUSTOMERS)  # nothing recorded: all stay due


def test_a_run_leaves_a_shop_another_run_is_pushing(gold_members, pg_engine, shop_with_token):
    settings, state = gold_members
    with run_locks.held_elsewhere(pg_engine, tier_push.RUN_NAMESPACE, shop_with_token):
        assert tier_push.push_tiers(settings, _quick) == 0  # no second run of the same members
        assert state.customer_tags == {} and _due(settings) == list(CUSTOMERS)
    assert tier_push.push_tiers(settings, _quick) == len(CUSTOMERS)
    assert _due(settings) == []


def test_the_run_lock_is_released_after_a_run_and_after_a_failed_one(gold_members, pg_engine, shop_with_token):
    settings, _state = gold_members

    def refuse(_customer, _n):
        raise AdminAPIError("the shop refused the call")

    resting: set[int] = set()
    assert (
        tier_push.push_tiers(settings, lambda s, shop: _calls_with(s, shop, refuse), set().__contains__, resting.add)
        == 0
    )
    assert resting == {shop_with_token}
    with run_locks.held_elsewhere(pg_engine, tier_push.RUN_NAMESPACE, shop_with_token):
        pass  # taken: the failed run released it
    assert tier_push.push_tiers(settings, _quick) == len(CUSTOMERS)
    with run_locks.held_elsewhere(pg_engine, tier_push.RUN_NAMESPACE, shop_with_token):
        pass  # and so did this one
