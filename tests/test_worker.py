"""Real Redis and real `rq worker` processes (the Procfile's worker class) draining the inbox."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import time

import pytest
from sqlalchemy import func, select, text

from plugin import create_app, ledger
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Member
from tests import builders
from tests.conftest import ROOT, deliver
from tests.processes import FLASK, environment, finish, kill_hard, run_worker, stop_worker

pytestmark = pytest.mark.integration
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def statuses(settings) -> dict[str, int]:
    with transaction(settings.database_url) as session:
        return dict(session.execute(select(Delivery.status, func.count()).group_by(Delivery.status)).all())


def balances(settings) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        return dict(session.execute(select(Member.customer_id, Member.balance)).all())


def workload(orders: int, seed: int = 1) -> tuple[list[tuple[str, dict]], dict[int, int]]:
    """Paid orders for ten shoppers, a third of them half-refunded, with the exact balances they must end at."""
    rng = random.Random(seed)
    deliveries, expected = [], {}
    for n in range(1, orders + 1):
        customer = 9000 + n % 10
        units, price = rng.randint(1, 4), f"{rng.randint(100, 9999) / 100:.2f}"
        deliveries.append(("orders/paid", builders.order(n, customer, [builders.line(n * 10, price, units)])))
        eligible = units * int(price.replace(".", ""))  # in cents
        held = eligible // 100
        if n % 3 == 0:
            refunded = units // 2
            deliveries.append(("refunds/create", builders.refund(n * 100, n, {n * 10: refunded})))
            held = (eligible * (units - refunded) // units) // 100
        expected[customer] = expected.get(customer, 0) + held
    rng.shuffle(deliveries)
    return deliveries, expected


def test_deliveries_wait_in_the_inbox_until_a_real_worker_drains_them(queued, shop):
    client = create_app(queued, TESTING=True).test_client()
    deliveries, expected = workload(60)
    for topic, payload in deliveries:
        assert deliver(client, topic, payload).status_code == 200
    assert statuses(queued) == {"received": len(deliveries)}  # acked, not yet processed

    finish(run_worker(queued))
    assert statuses(queued) == {"processed": len(deliveries)}
    assert balances(queued) == expected
    with transaction(queued.database_url) as session:
        assert ledger.verify(session) == []


def test_two_workers_drain_concurrently_without_double_counting(queued, shop):
    client = create_app(queued, TESTING=True).test_client()
    deliveries, expected = workload(300, seed=2)
    for topic, payload in deliveries:
        deliver(client, topic, payload)
    deliver(client, *deliveries[0])  # and a repeat under a new webhook id
    workers = [run_worker(queued), run_worker(queued)]
    # Both workers must have work: the first drain job fans out once it sees a full batch.
    for worker in workers:
        finish(worker)
    leftover = statuses(queued).get("received", 0)
    if leftover:  # a burst worker may exit before a fanned-out job lands; the sweeper's job catches it
        finish(run_worker(queued, LOYALTY_SWEEP_AFTER_SECONDS="0"))
    assert statuses(queued) == {"processed": len(deliveries) + 1}
    assert balances(queued) == expected
    with transaction(queued.database_url) as session:
        assert ledger.verify(session) == []


def test_redis_down_still_acks_and_the_sweeper_enqueues_later(queued, shop):
    redis_down = dataclasses.replace(queued, redis_url=UNREACHABLE_REDIS)
    client = create_app(redis_down, TESTING=True).test_client()
    response = deliver(client, "orders/paid", builders.order(1, 9001, [builders.line(10, "12.00")]))
    assert response.status_code == 200
    assert statuses(queued) == {"received": 1}

    requeue = subprocess.run(
        [FLASK, "--app", "plugin", "loyalty", "requeue"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=environment(queued, LOYALTY_SWEEP_AFTER_SECONDS="0"),
        timeout=60,
    )
    assert requeue.returncode == 0, requeue.stderr
    assert "1 waiting deliveries enqueued" in requeue.stdout
    finish(run_worker(queued))
    assert balances(queued) == {9001: 12}


def test_a_running_worker_sweeps_deliveries_nobody_signalled(queued, shop):
    redis_down = dataclasses.replace(queued, redis_url=UNREACHABLE_REDIS)
    client = create_app(redis_down, TESTING=True).test_client()
    deliver(client, "orders/paid", builders.order(1, 9001, [builders.line(10, "7.00")]))
    worker = run_worker(queued, burst=False, LOYALTY_SWEEP_AFTER_SECONDS="0")
    try:
        deadline = time.monotonic() + 60
        while statuses(queued) != {"processed": 1} and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop_worker(worker)
    assert balances(queued) == {9001: 7}


def test_worker_killed_mid_batch_loses_nothing_and_doubles_nothing(queued, shop):
    if not queued.database_url.startswith("postgresql"):
        pytest.skip("pausing a worker inside its batch needs PostgreSQL row locks; SQLite locks the whole file")
    queued = dataclasses.replace(queued, inbox_batch_size=20)
    client = create_app(queued, TESTING=True).test_client()
    for customer in range(9000, 9010):
        deliver(client, "customers/create", {"id": customer})
    finish(run_worker(queued))
    deliveries, expected = workload(200, seed=3)
    for topic, payload in deliveries:
        deliver(client, topic, payload)

    with engine_for(queued.database_url).connect() as blocker:
        # Hold one member's row: the worker applies part of its batch, then waits on this lock, mid-transaction.
        blocker.execute(text("SELECT id FROM members WHERE customer_id = 9005 FOR UPDATE"))
        worker = run_worker(queued, burst=False)
        deadline = time.monotonic() + 60
        while not _someone_waits_on_a_lock(queued.database_url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _someone_waits_on_a_lock(queued.database_url), "the worker never reached the locked member"
        kill_hard(worker)  # the worker and its work horse, inside the batch
        blocker.rollback()
    after_kill = statuses(queued)
    assert after_kill["received"] > 0
    assert (after_kill["processed"] - 10) % 20 == 0, after_kill  # only whole batches committed; the killed one

    finish(run_worker(queued, LOYALTY_SWEEP_AFTER_SECONDS="0"))  # its start-up sweep enqueues the rest
    assert statuses(queued) == {"processed": len(deliveries) + 10}
    assert balances(queued) == expected
    with transaction(queued.database_url) as session:
        assert ledger.verify(session) == []


def _someone_waits_on_a_lock(database_url: str) -> bool:
    # A fresh connection each time: pg_stat_activity is a snapshot that stays fixed within a transaction.
    with engine_for(database_url).connect() as connection:
        return bool(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            ).scalar()
        )
