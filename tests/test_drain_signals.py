"""After a drain, the jobs queued are those with work waiting: grant and tier pushes only when the drain made some."""

from __future__ import annotations

import json

import pytest

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.jobs import dispatch, tasks
from plugin.services import shops, tier_sets
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP
from tests.test_rewards_items import offer

pytestmark = pytest.mark.db

GOLD_AT_100 = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [{"id": "gold", "name": "Gold", "threshold": "100"}],
}
TEN_OFF = {"id": "ten-off", "kind": "fixed_amount", "points": 1000, "amount": "10.00"}
BIG_SPENDER = {"id": "big-spender", "amount": "100.00", "period": "lifetime", "points": 0, "reward": "ten-off"}


def drained_jobs(queued, orders: list[tuple[int, str]], first: int = 1) -> set[str]:
    """Store one orders/paid per (customer, total), drain them as a worker's job does; the jobs queued meanwhile."""
    for number, (customer, total) in enumerate(orders, start=first):
        body = json.dumps(builders.order(number, customer, [builders.line(10, total)])).encode()
        inbox.store(engine_for(queued.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"d-{number}", body))
    assert tasks.drain_inbox_with(queued) == {"processed": len(orders)}
    queues = [dispatch.queue_for(queued), dispatch.queue_for(queued, tasks.DELIVER_EVENTS)]
    return {job.func_name.rsplit(".", 1)[-1] for queue in queues for job in queue.get_jobs()}


def test_a_shop_without_tiers_or_rewards_gets_no_tier_push_or_grant_job(queued, shop_with_token):
    jobs = drained_jobs(queued, [(7001, "30.00"), (7002, "45.00")])
    assert jobs == {"push_balances", "deliver_events"}


def test_a_drain_that_moves_a_tier_queues_the_tier_push(queued, shop_with_token):
    with transaction(queued.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), GOLD_AT_100, "test")
    jobs = drained_jobs(queued, [(7001, "150.00")])
    assert jobs == {"push_balances", "deliver_events", "push_tiers"}


def test_a_tier_shop_whose_drain_moves_no_tier_queues_no_tier_push(queued, shop_with_token):
    with transaction(queued.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), GOLD_AT_100, "test")
    jobs = drained_jobs(queued, [(7001, "20.00")])
    assert jobs == {"push_balances", "deliver_events"}


def test_a_drain_that_grants_a_reward_queues_the_grant_job_and_one_that_grants_none_does_not(queued, shop_with_token):
    offer(queued, TEN_OFF)
    with transaction(queued.database_url) as session:
        milestone_settings.save(session, shops.get(session, SHOP), {"thresholds": [BIG_SPENDER]}, "test")
    assert drained_jobs(queued, [(7001, "20.00")]) == {"push_balances", "deliver_events"}
    for queue in (dispatch.queue_for(queued), dispatch.queue_for(queued, tasks.DELIVER_EVENTS)):
        queue.empty()
    for claim in ("balances", "events"):
        dispatch.clear_claim(queued, claim)  # what those jobs do as they start
    assert drained_jobs(queued, [(7001, "150.00")], first=2) == {"push_balances", "deliver_events", "settle_grants"}


def test_a_look_that_fails_queues_its_job_and_the_drain_still_succeeds(queued, shop_with_token, monkeypatch):
    from plugin.services import tier_push

    def database_gone(_url):
        raise ConnectionError("the database went away after the drain's commit")

    monkeypatch.setattr(tier_push, "any_due", database_gone)
    jobs = drained_jobs(queued, [(7001, "30.00")])  # its own assert: the drain reports its order processed
    assert jobs == {"push_balances", "deliver_events", "push_tiers"}
