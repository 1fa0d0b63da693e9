"""The drain alone: Python CPU and statements per order in one process, and orders/s by worker count and batch size.

Every figure is taken twice in the same run, alternating: with the set-based apply of new paid orders (the
default) and with every delivery one by one (LOYALTY_INBOX_SET_BASED=0), the same-run baseline. The CPU and
statements are also taken for a shop with member rules (a tier programme with multipliers and an entry reward, a
spend threshold, a punch card and a signup bonus: MEMBER_RULES), both ways.

`python -m bench.drain --member-rules [--orders N]` prints only the CPU and statements figures, base rules and
member rules, both ways (no workers: for a loaded machine).
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

import psycopg
from sqlalchemy import event

from bench.common import order_body, prepared_database
from bench.harness import SHOP, drop_database, running, start_worker, wait_until
from plugin import inbox, jobs
from plugin.config import Settings
from plugin.db import engine_for

CONFIGURATIONS = ((1, 50), (3, 200), (3, 50))  # (Procfile workers, LOYALTY_INBOX_BATCH)
# This run's own database (as the tests name theirs): a second run on the machine must not drop it under this one.
DATABASE = f"loyalty_bench_drain_{os.getpid()}"
# A programme with member rules that the bench's orders (388.00 each) move: tiers crossed within a few orders,
# with multipliers and an entry reward, a spend threshold, a punch card and the signup bonus.
MEMBER_RULES = {
    "tiers": {
        "metric": "spend",
        "period": "calendar_year",
        "tiers": [
            {"id": "silver", "name": "Silver", "threshold": "300", "multiplier": "1.25"},
            {"id": "gold", "name": "Gold", "threshold": "1000", "multiplier": "1.5", "entry_reward": 100},
        ],
    },
    "milestones": {
        "thresholds": [{"id": "big", "amount": "700.00", "period": "lifetime", "points": 200}],
        "punch_cards": [{"id": "card", "every": 3, "min_subtotal": "5.00", "points": 50}],
        "signup": {"points": 100},
    },
}


def _fill(url: str, orders: int) -> None:
    """Store signed-and-verified-equivalent deliveries straight into the inbox (the intake is measured elsewhere)."""
    engine = engine_for(url.replace("postgresql://", "postgresql+psycopg://"))
    rng = random.Random(1)
    for n in range(orders):
        body = order_body(9_000_000 + n, 8_000_000 + rng.randint(1, 2000))
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"d-{n}", body))
    engine.dispose()  # the next configuration drops and re-creates this database


def _member_rules(url: str) -> None:
    """Give the bench shop MEMBER_RULES (tiers and milestones), as the admin saves them."""
    from plugin.db import transaction
    from plugin.services import shops, tier_sets
    from plugin.services.milestones import settings as milestone_settings

    with transaction(url) as session:
        shop = shops.get(session, SHOP)
        tier_sets.save(session, shop, MEMBER_RULES["tiers"], "bench")
        milestone_settings.save(session, shop, MEMBER_RULES["milestones"], "bench")


def cpu_per_order(set_based: bool, orders: int = 3000, member_rules: bool = False) -> tuple[float, float]:
    """Milliseconds of this process's CPU per order for inbox.drain (PostgreSQL's own CPU not included), and the
    SQL statements sent per order (member_rules: in a shop with MEMBER_RULES)."""
    url, _ = prepared_database(DATABASE)
    if member_rules:
        _member_rules(url.replace("postgresql://", "postgresql+psycopg://"))
    _fill(url, orders)
    engine = engine_for(url.replace("postgresql://", "postgresql+psycopg://"))
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine, "before_cursor_execute", count)
    started = time.process_time()
    outcomes = inbox.drain(url.replace("postgresql://", "postgresql+psycopg://"), set_based=set_based)
    spent = time.process_time() - started
    event.remove(engine, "before_cursor_execute", count)
    engine.dispose()
    if outcomes.get(inbox.PROCESSED) != orders:
        raise RuntimeError(f"drain processed {dict(outcomes)} of {orders}")
    return round(1000 * spent / orders, 2), round(statements / orders, 2)


def workers_throughput(workers: int, batch: int, set_based: bool, orders: int = 6000) -> int:
    """Orders/s for `workers` Procfile workers draining a full inbox, from the first job to the last posting."""
    url, env = prepared_database(DATABASE)
    env = {**env, "LOYALTY_INBOX_BATCH": str(batch), "LOYALTY_INBOX_SET_BASED": "1" if set_based else "0"}
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
        mismatched = conn.execute(
            "SELECT count(*) FROM members m WHERE balance <> (SELECT coalesce(sum(points), 0) FROM postings p "
            "WHERE p.shop_id = m.shop_id AND p.member_id = m.id)"
        ).fetchone()[0]
    if mismatched:
        raise RuntimeError(f"{mismatched} members' balances differ from their postings")
    return round(orders / (last - started).total_seconds())


def member_rules_cpu(orders: int = 3000) -> dict:
    """CPU and statements per order, base rules and MEMBER_RULES, each set-based and one by one, alternating."""
    figures: dict = {"orders": orders}
    try:
        for label, member_rules in (("base rules", False), ("member rules", True)):
            one_by_one = cpu_per_order(False, orders, member_rules)
            set_based = cpu_per_order(True, orders, member_rules)
            figures[label] = {
                "set_based": {"python_cpu_ms_per_order": set_based[0], "statements_per_order": set_based[1]},
                "one_by_one": {"python_cpu_ms_per_order": one_by_one[0], "statements_per_order": one_by_one[1]},
                "cpu_ratio_to_one_by_one": round(set_based[0] / one_by_one[0], 2),
            }
    finally:
        drop_database(DATABASE)
    figures["member_rules_cpu_over_base_rules"] = round(
        figures["member rules"]["set_based"]["python_cpu_ms_per_order"]
        / figures["base rules"]["set_based"]["python_cpu_ms_per_order"],
        2,
    )
    return figures


def run(orders: int = 6000) -> dict:
    """Each figure set-based and one by one, alternating, so both see the same load; the database goes at the end."""
    try:
        one_by_one_cpu, one_by_one_statements = cpu_per_order(set_based=False, orders=orders // 2)
        cpu, statements = cpu_per_order(set_based=True, orders=orders // 2)
        member_one_by_one = cpu_per_order(set_based=False, orders=orders // 2, member_rules=True)
        member = cpu_per_order(set_based=True, orders=orders // 2, member_rules=True)
        rates, baseline = {}, {}
        for w, b in CONFIGURATIONS:
            config = f"{w} worker{'s' if w > 1 else ''}, batch {b}"
            baseline[config] = workers_throughput(w, b, set_based=False, orders=orders)
            rates[config] = workers_throughput(w, b, set_based=True, orders=orders)
    finally:
        drop_database(DATABASE)
    return {
        "orders": orders,
        "python_cpu_ms_per_order": cpu,
        "statements_per_order": statements,
        "orders_per_second": rates,
        "one_by_one": {
            "python_cpu_ms_per_order": one_by_one_cpu,
            "statements_per_order": one_by_one_statements,
            "orders_per_second": baseline,
        },
        "cpu_ratio_to_one_by_one": round(cpu / one_by_one_cpu, 2),
        "member_rules": {
            "python_cpu_ms_per_order": member[0],
            "statements_per_order": member[1],
            "one_by_one": {
                "python_cpu_ms_per_order": member_one_by_one[0],
                "statements_per_order": member_one_by_one[1],
            },
            "cpu_ratio_to_one_by_one": round(member[0] / member_one_by_one[0], 2),
        },
        "throughput_ratio_to_one_by_one": {config: round(rates[config] / baseline[config], 2) for config in rates},
    }


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member-rules", action="store_true", help="only the CPU and statements figures")
    parser.add_argument("--orders", type=int, default=1000, help="stored orders per drain")
    args = parser.parse_args()
    if not args.member_rules:
        parser.error("the full section runs through bench.run: python -m bench.run --only drain")
    print(json.dumps(member_rules_cpu(args.orders), sort_keys=True))
