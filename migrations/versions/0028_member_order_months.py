"""member_order_months: each member's paid orders per shop-local month, written with the orders (decision 0023)

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03 14:30:00

The KPIs (repeat purchase, AOV of redeemers and others, active members) read one row per member and month
instead of every paid order. PostgreSQL: triggers on `orders` recompute the affected member-month row from that
member's orders of the month, in the order's own transaction, after locking the row, so concurrent writers of
one member's orders never lose each other's order (the second waits, then recounts what the first committed).
A recount, not a counter: the row always equals its orders, whatever changed (paid, member set, sales, deleted).
Existing orders are summed here; `loyalty reports rebuild` recomputes a shop (after a change of time zone).
SQLite (the embedded demo): the table exists, empty; its reports read the orders.
Also two partial indexes: orders that used a reward code (ROI), and issued rewards per member (redeemers).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

POSTGRES_FUNCTIONS = """
CREATE FUNCTION member_order_month_recount(shop bigint, member bigint, paid timestamptz, adding boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    zone text;
    first_day date;
    month_start timestamptz;
    month_end timestamptz;
BEGIN
    SELECT coalesce(time_zone, 'UTC') INTO zone FROM shops WHERE id = shop;
    IF zone IS NULL THEN
        RETURN;  -- the shop is being deleted: its rows go with it
    END IF;
    first_day := date_trunc('month', paid AT TIME ZONE zone)::date;
    month_start := first_day::timestamp AT TIME ZONE zone;
    month_end := (first_day + interval '1 month')::timestamp AT TIME ZONE zone;
    -- Take the row's lock first (creating it when an order joins it): a concurrent writer of the same member's
    -- month waits here, and the recount below, a new statement, sees every order committed before the lock.
    IF adding THEN
        INSERT INTO member_order_months AS m (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
        VALUES (shop, member, first_day, 0, 0, paid, paid)
        ON CONFLICT (shop_id, member_id, month) DO UPDATE SET orders = m.orders;
    ELSE
        PERFORM 1 FROM member_order_months
        WHERE shop_id = shop AND member_id = member AND month = first_day FOR UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
    END IF;
    UPDATE member_order_months m
    SET (orders, sales, first_paid_at, last_paid_at) = (
        SELECT count(*), coalesce(sum(o.sales), 0), coalesce(min(o.paid_at), paid), coalesce(max(o.paid_at), paid)
        FROM orders o
        WHERE o.shop_id = shop AND o.member_id = member AND o.paid_at >= month_start AND o.paid_at < month_end
    )
    WHERE m.shop_id = shop AND m.member_id = member AND m.month = first_day;
    DELETE FROM member_order_months
    WHERE shop_id = shop AND member_id = member AND month = first_day AND orders = 0;
END $$;

CREATE FUNCTION orders_member_month() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_counts boolean := TG_OP <> 'INSERT' AND OLD.paid_at IS NOT NULL AND OLD.member_id IS NOT NULL;
    new_counts boolean := TG_OP <> 'DELETE' AND NEW.paid_at IS NOT NULL AND NEW.member_id IS NOT NULL;
BEGIN
    IF old_counts AND new_counts AND OLD.member_id = NEW.member_id AND OLD.paid_at = NEW.paid_at THEN
        PERFORM member_order_month_recount(NEW.shop_id, NEW.member_id, NEW.paid_at, true);  -- its sales changed
        RETURN NULL;
    END IF;
    -- Two rows (the order moved member or month): lock them in one order, so two such moves never deadlock.
    IF old_counts AND new_counts AND (OLD.member_id, OLD.paid_at) > (NEW.member_id, NEW.paid_at) THEN
        PERFORM member_order_month_recount(NEW.shop_id, NEW.member_id, NEW.paid_at, true);
        PERFORM member_order_month_recount(OLD.shop_id, OLD.member_id, OLD.paid_at, false);
        RETURN NULL;
    END IF;
    IF old_counts THEN
        PERFORM member_order_month_recount(OLD.shop_id, OLD.member_id, OLD.paid_at, false);
    END IF;
    IF new_counts THEN
        PERFORM member_order_month_recount(NEW.shop_id, NEW.member_id, NEW.paid_at, true);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER orders_member_month_insert AFTER INSERT ON orders
    FOR EACH ROW WHEN (NEW.paid_at IS NOT NULL AND NEW.member_id IS NOT NULL)
    EXECUTE FUNCTION orders_member_month();
CREATE TRIGGER orders_member_month_update AFTER UPDATE OF paid_at, member_id, sales, shop_id ON orders
    FOR EACH ROW WHEN (
        OLD.paid_at IS DISTINCT FROM NEW.paid_at OR OLD.member_id IS DISTINCT FROM NEW.member_id
        OR OLD.sales IS DISTINCT FROM NEW.sales OR OLD.shop_id IS DISTINCT FROM NEW.shop_id
    )
    EXECUTE FUNCTION orders_member_month();
CREATE TRIGGER orders_member_month_delete AFTER DELETE ON orders
    FOR EACH ROW WHEN (OLD.paid_at IS NOT NULL AND OLD.member_id IS NOT NULL)
    EXECUTE FUNCTION orders_member_month();
"""

POSTGRES_BACKFILL = """
INSERT INTO member_order_months (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
SELECT o.shop_id, o.member_id, date_trunc('month', o.paid_at AT TIME ZONE s.time_zone)::date,
       count(*), coalesce(sum(o.sales), 0), min(o.paid_at), max(o.paid_at)
FROM orders o JOIN shops s ON s.id = o.shop_id
WHERE o.paid_at IS NOT NULL AND o.member_id IS NOT NULL
GROUP BY 1, 2, 3
"""


def upgrade() -> None:
    op.create_table(
        "member_order_months",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("orders", sa.BigInteger(), nullable=False),
        sa.Column("sales", sa.Numeric(18, 2), nullable=False),
        sa.Column("first_paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_member_order_months_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "month", name=op.f("pk_member_order_months")),
    )
    op.create_index(
        "ix_member_order_months_month",
        "member_order_months",
        ["shop_id", "month", "member_id"],
        postgresql_include=["orders", "sales", "first_paid_at", "last_paid_at"],
    )
    op.create_index(
        "ix_orders_reward_paid_at",
        "orders",
        ["shop_id", "paid_at"],
        postgresql_include=["sales", "reward_code"],
        postgresql_where=sa.text("reward_code IS NOT NULL"),
        sqlite_where=sa.text("reward_code IS NOT NULL"),
    )
    op.create_index(
        "ix_redemptions_issued_member",
        "redemptions",
        ["shop_id", "member_id", "created_at"],
        postgresql_where=sa.text("status = 'issued'"),
        sqlite_where=sa.text("status = 'issued'"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTIONS)
        op.execute(POSTGRES_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER orders_member_month_{name} ON orders")
        op.execute("DROP FUNCTION orders_member_month()")
        op.execute("DROP FUNCTION member_order_month_recount(bigint, bigint, timestamptz, boolean)")
    op.drop_index("ix_redemptions_issued_member", table_name="redemptions")
    op.drop_index("ix_orders_reward_paid_at", table_name="orders")
    op.drop_index("ix_member_order_months_month", table_name="member_order_months")
    op.drop_table("member_order_months")
