"""Bulk-loads members, orders and postings in SQL for the read and scale benchmarks (consistent balances)."""

from __future__ import annotations

import psycopg

POSTINGS_PER_MEMBER = 20  # 4 paid orders, 2 partial refunds, 7 support bonuses, 7 redemptions
ORDERS_PER_MEMBER = 4

# Per member m and step s (1..20): the kind, signed points, source and order of that posting. Steps 1-4 earn on
# orders m*10+s; 5-6 take part of orders 1-2 back; then bonuses (+10) and redemptions (-5) alternate.
_STEPS = """
    SELECT s,
        CASE WHEN s <= 4 THEN 'earn' WHEN s <= 6 THEN 'reverse' WHEN s %% 2 = 1 THEN 'bonus' ELSE 'redeem' END AS kind,
        CASE WHEN s <= 4 THEN 20 + m %% 50 + s * 10 WHEN s <= 6 THEN -(1 + s) WHEN s %% 2 = 1 THEN 10 ELSE -5 END
            AS points,
        CASE WHEN s <= 4 THEN 'order' WHEN s <= 6 THEN 'refund' WHEN s %% 2 = 1 THEN 'support' ELSE 'redemption' END
            AS source_type,
        CASE WHEN s <= 4 THEN m * 10 + s WHEN s <= 6 THEN m * 10 + s - 4 END AS order_id
    FROM generate_series(1, 20) AS s
"""


def seed(url: str, shop_id: int, members: int, chunk: int = 250_000, spread_days: int = 21) -> None:
    """Load `members` members with 20 postings and 4 orders each into an empty shop, then analyse the tables.

    A member's 20 postings are one day apart, ending yesterday; `spread_days` stretches them over that many days
    (the reports' benchmark spreads them over two years, so there are cohorts to age).

    Secondary indexes are dropped during the load and rebuilt after, as pg_restore does; member ids start
    after any existing ones. Balances are consistent with the postings, so `verify-ledger` must come out clean.
    """
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")  # a bulk load of throwaway data: no need to wait for disk
        conn.execute("SET maintenance_work_mem = '1GB'")
        rebuild = _drop_secondary_indexes(conn, ("members", "orders", "postings"))
        first = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM members").fetchone()[0]
        for start in range(first, first + members, chunk):
            end = min(start + chunk, first + members) - 1
            _load(conn, shop_id, start, end, spread_days)
        for statement in rebuild:
            conn.execute(statement)
        for table in ("members", "orders", "postings"):
            conn.execute(f"VACUUM ANALYZE {table}")


def _load(conn: psycopg.Connection, shop_id: int, start: int, end: int, spread_days: int = 21) -> None:
    params = {
        "shop": shop_id,
        "start": start,
        "end": end,
        "stretch": spread_days / 21,
        "enrolled": max(30, spread_days),
    }
    with conn.transaction():
        # The rows come with their balances already summed: skip the ledger's triggers, as pg_restore
        # --disable-triggers does (a superuser's setting, for this bulk load's transaction only).
        conn.execute("SET LOCAL session_replication_role = replica")
        conn.execute(
            """
            INSERT INTO members (id, shop_id, customer_id, email, first_name, balance, pushed_balance, enrolled_at)
            SELECT m, %(shop)s, 7000000000 + m, 'member' || m || '@example.com', 'Member', b.total, b.total,
                   now() - %(enrolled)s * interval '1 day'
            FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS m
            CROSS JOIN LATERAL (SELECT sum(points) AS total FROM ("""
            + _STEPS
            + """) AS steps) AS b
            """,
            params,
        )
        conn.execute(
            """
            INSERT INTO orders (shop_id, order_id, name, member_id, created_seen, paid_at, lot, points_held,
                                support_delta, unpaid_reversal, updated_at)
            SELECT %(shop)s, m * 10 + k, '#' || (m * 10 + k), m, true, now() - interval '20 days',
                   jsonb_build_object('points', 20 + m %% 50 + k * 10, 'rule_version', 'earn-1+settings-1'),
                   20 + m %% 50 + k * 10 - CASE WHEN k <= 2 THEN k + 5 ELSE 0 END, 0, 0, now()
            FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS m, generate_series(1, 4) AS k
            """,
            params,
        )
        conn.execute(
            """
            INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, order_id,
                                  rule_version, idempotency_key, note, actor, created_at)
            SELECT %(shop)s, m, p.kind, p.points, p.balance_after, p.source_type,
                   coalesce(p.order_id, m * 100 + p.s)::text, p.order_id, 'earn-1+settings-1',
                   'seed:' || m || ':' || p.s, 'seeded', 'system',
                   now() - (21 - p.s) * %(stretch)s * interval '1 day'
            FROM generate_series(%(start)s::bigint, %(end)s::bigint) AS m
            CROSS JOIN LATERAL (
                SELECT steps.*, sum(points) OVER (ORDER BY s) AS balance_after FROM ("""
            + _STEPS
            + """) AS steps
            ) AS p
            ORDER BY m, p.s
            """,
            params,
        )


def _drop_secondary_indexes(conn: psycopg.Connection, tables: tuple[str, ...]) -> list[str]:
    """Drop unique constraints and indexes other than primary keys; returns the statements that rebuild them."""
    rebuild: list[str] = []
    constraints = conn.execute(
        """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE contype = 'u' AND conrelid::regclass::text = ANY(%s)""",
        (list(tables),),
    ).fetchall()
    for table, name, definition in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    indexes = conn.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
           WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisprimary""",
        (list(tables),),
    ).fetchall()
    for name, definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
        rebuild.append(definition)
    return rebuild
