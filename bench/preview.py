"""Times the rule preview: seeds a shop with N paid orders (100,000 by default) and replays 30 days of them.

Each seeded order has the lot the current rules give it (made by the programme's own `build_lot`, as the
webhooks would), and one order in twenty has a partial refund, so both sides of the preview do real work.

`python -m bench.preview [--orders N]` prints one JSON line: orders replayed, seconds, and whether the replay
finished inside the preview's own time bound. The issue's target is under 10 s for 100,000 orders.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import psycopg

from bench.common import prepared_database
from bench.harness import SHOP

MEMBERS = 10_000
PRODUCTS = 50

# Three lines per order, money as strings, product ids among the cached products; paid in the last 29 days.
SEED_ORDERS = """
INSERT INTO orders (shop_id, order_id, name, member_id, created_seen, paid_at, points_held, support_delta,
                    unpaid_reversal, updated_at, facts)
SELECT %(shop)s, o, '#P' || o, %(first_member)s + o %% %(members)s, false, paid, 0, 0, 0, paid,
       jsonb_build_object(
         'paid_at', to_char(paid AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"+00:00"'),
         'rules_version', 1, 'member_tags', CASE WHEN o %% 5 = 0 THEN '["card-member"]'::jsonb ELSE '[]'::jsonb END,
         'name', '#P' || o, 'currency', 'USD', 'test', false, 'taxes_included', false,
         'shipping', '0', 'shipping_tax', '0', 'tip', '0',
         'lines', jsonb_build_array(
           jsonb_build_array(o * 10 + 1, 1 + o %% 3, ((o * 37) %% 20000 / 100.0)::numeric(12, 2)::text, '0', '0',
                             false, 1000 + o %% %(products)s, NULL),
           jsonb_build_array(o * 10 + 2, 1, ((o * 91) %% 5000 / 100.0)::numeric(12, 2)::text, '0.50', '0', false,
                             1000 + (o * 7) %% %(products)s, NULL),
           jsonb_build_array(o * 10 + 3, 2, '19.98', '0', '0', false, 1000 + (o * 13) %% %(products)s, NULL)))
FROM (SELECT o, now() - (o %% 29) * interval '1 day' - (o %% 86400) * interval '1 second' AS paid
      FROM generate_series(1, %(orders)s) AS o) AS seeded
"""

CURRENT = {
    "rules": [
        {"type": "base_rate", "points": 1, "per_amount": "1"},
        {"type": "multiplier", "multiplier": "2", "match": {"product_types": ["Outerwear"]}},
    ]
}
PROPOSED = {
    "time_zone": "America/New_York",
    "rules": [
        {"type": "base_rate", "points": 2, "per_amount": "1", "cap_per_order": 2000},
        {"type": "customer_segment", "tag": "card-member", "points": 3, "per_amount": "1"},
        {"type": "exclusion", "match": {"vendors": ["Giftco"]}},
        {"type": "multiplier", "multiplier": "3", "match": {"product_types": ["Outerwear"], "tags": ["winter"]}},
        {"type": "fixed_points", "points": 25, "min_subtotal": "50"},
        {"type": "campaign", "name": "Weekend", "multiplier": "2", "starts_at": "2020-01-01T00:00:00",
         "ends_at": "2100-01-01T00:00:00", "match": {"vendors": ["Acme"]}},
    ],
}  # fmt: skip


def seed(url: str, orders: int) -> int:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        shop_id = conn.execute("SELECT id FROM shops WHERE domain = %s", (SHOP,)).fetchone()[0]
        conn.execute(
            "INSERT INTO members (shop_id, customer_id, email, balance, enrolled_at) "
            "SELECT %s, 500000 + m, 'm' || m || '@example.com', 0, now() FROM generate_series(1, %s) AS m",
            (shop_id, MEMBERS),
        )
        first = conn.execute("SELECT min(id) FROM members WHERE shop_id = %s", (shop_id,)).fetchone()[0]
        conn.execute(
            "INSERT INTO products (shop_id, product_id, product_type, vendor, tags, collections, deleted, updated_at) "
            "SELECT %s, 1000 + p, CASE WHEN p %% 3 = 0 THEN 'Outerwear' ELSE 'Shirts' END, "
            "CASE WHEN p %% 2 = 0 THEN 'Acme' ELSE 'Giftco' END, '[\"winter\"]'::jsonb, '[]'::jsonb, false, now() "
            "FROM generate_series(0, %s) AS p",
            (shop_id, PRODUCTS - 1),
        )
        conn.execute(
            SEED_ORDERS,
            {"shop": shop_id, "first_member": first, "members": MEMBERS, "products": PRODUCTS, "orders": orders},
        )
        conn.execute("ANALYZE orders")
        return shop_id


REFUND_EVERY = 20  # one order in twenty has a partial refund: one unit of its first line


def seed_lots(url: str, shop_id: int) -> None:
    """Give every seeded order the lot the current rules make for it, and seed the refunds (not timed)."""
    from sqlalchemy import select

    from plugin.db import transaction
    from plugin.models import Order, Shop
    from plugin.programme import earning, order_facts
    from plugin.programme import rules as earning_rules
    from plugin.programme.settings import program_settings
    from plugin.services import preview

    with transaction(url) as session:
        shop = session.get(Shop, shop_id)
        rules = earning_rules.rule_set(shop.rules, shop.rules_version)
        settings = program_settings(shop.settings, shop.settings_version)
        products = preview._products(session, shop_id)
        lots = []
        for order_id, facts in session.execute(select(Order.order_id, Order.facts).where(Order.shop_id == shop_id)):
            snapshot = order_facts.snapshot_from_json(order_id, facts)
            lot = earning.build_lot(
                snapshot, settings, order_facts.paid_at(facts), has_member=True, rules=rules, products=products,
                member_tags=order_facts.member_tags(facts),
            )  # fmt: skip
            lots.append((order_id, json.dumps(lot.to_json()), lot.points))
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("CREATE TEMP TABLE seeded_lots (order_id bigint, lot jsonb, points bigint)")
        with conn.cursor().copy("COPY seeded_lots (order_id, lot, points) FROM STDIN") as copy:
            for row in lots:
                copy.write_row(row)
        conn.execute(
            "UPDATE orders SET lot = s.lot, points_held = s.points FROM seeded_lots AS s "
            "WHERE orders.shop_id = %s AND orders.order_id = s.order_id",
            (shop_id,),
        )
        conn.execute(
            "INSERT INTO refunds (shop_id, order_id, refund_id, facts, created_at) "
            "SELECT %s, o, 900000000 + o, jsonb_build_object('line_quantities', "
            "jsonb_build_object((o * 10 + 1)::text, 1), 'shipping', '0'), now() "
            "FROM generate_series(%s::bigint, %s::bigint, %s::bigint) AS o",
            (shop_id, REFUND_EVERY, len(lots), REFUND_EVERY),
        )
        conn.execute("ANALYZE orders")
        conn.execute("ANALYZE refunds")


def read_facts_only(url: str) -> float:
    """The same-run baseline: seconds to read and decode the same orders' facts, with no rules run."""
    from sqlalchemy import select

    from plugin.db import transaction
    from plugin.models import Order
    from plugin.programme import order_facts

    started = time.perf_counter()
    with transaction(url) as session:
        rows = session.execute(
            select(Order.order_id, Order.facts).where(Order.facts.is_not(None)).execution_options(yield_per=2000)
        )
        for order_id, facts in rows:
            order_facts.snapshot_from_json(order_id, facts)
    return time.perf_counter() - started


def run(orders: int = 100_000) -> dict:
    url, _env = prepared_database("loyalty_bench_preview")
    seed(url, orders)
    from plugin.db import transaction
    from plugin.services import preview, rule_sets, shops

    with transaction(url) as session:
        shop_id = shops.get(session, SHOP).id
        rule_sets.save(session, shops.get(session, SHOP), CURRENT, "bench")
    seed_lots(url, shop_id)
    baseline = read_facts_only(url)
    load_average = round(os.getloadavg()[0], 1)  # the machine is shared: say how busy it was
    started = time.perf_counter()
    with transaction(url) as session:
        result = preview.preview(session, shops.get(session, SHOP), PROPOSED, 30, seconds=60)
    seconds = time.perf_counter() - started
    return {
        "goal_seconds": 10,
        "load_average_at_call": load_average,
        "read_facts_seconds": round(baseline, 2),
        "ratio_to_reading": round(seconds / baseline, 1),
        "orders_seeded": orders,
        "orders_replayed": result["orders_replayed"],
        "complete": result["complete"],
        "seconds": round(seconds, 2),
        "orders_per_second": round(result["orders_replayed"] / seconds),
        "points_change": result["points_issued"]["change"],
        "members_affected": result["members_affected"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    print(json.dumps(run(parser.parse_args().orders)))


if __name__ == "__main__":
    main()
