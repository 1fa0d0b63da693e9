"""End to end: 20,000 signed orders/paid deliveries through the web process into ledger postings, Procfile workers."""

from __future__ import annotations

import random
import re
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench.common import order_body, prepared_database, webhook_hmac
from bench.harness import SHOP, RssSampler, flask_cli, running, start_web, start_worker, wait_until, wrk

CUSTOMERS = 2000


def write_deliveries(path: Path, orders: int, rng: random.Random) -> None:
    """One signed orders/paid delivery per line (distinct orders, customers drawn at random), for replay.lua."""
    with path.open("w") as out:
        for n in range(1, orders + 1):
            body = order_body(order_id=9_000_000 + n, customer_id=8_000_000 + rng.randint(1, CUSTOMERS))
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


def run(orders: int = 20_000, workers: int = 3, timeout: int = 600) -> dict:
    url, env = prepared_database("loyalty_bench_e2e")
    libpq = url.replace("postgresql+psycopg", "postgresql")
    raw_1 = commit_rate(url, 1)
    raw_4 = commit_rate(url, 4)
    deliveries = Path(tempfile.mkdtemp(prefix="bench-e2e-")) / "deliveries.txt"
    write_deliveries(deliveries, orders, random.Random(5))
    web, base = start_web("web-e2e", "plugin:create_app()", env)
    worker_processes = [start_worker(f"worker-e2e-{n}", env) for n in range(workers)]
    with running(web, *worker_processes), RssSampler({"web": [web], "worker": worker_processes}) as memory:
        time.sleep(3)  # let the workers connect and block on the queue
        started = datetime.now(UTC)

        def count(table: str) -> int:
            with psycopg.connect(libpq) as conn:
                return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

        # wrk sends each delivery once; it is stopped once every one is stored (it would otherwise run on).
        sent = wrk(base, "replay.lua", str(deliveries), "once", connections=8, seconds=timeout,
                   until=lambda: count("deliveries") >= orders)  # fmt: skip
        wait_until(lambda: count("postings") >= orders, timeout, f"not every order was posted within {timeout} s", 0.5)
    with psycopg.connect(libpq) as conn:
        first_received, last_received = conn.execute(
            "SELECT min(received_at), max(received_at) FROM deliveries"
        ).fetchone()
        last_posted = conn.execute("SELECT max(created_at) FROM postings").fetchone()[0]
        stored, postings, waiting = conn.execute(
            "SELECT (SELECT count(*) FROM deliveries), (SELECT count(*) FROM postings),"
            " (SELECT count(*) FROM deliveries WHERE status <> 'processed')"
        ).fetchone()
    verify = flask_cli(env, "verify-ledger")
    elapsed = (last_posted - started).total_seconds()
    return {
        "orders": orders,
        "workers": workers,
        "seconds": round(elapsed, 1),
        "orders_per_second": round(orders / elapsed),
        "intake_seconds": round((last_received - first_received).total_seconds(), 1),
        "drain_lag_seconds": round((last_posted - last_received).total_seconds(), 1),
        "pg_commits_per_second_1_client": round(raw_1),
        "pg_commits_per_second_4_clients": round(raw_4),
        "deliveries_stored": stored,
        "postings": postings,
        "not_processed": waiting,
        "sender_errors": sum(sent.get("errors", {}).values()),
        "verify_ledger": verify.strip().splitlines()[-1] if verify.strip() else "",
        "peak_web_mib": memory.peak_mib("web"),
        "peak_worker_mib": memory.peak_mib("worker"),
        "command": sent.get("command", ""),
    }
