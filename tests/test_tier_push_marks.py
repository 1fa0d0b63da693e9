"""A tier push records what it sent in one transaction a read, skips members a drain holds, and records what the
shop took when a later call fails (services/tier_push.py, services/member_marks.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from plugin import create_app, platforms
from plugin.db import engine_for, transaction
from plugin.jobs import tasks
from plugin.models import Member
from plugin.platforms.base import AdminAPIError
from plugin.services import tier_push
from tests import builders
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

    def failing_second(settings_, shop_):
        admin = _quick(settings_, shop_)
        graphql = admin.graphql

        def once_then_fail(document, variables):
            calls.append(variables.get("id"))
            if len(calls) == 2:
                raise AdminAPIError("the shop refused the second call")
            return graphql(document, variables)

        admin.graphql = once_then_fail
        return admin

    resting: set[int] = set()
    assert tier_push.push_tiers(settings, failing_second, resting.__contains__, resting.add) == 0
    assert len(calls) == 2 and resting  # the shop rests after the failure
    assert _due(settings) == list(CUSTOMERS[1:])  # the first call's member is recorded, the rest stay due
    assert tier_push.push_tiers(settings, _quick) == 2
    assert _due(settings) == []
