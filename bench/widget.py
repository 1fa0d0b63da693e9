"""Widget read: the signed App Proxy GET /proxy/widget against a bare endpoint answering the same bytes."""

from __future__ import annotations

import random
import tempfile
import time
from functools import partial
from pathlib import Path
from urllib.parse import urlencode

import requests

from bench import seed
from bench.common import compare, prepared_database
from bench.cpu import round_with_cpu
from bench.harness import SECRET, SHOP, RssSampler, database_name, running, start_web, wrk
from plugin.platforms.shopify.adapter import proxy_signature

MEMBERS = 2000
SIGNED_URLS = 500
FIRST_CUSTOMER_ID = 7_000_000_000  # seed.py's customer ids are this plus the member id


def signed_path(customer_id: int, now: float) -> str:
    params = [
        ("shop", SHOP),
        ("logged_in_customer_id", str(customer_id)),
        ("path_prefix", "/apps/loyalty"),
        ("timestamp", str(int(now))),
    ]
    params.append(("signature", proxy_signature(params, SECRET)))
    return "/proxy/widget?" + urlencode(params)


def write_requests(path: Path, members: int, count: int, rng: random.Random) -> None:
    """Signed widget reads for random members, fresh (App Proxy signatures are good for 90 s)."""
    now = time.time()
    lines = [f"GET\t{signed_path(FIRST_CUSTOMER_ID + rng.randint(1, members), now)}\t\t" for _ in range(count)]
    path.write_text("\n".join(lines) + "\n")


def run(rounds: int = 3, seconds: int = 8, connections: int = 4) -> dict:
    url, env = prepared_database("loyalty_bench_widget")
    db_name = database_name("loyalty_bench_widget")
    seed.seed(url, 1, MEMBERS)
    workdir = Path(tempfile.mkdtemp(prefix="bench-widget-"))
    rng = random.Random(11)
    app, app_url = start_web("web-widget-app", "plugin:create_app()", env)
    with running(app):
        sample = requests.get(app_url + signed_path(FIRST_CUSTOMER_ID + 1, time.time()), timeout=10)
        sample.raise_for_status()
        (workdir / "widget.json").write_bytes(sample.content)
        bare, bare_url = start_web(
            "web-widget-bare", "bench.bare_app:app", {**env, "BENCH_WIDGET_BODY": str(workdir / "widget.json")}
        )
        runs: dict[str, list[dict]] = {"bare": [], "app": []}
        with running(bare), RssSampler({"web": [app]}) as memory:
            for round_number in range(rounds + 1):
                write_requests(workdir / "reads.txt", MEMBERS, SIGNED_URLS, rng)
                for name, base, web, database in (("bare", bare_url, bare, None), ("app", app_url, app, db_name)):
                    seconds_now = 2 if round_number == 0 else seconds  # round 0 warms both up
                    load = partial(
                        wrk,
                        base,
                        "replay.lua",
                        str(workdir / "reads.txt"),
                        connections=connections,
                        seconds=seconds_now,
                    )
                    result = round_with_cpu(web.pid, database, load)
                    if round_number:
                        runs[name].append(result)
    return compare(runs, body_bytes=len(sample.content), members=MEMBERS, peak_web_mib=memory.peak_mib("web"),
                   connections=connections, seconds=seconds)  # fmt: skip
