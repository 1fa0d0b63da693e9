"""member_order_months: the insert trigger locks an existing member-month without rewriting it (decision 0059)

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-05 22:20:00

PostgreSQL only. `orders_member_months_inserted` (migration 0033) locked each member-month the statement's paid
orders join with an upsert whose DO UPDATE wrote the row back unchanged, then recounted it with an UPDATE: two new
row versions per member-month and drained batch, for nearly every order. The upsert's DO UPDATE now has
`WHERE false`: PostgreSQL still locks the conflicting row (ON CONFLICT DO UPDATE locks every conflicting row,
whatever its WHERE says), in the same key order, and writes no version of it; the recount is the one write. A
new member-month is inserted as before. The downgrade restores 0033's function.
"""

from __future__ import annotations

from alembic import op

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None

# The trigger function as migration 0033 made it, and the downgrade restores it; the upgrade only locks an existing
# member-month: DO UPDATE ... WHERE false locks the conflicting row and writes no new version of it, so the recount
# is its one new version (decision 0059).
FUNCTION = """
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
    ON CONFLICT (shop_id, member_id, month) DO UPDATE SET orders = m.orders{only_locked};
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
POSTGRES_UPGRADE = FUNCTION.format(only_locked=" WHERE false")
POSTGRES_DOWNGRADE = FUNCTION.format(only_locked="")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_DOWNGRADE)
