"""Times one shop's daily expiry run: N members (10,000 by default) with five earnings each over two years and one
redemption, per-lot expiry after 12 months with two reminders, then the outbox's delivery of what it announced.

`python -m bench.expiry [--members N]` prints one JSON line. The baseline, in the same run, streams the same
members' postings (what the run must read anyway) with no expiry computed.
"""

from __future__ import annotations

import argparse
import json
import time

import psycopg

from bench.common import prepared_database
from bench.harness import SHOP

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


def seed(url: str, members: int) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        shop_id = conn.execute("SELECT id FROM shops WHERE domain = %s", (SHOP,)).fetchone()[0]
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


def run(members: int = 10_000) -> dict:
    url, _env = prepared_database("loyalty_bench_expiry")
    shop_id = seed(url, members)
    from sqlalchemy import func, select

    from plugin.db import transaction
    from plugin.models import OutboxEvent, Posting
    from plugin.services import event_delivery, expiry

    with transaction(url) as session:
        expiry.save_policy(session, shop_id, {"policy": "per_lot", "months": 12, "reminder_days": [30, 7]})
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
        events = session.execute(select(func.count()).select_from(OutboxEvent)).scalar_one()
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
