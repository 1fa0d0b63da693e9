"""Times one shop's daily expiry run: N members (10,000 by default) with five earnings each over two years and one
redemption, per-lot expiry after 12 months with two reminders, then the outbox's delivery of what it announced.

`python -m bench.expiry [--members N]` prints one JSON line. Two baselines in the same run: streaming the same
members' postings (what the run must read anyway) with no expiry computed, and the one-member path (the batch's
fallback, the run as it was before it became set-based) on a second shop seeded alike with a fifth of the members.
"""

from __future__ import annotations

import argparse
import json
import time

import psycopg

from bench.common import prepared_database
from bench.harness import SHOP, flask_cli

OLD_PATH_SHOP = "bench-one-by-one.myshopify.com"

EARNINGS_PER_MEMBER = 5

SEED_POSTINGS = """
INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,
                      idempotency_key, available_at, actor, created_at)
SELECT %(shop)s, m.id, 'earn', 50 + (m.id * 7 + e) %% 200, 0, 'order', m.id || '-' || e, 'bench',
       'bench:' || m.id || ':' || e, now() - ((e * 150 + m.id %% 90) * interval '1 day'), 'system', now()
FROM members m CROSS JOIN (SELECT %(earning)s AS e) AS one
WHERE m.shop_id = %(shop)s
"""
SEED_REDEMPTIONS = """
INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,
                      idempotency_key, actor, created_at)
SELECT %(shop)s, m.id, 'redeem', -60, 0, 'redemption', m.id::text, 'bench', 'bench:redeem:' || m.id, 'shopper', now()
FROM members m WHERE m.shop_id = %(shop)s
"""


def seed(url: str, members: int, domain: str = SHOP) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        shop_id = conn.execute("SELECT id FROM shops WHERE domain = %s", (domain,)).fetchone()[0]
        conn.execute(
            "INSERT INTO members (shop_id, customer_id, email, balance, enrolled_at) "
            "SELECT %s, 800000 + m, 'x' || m || '@example.com', 0, now() FROM generate_series(1, %s) AS m",
            (shop_id, members),
        )
        # One posting per member per statement (the ledger's trigger allows no more), oldest earning first.
        for earning in range(EARNINGS_PER_MEMBER, 0, -1):
            conn.execute(SEED_POSTINGS, {"shop": shop_id, "earning": earning})
        conn.execute(SEED_REDEMPTIONS, {"shop": shop_id})
        conn.execute("ANALYZE postings")
        conn.execute("ANALYZE members")
        return shop_id


def read_postings_only(url: str, shop_id: int) -> float:
    """The same-run baseline: seconds to stream the members' postings, member by member, computing nothing."""
    from sqlalchemy import select

    from plugin.db import transaction
    from plugin.models import Member
    from plugin.services import expiry

    started = time.perf_counter()
    with transaction(url) as session:
        member_ids = session.scalars(select(Member.id).where(Member.shop_id == shop_id).order_by(Member.id)).all()
        for member_id in member_ids:
            expiry.moves(session, shop_id, member_id)
    return time.perf_counter() - started


def one_by_one(url: str, shop_id: int) -> tuple[float, int]:
    """The other baseline: the same run with every batch on the one-member path; (seconds, points expired)."""
    from plugin.services import expiry, expiry_batch

    def batch_off(*_args, **_kwargs):
        raise RuntimeError("bench: the one-member path")

    set_based = expiry_batch.run_batch
    expiry_batch.run_batch = batch_off
    quiet = expiry.log.disabled
    expiry.log.disabled = True  # one logged traceback per batch is not what is measured
    try:
        started = time.perf_counter()
        report = expiry.run_shop(url, shop_id)
        return time.perf_counter() - started, report.points_expired
    finally:
        expiry_batch.run_batch = set_based
        expiry.log.disabled = quiet


def run(members: int = 10_000) -> dict:
    url, env = prepared_database("loyalty_bench_expiry")
    shop_id = seed(url, members)
    flask_cli(env, "shops", "add", OLD_PATH_SHOP, "--token", "shpat_bench")
    old_members = max(members // 5, 1)
    old_shop_id = seed(url, old_members, OLD_PATH_SHOP)
    from sqlalchemy import func, select

    from plugin.db import transaction
    from plugin.models import OutboxEvent, Posting
    from plugin.services import event_delivery, expiry

    with transaction(url) as session:
        for shop in (shop_id, old_shop_id):
            expiry.save_policy(session, shop, {"policy": "per_lot", "months": 12, "reminder_days": [30, 7]})
    old_seconds, old_expired = one_by_one(url, old_shop_id)
    baseline = read_postings_only(url, shop_id)
    started = time.perf_counter()
    report = expiry.run_shop(url, shop_id)
    seconds = time.perf_counter() - started
    again_started = time.perf_counter()
    again = expiry.run_shop(url, shop_id)  # the day's run is done: nothing twice
    again_seconds = time.perf_counter() - again_started
    with transaction(url) as session:
        expired = session.execute(
            select(func.coalesce(func.sum(Posting.points), 0)).where(
                Posting.shop_id == shop_id, Posting.kind == "expire"
            )
        ).scalar_one()
        events = session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()  # both shops
    fan_started = time.perf_counter()
    fanned = 0
    while handled := event_delivery.fan_out(url):
        fanned += handled
    fan_seconds = time.perf_counter() - fan_started
    return {
        "members": members,
        "postings": members * (EARNINGS_PER_MEMBER + 1),
        "read_postings_seconds": round(baseline, 2),
        "seconds": round(seconds, 2),
        "ratio_to_reading": round(seconds / baseline, 1),
        "members_per_second": round(members / seconds),
        "one_by_one_members": old_members,
        "one_by_one_seconds": round(old_seconds, 2),
        "one_by_one_members_per_second": round(old_members / old_seconds),
        "one_by_one_points_expired": old_expired,
        "speedup_over_one_by_one": round((members / seconds) / (old_members / old_seconds), 1),
        "points_expired": report.points_expired,
        "expire_postings_sum": int(expired),
        "reminders": report.reminders,
        "events_recorded": events,
        "second_run_already_done": again.already_done,
        "second_run_seconds": round(again_seconds, 3),
        "events_fanned_out": fanned,
        "fan_out_seconds": round(fan_seconds, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=10_000)
    print(json.dumps(run(parser.parse_args().members)))


if __name__ == "__main__":
    main()
