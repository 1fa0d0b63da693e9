"""member_order_months: the insert trigger adds the statement's orders to each member-month, no recount (decision 0067)

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-06 04:10:00

PostgreSQL only. `orders_member_months_inserted` (migrations 0033, 0036) locked each member-month the statement's
paid orders join, then recounted it from the orders table in a second statement. The recount's plan is made once
per session and kept (PL/pgSQL caches it): made on a small table, it walked the shop's month for every member-month,
so each drained order read ~950 blocks in the end-to-end bench. The trigger now writes each member-month once with
one upsert that adds the statement's own orders (count, sales, earliest and latest payment), and reads no orders.

Still exact: the upsert holds the member-month's row lock while it adds, so two writers add one after the other;
a recount by the update and delete triggers (member_order_month_recount: lock, then a new statement) sees every
order committed before its lock, and an insert that waited for it adds its orders to the recounted row. A
member-month with no orders left is deleted by the recount, so an existing row's first and last payment are its
orders' own, and least/greatest keep them exact. The downgrade restores 0036's function.
"""

from __future__ import annotations

from alembic import op

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE OR REPLACE FUNCTION orders_member_months_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- One upsert per statement, in key order (two writers lock member-months in the same order): each
    -- member-month the statement's paid orders join is created with them, or locked and has them added.
    INSERT INTO member_order_months AS m (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
    SELECT r.shop_id, r.member_id, date_trunc('month', r.paid_at AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date,
           count(*), coalesce(sum(r.sales), 0), min(r.paid_at), max(r.paid_at)
    FROM new_rows r JOIN shops s ON s.id = r.shop_id
    WHERE r.paid_at IS NOT NULL AND r.member_id IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (shop_id, member_id, month) DO UPDATE
    SET orders = m.orders + excluded.orders,
        sales = m.sales + excluded.sales,
        first_paid_at = least(m.first_paid_at, excluded.first_paid_at),
        last_paid_at = greatest(m.last_paid_at, excluded.last_paid_at);
    RETURN NULL;
END $$;
"""

# 0036's function, which the downgrade restores: lock each member-month, then recount it from its orders.
DOWNGRADE = """
CREATE OR REPLACE FUNCTION orders_member_months_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Lock (or create) each member-month the statement's paid orders join, once and in key order, so two writers
    -- lock them in the same order; a concurrent writer of one of them waits here.
    INSERT INTO member_order_months AS m (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
    SELECT r.shop_id, r.member_id, date_trunc('month', r.paid_at AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date,
           0, 0, min(r.paid_at), min(r.paid_at)
    FROM new_rows r JOIN shops s ON s.id = r.shop_id
    WHERE r.paid_at IS NOT NULL AND r.member_id IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (shop_id, member_id, month) DO UPDATE SET orders = m.orders WHERE false;
    -- Then recount them from their orders: a new statement, which sees every order committed before the locks.
    UPDATE member_order_months m
    SET (orders, sales, first_paid_at, last_paid_at) = (
        SELECT count(*), coalesce(sum(o.sales), 0), coalesce(min(o.paid_at), m.first_paid_at),
               coalesce(max(o.paid_at), m.last_paid_at)
        FROM orders o
        WHERE o.shop_id = m.shop_id AND o.member_id = m.member_id
          AND o.paid_at >= k.month::timestamp AT TIME ZONE k.zone
          AND o.paid_at < (k.month + interval '1 month')::timestamp AT TIME ZONE k.zone
    )
    FROM (
        SELECT DISTINCT r.shop_id, r.member_id, coalesce(s.time_zone, 'UTC') AS zone,
               date_trunc('month', r.paid_at AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date AS month
        FROM new_rows r JOIN shops s ON s.id = r.shop_id
        WHERE r.paid_at IS NOT NULL AND r.member_id IS NOT NULL
    ) k
    WHERE m.shop_id = k.shop_id AND m.member_id = k.member_id AND m.month = k.month;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DOWNGRADE)
