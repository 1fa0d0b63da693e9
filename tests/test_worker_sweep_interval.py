"""LOYALTY_SWEEP_INTERVAL_SECONDS sets how often an idle LoyaltyWorker runs the sweeper."""

from __future__ import annotations

import pytest
from redis import Redis

from plugin.worker import LoyaltyWorker
from tests.conftest import TEST_REDIS_URL


@pytest.mark.parametrize(("setting", "interval", "ttl"), [(None, 15, 30), ("2", 2, 17), ("0", 1, 16)])
def test_an_idle_worker_sweeps_about_every_interval(monkeypatch, setting, interval, ttl):
    if setting is None:
        monkeypatch.delenv("LOYALTY_SWEEP_INTERVAL_SECONDS", raising=False)
    else:
        monkeypatch.setenv("LOYALTY_SWEEP_INTERVAL_SECONDS", setting)
    worker = LoyaltyWorker(["loyalty-sweep-interval-test"], connection=Redis.from_url(TEST_REDIS_URL))
    assert worker.maintenance_interval == interval
    assert (worker.worker_ttl, worker.dequeue_timeout) == (ttl, interval)  # RQ sweeps only between dequeues
