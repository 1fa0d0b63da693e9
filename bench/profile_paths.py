"""cProfile of the two hot web paths in one process: the webhook intake and the widget read (issue #21).

    python -m bench.profile_paths [--requests 3000] [--top 15]

Runs the app in-process through Flask's test client (no gunicorn, no wrk) against a fresh bench database with the
widget benchmark's 2,000 members, and prints each path's top entries by own time and by cumulative time. The wall
times it prints include cProfile's overhead: use it to see where the time goes, and bench.run for speed.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
import uuid

from bench import seed
from bench.common import order_body, prepared_database, webhook_hmac
from bench.harness import SHOP
from bench.widget import FIRST_CUSTOMER_ID, MEMBERS, signed_path
from plugin import create_app
from plugin.config import Settings


def profiled(label: str, requests: int, send, top: int) -> None:
    send(0)  # the first request opens pools and learns the shop's id
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for number in range(1, requests + 1):
        send(number)
    profile.disable()
    seconds = time.perf_counter() - started
    print(f"\n== {label}: {requests} requests, {seconds / requests * 1000:.3f} ms each under cProfile")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(top)
        print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    url, env = prepared_database("loyalty_bench_profile")
    seed.seed(url, 1, MEMBERS)
    os.environ.update(env)  # the settings the Procfile's web process reads (DATABASE_URL, REDIS_URL, secrets)
    client = create_app(Settings.from_env()).test_client()
    body = order_body()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": "orders/paid",
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Hmac-Sha256": webhook_hmac(body),
    }

    def deliver(_number: int) -> None:
        answer = client.post(
            "/webhooks/shopify", data=body, headers={**headers, "X-Shopify-Webhook-Id": str(uuid.uuid4())}
        )
        assert answer.status_code == 200, answer.get_data(as_text=True)

    paths: list[str] = []

    def read(number: int) -> None:
        answer = client.get(paths[number % len(paths)])
        assert answer.status_code == 200, answer.get_data(as_text=True)

    profiled("intake: POST /webhooks/shopify", args.requests, deliver, args.top)
    # Signed now, after the intake's run: an App Proxy signature older than 90 s is refused as stale.
    paths.extend(signed_path(FIRST_CUSTOMER_ID + 1 + n % MEMBERS, time.time()) for n in range(500))
    profiled("widget: GET /proxy/widget (500 shoppers, read in turn)", args.requests, read, args.top)


if __name__ == "__main__":
    main()
