"""End to end: 20,000 signed orders/paid through gunicorn and Procfile workers, base rule alone and a programme."""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import time
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import programme
from bench.autoanalyze import AutoAnalyze
from bench.chaos_events import Receiver
from bench.common import order_body, prepared_database, webhook_hmac
from bench.cpu import CpuAccount, named_roots
from bench.harness import (
    ENCRYPTION_KEY,
    SHOP,
    RssSampler,
    flask_cli,
    running,
    start_fake_shop,
    start_web,
    start_worker,
    wait_for_workers,
    wait_until,
    wrk,
)
from plugin.db import engine_for

CUSTOMERS = 2000
ORDERS_PER_CUSTOMER = 10  # 20,000 orders: 2,000 shoppers, each buying often enough to reach tiers and milestones


def write_deliveries(
    path: Path, orders: int, rng: random.Random, *, customers: int = CUSTOMERS, vary_products: bool = False
) -> None:
    """One signed orders/paid delivery per line (distinct orders, customers drawn at random), for replay.lua.

    With `vary_products`, each order's two lines name the realistic programme's products in turn (programme.py).
    """
    with path.open("w") as out:
        for n in range(1, orders + 1):
            body = order_body(
                order_id=9_000_000 + n,
                customer_id=8_000_000 + rng.randint(1, customers),
                product_ids=programme.line_products(n) if vary_products else None,
            )
            headers = "|".join(
                [
                    "Content-Type: application/json",
                    f"X-Shopify-Hmac-Sha256: {webhook_hmac(body)}",
                    f"X-Shopify-Shop-Domain: {SHOP}",
                    "X-Shopify-Topic: orders/paid",
                    f"X-Shopify-Webhook-Id: e2e-{n}",
                    "X-Shopify-API-Version: 2025-10",
                ]
            )
            out.write(f"POST\t/webhooks/shopify\t{headers}\t{body.decode()}\n")


def commit_rate(url: str, clients: int, seconds: int = 5) -> float:
    """PostgreSQL's raw single-row INSERT commit rate (pgbench, a fresh table), on the same server, now."""
    libpq = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_commit")
        conn.execute("CREATE TABLE bench_commit (id bigserial PRIMARY KEY, body text)")
    script = Path(tempfile.mkdtemp(prefix="bench-pgbench-")) / "insert.sql"
    script.write_text("INSERT INTO bench_commit (body) VALUES ('x');\n")
    done = subprocess.run(
        ["pgbench", "-n", "-c", str(clients), "-j", str(clients), "-T", str(seconds), "-f", str(script), libpq],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(re.search(r"tps = ([\d.]+)", done.stdout).group(1))


def _posted_orders(conn: psycopg.Connection) -> int:
    """Orders that have their earn posting (a programme's milestone, tier and correction postings not counted)."""
    return conn.execute(
        "SELECT count(DISTINCT order_id) FROM postings WHERE source_type = 'order' AND kind = 'earn'"
    ).fetchone()[0]


class Progress:
    """The bench's polls of a run's progress, on one kept connection: a new connection per poll (as before) started
    a backend each time, with its catalogue loads, and PostgreSQL's share of the figure counted it with the orders'."""

    WAITING = "SELECT EXISTS (SELECT 1 FROM deliveries WHERE status = 'received')"

    def __init__(self, libpq: str):
        self.conn = psycopg.connect(libpq, autocommit=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.conn.close()

    def scalar(self, query: str):
        return self.conn.execute(query).fetchone()[0]

    def every_order_posted(self, orders: int) -> bool:
        # A probe of ix_deliveries_waiting first: while a delivery still waits, not every order is posted. Only then
        # count the orders posted over every posting, which every poll did before.
        return not self.scalar(self.WAITING) and _posted_orders(self.conn) >= orders


def _measure(
    name: str, url: str, env: dict[str, str], deliveries: Path, orders: int, workers: int, timeout: int, then=None
) -> dict:
    """Send the deliveries through gunicorn while `workers` Procfile workers drain them; time the first request to
    the last posting once every order is posted. `then(libpq, started)` runs next, while the processes still run."""
    libpq = url.replace("postgresql+psycopg", "postgresql")
    web, base = start_web(f"web-{name}", "plugin:create_app()", env)
    worker_processes = [start_worker(f"worker-{name}-{n}", env) for n in range(workers)]
    sampler = RssSampler({"web": [web], "worker": worker_processes})
    with (
        running(web, *worker_processes),
        sampler as memory,
        AutoAnalyze(libpq) as autoanalyze,
        Progress(libpq) as progress,
    ):
        wait_for_workers(env, workers)  # their start-up is not the orders' CPU
        time.sleep(1)  # let them block on the queue after their first sweep
        cpu = CpuAccount({
            "web": [web.pid], "workers": [w.pid for w in worker_processes],
            "postgres": named_roots("postgres"), "redis": named_roots("redis-server"),
        }).start()  # fmt: skip
        started = datetime.now(UTC)

        # wrk sends each delivery once; it is stopped once every one is stored (it would otherwise run on).
        sent = wrk(base, "replay.lua", str(deliveries), "once", connections=8, seconds=timeout,
                   until=lambda: progress.scalar("SELECT count(*) FROM deliveries") >= orders)  # fmt: skip
        wait_until(
            lambda: progress.every_order_posted(orders), timeout, f"not every order was posted within {timeout} s", 0.5
        )
        # Read now: the programme's later work (events still being delivered) is not the orders' figure.
        last_posted = progress.scalar("SELECT max(created_at) FROM postings")
        cpu.stop()
        extra = then(libpq, started) if then is not None else {}
    with psycopg.connect(libpq) as conn:
        first_received, last_received = conn.execute(
            "SELECT min(received_at), max(received_at) FROM deliveries"
        ).fetchone()
        stored, postings, waiting, orders_posted = conn.execute(
            "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM postings),"
            " (SELECT count(*) FROM deliveries WHERE status <> 'processed'),"
            " (SELECT count(DISTINCT order_id) FROM postings WHERE source_type = 'order' AND kind = 'earn')"
        ).fetchone()
        by_source = conn.execute(
            "SELECT source_type || ' ' || kind, count(*) FROM postings GROUP BY 1 ORDER BY 1"
        ).fetchall()
    verify = flask_cli(env, "verify-ledger")
    elapsed = (last_posted - started).total_seconds()
    return {
        "orders": orders,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "orders_per_second": round(orders / elapsed),
        "intake_seconds": round((last_received - first_received).total_seconds(), 1),
        "drain_lag_seconds": round((last_posted - last_received).total_seconds(), 1),
        "deliveries_stored": stored,
        "postings": postings,
        "orders_posted": orders_posted,
        "postings_by_source": dict(by_source),
        "not_processed": waiting,
        "sender_errors": sum(sent.get("errors", {}).values()),
        "verify_ledger": verify.strip().splitlines()[-1] if verify.strip() else "",
        # CPU each part spent from the first request until every order was posted, per order: what bounds the
        # figure on this machine (its cores times the elapsed time is all there was).
        "cpu_ms_per_order": cpu.per_order_ms(orders),
        "cpu_busy_share": cpu.busy_share(),
        "peak_web_mib": memory.peak_mib("web"),
        "peak_worker_mib": memory.peak_mib("worker"),
        "tables_analyzed": len(autoanalyze.analyzed),  # by the autovacuum stand-in (bench/autoanalyze.py)
        **extra,
        "command": sent.get("command", ""),
    }


def _fired(libpq: str) -> dict:
    """Orders per rule that contributed to their lot (`tier:<id>` is a tier's multiplier)."""
    with psycopg.connect(libpq) as conn:
        rules = conn.execute(
            "SELECT c->>'rule_id', count(*) FROM orders, jsonb_array_elements(lot->'contributions') AS c"
            " GROUP BY 1 ORDER BY 1"
        ).fetchall()
    return {"orders_by_rule": dict(rules)}


def _events_delivered(receiver: Receiver, timeout: int):
    """Waits (processes still running) until every recorded event reached the endpoint; returns their figures."""

    def counts(libpq: str) -> dict:
        with psycopg.connect(libpq) as conn:
            recorded, not_fanned_out, pending, delivered, last = conn.execute(
                "SELECT (SELECT count(*) FROM outbox_events),"
                " (SELECT count(*) FROM outbox_events WHERE fanned_out_at IS NULL),"
                " (SELECT count(*) FROM event_deliveries WHERE status = 'pending'),"
                " (SELECT count(*) FROM event_deliveries WHERE status = 'delivered'),"
                " (SELECT max(delivered_at) FROM event_deliveries)"
            ).fetchone()
        return {"recorded": recorded, "not_fanned_out": not_fanned_out, "pending": pending,
                "delivered": delivered, "last": last}  # fmt: skip

    def then(libpq: str, started: datetime) -> dict:
        def done() -> bool:
            now = counts(libpq)
            return now["not_fanned_out"] == 0 and now["pending"] == 0

        with suppress(TimeoutError):  # what is still pending is reported
            wait_until(done, timeout, "", 1.0)
        c = counts(libpq)
        return {
            "events_recorded": c["recorded"],
            "events_delivered": c["delivered"],
            "events_pending": c["not_fanned_out"] + c["pending"],
            "events_received": len(receiver.received.accepted),
            "events_bad_signatures": receiver.received.bad_signatures,
            # From the first request to the last event delivered: how far events trail the postings.
            "events_seconds": round((c["last"] - started).total_seconds(), 1) if c["last"] else None,
            **_fired(libpq),
        }

    return then


def run(
    orders: int = 20_000, workers: int = 3, timeout: int = 600, programme_timeout: int = 3600, rounds: int = 3
) -> dict:
    """The same deliveries into fresh databases, the base rule alone and the realistic programme alternating for
    `rounds` rounds; each side's figures are its median round's (decision 0085), with every round's orders/s."""
    deliveries = Path(tempfile.mkdtemp(prefix="bench-e2e-")) / "deliveries.txt"
    customers = max(1, orders // ORDERS_PER_CUSTOMER)
    write_deliveries(deliveries, orders, random.Random(5), customers=customers, vary_products=True)
    url, env = prepared_database("loyalty_bench_e2e")
    raw_1 = commit_rate(url, 1)
    raw_4 = commit_rate(url, 4)
    # Balance and tier pushes go to a local fake shop, answered at once, in both runs: an unreachable shop would
    # hold a worker for its retries (minutes for a tier push), and a real one is not ours to call.
    fake, fake_url = start_fake_shop("fake-shop-e2e", env)
    shop_api = {"SHOPIFY_API_BASE_URL": fake_url, "LOYALTY_EVENTS_ALLOW_LOOPBACK": "1"}
    sides: dict[str, list[dict]] = {"base": [], "programme": []}
    try:
        for _ in range(rounds):  # alternating, so both sides see the same drift of the machine's speed
            url, env = prepared_database("loyalty_bench_e2e")
            sides["base"].append(_measure("e2e", url, {**env, **shop_api}, deliveries, orders, workers, timeout))
            url, env = prepared_database("loyalty_bench_e2e_programme")
            receiver = Receiver(fail_rate=0.0, seed=5)  # its own per round: it counts the events it accepted
            receiver.start()
            try:
                receiver.secret = programme.seed(url, SHOP, receiver.url, (ENCRYPTION_KEY,), datetime.now(UTC))
                then = _events_delivered(receiver, timeout)
                measured = _measure("e2e-programme", url, {**env, **shop_api}, deliveries, orders, workers,
                                    programme_timeout, then=then)  # fmt: skip
                sides["programme"].append(measured)
            finally:
                receiver.stop()
                engine_for(url).dispose()  # the seed's pool: the next round drops and re-creates this database
    finally:
        fake.stop()
    base, realistic = median_round(sides["base"]), median_round(sides["programme"])
    return {
        **base,
        "customers": customers,
        "pg_commits_per_second_1_client": round(raw_1),
        "pg_commits_per_second_4_clients": round(raw_4),
        "programme": realistic,
        "programme_ratio": round(realistic["orders_per_second"] / base["orders_per_second"], 2),
    }


def median_round(measured: list[dict]) -> dict:
    """The round with the median orders/s (the lower middle one of an even count), with every round's orders/s."""
    ranked = sorted(measured, key=lambda each: each["orders_per_second"])
    middle = ranked[(len(ranked) - 1) // 2]
    every = [each["orders_per_second"] for each in measured]
    return {**middle, "rounds": len(measured), "rounds_orders_per_second": every}
