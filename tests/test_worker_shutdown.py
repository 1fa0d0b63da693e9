"""A worker asked to stop while its drain job works through a backlog stops after the batch in progress (0093)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import time

import pytest
from sqlalchemy import func, select

from plugin import inbox, ledger
from plugin.db import engine_for, transaction
from plugin.jobs import dispatch, shutdown, tasks
from plugin.models import Delivery, DeliveryClaim, Member
from plugin.worker import LoyaltyWorker
from tests import builders
from tests.conftest import SHOP
from tests.processes import children, finish, kill_hard, run_worker

pytestmark = pytest.mark.integration

ORDERS = 1500  # at 5 a batch, far more than a worker drains between the signal and its answer


def statuses(settings) -> dict[str, int]:
    with transaction(settings.database_url) as session:
        return dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())


@pytest.mark.parametrize("signalled", ["the worker", "every process"])
def test_a_warm_shutdown_ends_a_backlogs_drain_after_its_batch_and_loses_nothing(queued, shop, signalled):
    if not queued.database_url.startswith("postgresql"):
        # SQLite's writer holds the file while this test polls it: the signal came as late as the backlog's end.
        pytest.skip("deployments that stop workers run PostgreSQL; SQLite is for `make run`'s inline jobs")
    queued = dataclasses.replace(queued, inbox_batch_size=5)
    engine = engine_for(queued.database_url)
    for n in range(1, ORDERS + 1):
        body = json.dumps(builders.order(n, 9000 + n % 10, [builders.line(n * 10, "3.00")])).encode()
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))
    tasks.signal_inbox(queued)
    # Stints off: one drain then runs until the inbox is empty, never giving way to other work (the start-up sweep
    # queues the birthdays job), so only the shutdown can end it early.
    worker = run_worker(queued, burst=False, LOYALTY_DRAIN_STINT_SECONDS="0")
    try:
        deadline = time.monotonic() + 60
        while statuses(queued).get("processed", 0) < 20:
            assert time.monotonic() < deadline, "the worker processed nothing within a minute"
            time.sleep(0.05)
        horses = children(worker.pid)
        # The worker's process group, as `docker stop` signals it: RQ gives its work horse a group of its own, so the
        # horse hears of the shutdown from the worker alone. Some platforms (Heroku) signal every process: the
        # horse's own SIGTERM must not end it mid-batch either.
        os.killpg(worker.pid, signal.SIGTERM)
        if signalled == "every process":
            assert horses, "the worker had no work horse draining"
            for horse in horses:
                os.kill(horse, signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    except BaseException:
        kill_hard(worker)
        raise
    assert worker.returncode == 0, output
    assert "worker stopping, inbox not empty" in output  # the drain job's own log line: it ended, not killed
    left = statuses(queued)
    assert left.get("received", 0) > 0, left  # the backlog was left, not drained before the worker stopped
    with transaction(queued.database_url) as session:
        # Every batch it began, it finished: no delivery still waiting holds a claim of a death.
        claimed = (
            select(func.count()).select_from(DeliveryClaim).join(Delivery, Delivery.id == DeliveryClaim.delivery_id)
        )
        assert session.scalar(claimed.where(Delivery.status == "received", DeliveryClaim.claims > 0)) == 0
        assert session.scalar(select(func.max(Delivery.attempts))) == 1

    # The job cut short queued a drain job for the rest, which the next worker takes.
    finish(run_worker(queued))
    assert statuses(queued) == {"processed": ORDERS}
    with transaction(queued.database_url) as session:
        assert session.scalar(select(func.sum(Member.balance))) == 3 * ORDERS
        assert ledger.verify(session) == []


def test_a_shutdown_asked_before_the_fork_reaches_the_horse_all_the_same(worker_environment, monkeypatch):
    """Asked between the worker taking a job and forking its horse, the warm shutdown finds no horse to tell: the
    horse learns it from the worker's state it inherits."""
    worker = LoyaltyWorker(
        [worker_environment.queue_name], connection=dispatch.redis_client(worker_environment.redis_url)
    )
    monkeypatch.setattr(shutdown, "_requested", False)
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        worker.setup_work_horse_signals()  # what a horse runs first
        assert not shutdown.requested()
        worker._stop_requested = True  # RQ's request_stop while the worker is busy
        worker.setup_work_horse_signals()
        assert shutdown.requested()
    finally:
        for sig, handler in handlers.items():  # this is the test process, not a horse
            signal.signal(sig, handler)
