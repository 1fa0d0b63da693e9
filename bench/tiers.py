"""Times the tier "who moves" preview: N members (100,000 by default) with three paid orders each, one in ten
partly refunded, under a current programme, against a proposal that changes the metric's thresholds.

`python -m bench.tiers [--members N]` prints one JSON line. The baseline, in the same run, reads and decodes the
same orders' lots with no tier computed. The issue's goal: under 10 s for 100,000 members.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psycopg

from bench.common import prepared_database
from bench.harness import SHOP

ORDERS_PER_MEMBER = 3

SEED_ORDERS = """
INSERT INTO orders (shop_id, order_id, name, member_id, created_seen, paid_at, points_held, support_delta,
                    unpaid_reversal, updated_at, lot)
SELECT %(shop)s, o, '#T' || o, %(first_member)s + o %% %(members)s, false, paid, pts, 0, 0, paid,
       jsonb_build_object(
         'earn_points', 1, 'earn_per_amount', '1', 'shipping', '0', 'tip', '0', 'points', pts,
         'rule_version', 'earn-1+settings-1+rules-1', 'available_at', NULL, 'reason', NULL,
         'excluded_lines', '[]'::jsonb,
         'lines', jsonb_build_array(
            jsonb_build_object('line_id', o * 10 + 1, 'quantity', 1, 'eligible', (amt * 0.6)::numeric(12, 2)::text),
            jsonb_build_object('line_id', o * 10 + 2, 'quantity', 2, 'eligible', (amt * 0.4)::numeric(12, 2)::text)),
         'contributions', jsonb_build_array(jsonb_build_object(
            'rule_id', 'base', 'rule_version', 1, 'kind', 'base', 'points', pts, 'explanation', 'base',
            'lines', jsonb_build_array(jsonb_build_array(o * 10 + 1, 1, (amt * 0.6)::numeric(12, 2)::text),
                                       jsonb_build_array(o * 10 + 2, 2, (amt * 0.4)::numeric(12, 2)::text)),
            'rate', '1', 'shipping', '0', 'tip', '0')),
         'explanation', pts || ' points')
FROM (SELECT o, ((o::bigint * 7919) %% 40000 / 100.0)::numeric(12, 2) AS amt,
             ((o::bigint * 7919) %% 40000 / 100)::int AS pts,
             now() - (o %% 700) * interval '1 day' AS paid
      FROM generate_series(1, %(orders)s) AS o) AS seeded
"""
SEED_REFUNDS = """
INSERT INTO refunds (shop_id, order_id, refund_id, facts, created_at)
SELECT %(shop)s, o, 900000000 + o, jsonb_build_object('line_quantities', jsonb_build_object((o * 10 + 2)::text, 1),
                                                      'shipping', '0'), now()
FROM generate_series(1, %(orders)s) AS o WHERE o %% 10 = 0
"""


def programme(thresholds: tuple[str, str, str]) -> dict:
    return {
        "metric": "spend",
        "period": "calendar_year",
        "grace_days": 14,
        "tiers": [
            {"id": "bronze", "name": "Bronze", "threshold": thresholds[0]},
            {"id": "silver", "name": "Silver", "threshold": thresholds[1], "multiplier": "1.25"},
            {"id": "gold", "name": "Gold", "threshold": thresholds[2], "multiplier": "2", "free_shipping": True},
        ],
    }


CURRENT = programme(("100", "300", "600"))
PROPOSED = programme(("150", "400", "700"))


def seed(url: str, members: int) -> int:
    orders = members * ORDERS_PER_MEMBER
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        shop_id = conn.execute("SELECT id FROM shops WHERE domain = %s", (SHOP,)).fetchone()[0]
        conn.execute(
            "INSERT INTO members (shop_id, customer_id, email, balance, enrolled_at) "
            "SELECT %s, 700000 + m, 'm' || m || '@example.com', 0, now() FROM generate_series(1, %s) AS m",
            (shop_id, members),
        )
        first = conn.execute("SELECT min(id) FROM members WHERE shop_id = %s", (shop_id,)).fetchone()[0]
        conn.execute(SEED_ORDERS, {"shop": shop_id, "first_member": first, "members": members, "orders": orders})
        conn.execute(SEED_REFUNDS, {"shop": shop_id, "orders": orders})
        conn.execute("ANALYZE orders")
        conn.execute("ANALYZE members")
        return shop_id


def read_lots_only(url: str, shop_id: int) -> float:
    """The same-run baseline: seconds to stream and decode the same orders' lots, with no tier computed."""
    from sqlalchemy import select

    from plugin.db import transaction
    from plugin.models import Order

    started = time.perf_counter()
    with transaction(url) as session:
        rows = session.execute(
            select(Order.member_id, Order.order_id, Order.name, Order.paid_at, Order.lot, Order.cancelled_at)
            .where(Order.shop_id == shop_id, Order.member_id.is_not(None), Order.lot.is_not(None))
            .order_by(Order.member_id)
            .execution_options(yield_per=5000)
        )
        for _row in rows:
            pass
    return time.perf_counter() - started


def run(members: int = 100_000) -> dict:
    url, _env = prepared_database("loyalty_bench_tiers")
    shop_id = seed(url, members)
    from plugin.db import transaction
    from plugin.services import shops, tier_preview, tier_sets

    with transaction(url) as session:
        tier_sets.save(session, shops.get(session, SHOP), CURRENT, "bench")
    baseline = read_lots_only(url, shop_id)
    load_average = round(os.getloadavg()[0], 1)  # the machine is shared: say how busy it was
    started = time.perf_counter()
    with transaction(url) as session:
        result = tier_preview.preview(session, shops.get(session, SHOP), PROPOSED, seconds=120)
    seconds = time.perf_counter() - started
    return {
        "goal_seconds": 10,
        "load_average_at_call": load_average,
        "members": members,
        "orders": members * ORDERS_PER_MEMBER,
        "read_lots_seconds": round(baseline, 2),
        "ratio_to_reading": round(seconds / baseline, 1),
        "complete": result["complete"],
        "members_computed": result["members_computed"],
        "seconds": round(seconds, 2),
        "members_per_second": round(result["members_computed"] / seconds),
        "moves": sum(m["members"] for m in result["moves"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100_000)
    print(json.dumps(run(parser.parse_args().members)))


if __name__ == "__main__":
    main()
