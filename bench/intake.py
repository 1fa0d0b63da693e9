"""Webhook intake: POST /webhooks/shopify (HMAC, inbox insert, signal) against a bare Flask endpoint, same server."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import psycopg

from bench.common import compare, order_body, prepared_database, webhook_hmac
from bench.cpu import round_with_cpu
from bench.harness import SHOP, RssSampler, database_name, running, start_web, wrk

TOPIC = "orders/paid"


def run(rounds: int = 3, seconds: int = 8, connections: int = 4) -> dict:
    url, env = prepared_database("loyalty_bench_intake")
    db_name = database_name("loyalty_bench_intake")
    body_file = Path(tempfile.mkdtemp(prefix="bench-intake-")) / "order.json"
    body = order_body()
    body_file.write_bytes(body)
    args = (str(body_file), webhook_hmac(body), SHOP, TOPIC)
    app, app_url = start_web("web-intake-app", "plugin:create_app()", env)
    runs: dict[str, list[dict]] = {"bare": [], "app": []}
    with running(app):
        bare, bare_url = start_web("web-intake-bare", "bench.bare_app:app", env)
        with running(bare), RssSampler({"web": [app]}) as memory:
            for _name, base in (("bare", bare_url), ("app", app_url)):  # warm up: imports, pools, plans
                wrk(base, "webhook.lua", *args, "warmup", connections=connections, seconds=2)
            for round_number in range(rounds):  # alternate, so both see the same machine noise
                for name, base, web, database in (("bare", bare_url, bare, None), ("app", app_url, app, db_name)):
                    load = partial(wrk, base, "webhook.lua", *args, f"r{round_number}", connections=connections,
                                   seconds=seconds)  # fmt: skip
                    runs[name].append(round_with_cpu(web.pid, database, load))
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        stored = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    return compare(runs, stored=stored, body_bytes=len(body), peak_web_mib=memory.peak_mib("web"),
                     connections=connections, seconds=seconds)  # fmt: skip
