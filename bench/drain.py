"""The drain alone: Python CPU per order in one process, and orders/s by worker count and batch size."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import psycopg

from bench.common import order_body, prepared_database
from bench.harness import SHOP, running, start_worker, wait_until
from plugin import inbox, jobs
from plugin.config import Settings
from plugin.db import engine_for

CONFIGURATIONS = ((1, 50), (3, 200), (3, 50))  # (Procfile workers, LOYALTY_INBOX_BATCH)


def _fill(url: str, orders: int) -> None:
    """Store signed-and-verified-equivalent deliveries straight into the inbox (the intake is measured elsewhere)."""
    engine = engine_for(url.replace("postgresql://", "postgresql+psycopg://"))
    rng = random.Random(1)
    for n in range(orders):
        body = order_body(9_000_000 + n, 8_000_000 + rng.randint(1, 2000))
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"d-{n}", body))
    engine.dispose()  # the next configuration drops and re-creates this database


def cpu_per_order(orders: int = 3000) -> float:
    """Milliseconds of this process's CPU per order for inbox.drain (PostgreSQL's own CPU not included)."""
    url, _ = prepared_database("loyalty_bench_drain")
    _fill(url, orders)
    started = time.process_time()
    outcomes = inbox.drain(url.replace("postgresql://", "postgresql+psycopg://"))
    engine_for(url.replace("postgresql://", "postgresql+psycopg://")).dispose()
    if outcomes.get(inbox.PROCESSED) != orders:
        raise RuntimeError(f"drain processed {dict(outcomes)} of {orders}")
    return round(1000 * (time.process_time() - started) / orders, 2)


def workers_throughput(workers: int, batch: int, orders: int = 6000) -> int:
    """Orders/s for `workers` Procfile workers draining a full inbox, from the first job to the last posting."""
    url, env = prepared_database("loyalty_bench_drain")
    env = {**env, "LOYALTY_INBOX_BATCH": str(batch)}
    _fill(url, orders)
    processes = [start_worker(f"drain-{n}", env) for n in range(workers)]
    with running(*processes):
        time.sleep(3)  # let the workers connect and block on the queue
        started = datetime.now(UTC)
        jobs.enqueue_drain(Settings(database_url=url, redis_url=env["REDIS_URL"], queue_name=env["LOYALTY_QUEUE"]))

        def posted() -> int:
            with psycopg.connect(url) as conn:
                return conn.execute("SELECT count(*) FROM postings").fetchone()[0]

        wait_until(lambda: posted() >= orders, 600, "the drain did not finish in 600 s", 0.2)
    with psycopg.connect(url) as conn:
        last = conn.execute("SELECT max(created_at) FROM postings").fetchone()[0]
    return round(orders / (last - started).total_seconds())


def run() -> dict:
    return {
        "python_cpu_ms_per_order": cpu_per_order(),
        "orders_per_second": {
            f"{w} worker{'s' if w > 1 else ''}, batch {b}": workers_throughput(w, b) for w, b in CONFIGURATIONS
        },
    }
