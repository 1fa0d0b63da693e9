"""The drain's Python in one process, base rule against the realistic programme (issue #21): thread CPU per order
and cProfile's top entries.

    python -m bench.profile_drain [--orders 2000] [--warmup 6000] [--rounds 3] [--sides base,programme]
        [--profile] [--top 25]

Each side gets a fresh bench database (the realistic programme's from bench/programme.py, or the base rule alone),
deliveries shaped as the end-to-end run's (bench/e2e.py: distinct orders, one shopper in ten orders, the programme's
products in turn) stored straight into the inbox, `--warmup` of them drained first unmeasured (so members have a
history, as midway through the end-to-end run), then the next `--orders` drained by inbox.drain in this thread, in
batches of the worker's default size, timed by time.thread_time: this process's Python and driver, not PostgreSQL's.
The sides alternate for `--rounds` rounds and the medians are printed as JSON; `--profile` also runs each side once
under cProfile and prints its top entries by own and by cumulative time (cProfile's overhead included there).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
import statistics
import time
from datetime import UTC, datetime

from bench import programme
from bench.common import order_body, prepared_database
from bench.harness import ENCRYPTION_KEY, SHOP, drop_database
from plugin import inbox
from plugin.config import Settings
from plugin.db import engine_for

DATABASE = "loyalty_bench_profile_drain"
BATCH = Settings.inbox_batch_size  # the worker's default LOYALTY_INBOX_BATCH
RECEIVER = "http://127.0.0.1:9/events"  # events are recorded and fanned out, never delivered here


def _store(url: str, first: int, count: int, customers: int) -> None:
    """Deliveries first..first+count-1 of the end-to-end run's sequence, straight into the inbox."""
    engine = engine_for(url)
    for n in range(first, first + count):
        rng = random.Random(n)  # each delivery's shopper drawn from its own number: the same whatever the split
        body = order_body(9_000_000 + n, 8_000_000 + rng.randint(1, customers), programme.line_products(n))
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"p-{n}", body))


def prepared(side: str, orders: int, warmup: int) -> str:
    """A fresh database for `side` ("base" or "programme"), its warm-up drained and `orders` deliveries waiting."""
    url, _ = prepared_database(DATABASE)
    url = url.replace("postgresql://", "postgresql+psycopg://")
    if side == "programme":
        programme.seed(url, SHOP, RECEIVER, (ENCRYPTION_KEY,), datetime.now(UTC))
    customers = max(1, (warmup + orders) // 10)
    _store(url, 1, warmup, customers)
    inbox.drain(url, BATCH)
    _store(url, warmup + 1, orders, customers)
    return url


def drained(url: str, orders: int, profile: cProfile.Profile | None = None) -> float:
    """Milliseconds of this thread's CPU per order to drain the waiting deliveries."""
    started = time.thread_time()
    if profile is not None:
        profile.enable()
    outcomes = inbox.drain(url, BATCH)
    if profile is not None:
        profile.disable()
    spent = time.thread_time() - started
    engine_for(url).dispose()  # the next side drops and re-creates this database
    if outcomes.get(inbox.PROCESSED) != orders:
        raise RuntimeError(f"drain processed {dict(outcomes)} of {orders}")
    return 1000 * spent / orders


def top(profile: cProfile.Profile, count: int) -> str:
    out = io.StringIO()
    for order in ("tottime", "cumulative"):
        pstats.Stats(profile, stream=out).sort_stats(order).print_stats(count)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sides", default="base,programme")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    sides = args.sides.split(",")
    figures: dict[str, list[float]] = {side: [] for side in sides}
    try:
        for _ in range(args.rounds):
            for side in sides:
                figures[side].append(drained(prepared(side, args.orders, args.warmup), args.orders))
        if args.profile:
            for side in sides:
                profile = cProfile.Profile(time.thread_time)  # CPU, not the wait for PostgreSQL
                drained(prepared(side, args.orders, args.warmup), args.orders, profile)
                print(f"\n== {side}: {args.orders} orders under cProfile\n{top(profile, args.top)}")
    finally:
        drop_database(DATABASE)
    result = {f"{side}_ms_per_order": round(statistics.median(v), 3) for side, v in figures.items() if v}
    result |= {f"{side}_rounds": [round(x, 3) for x in v] for side, v in figures.items()}
    print(json.dumps({"orders": args.orders, "warmup": args.warmup, **result}, sort_keys=True))


if __name__ == "__main__":
    main()
