"""orders.sales and orders.reward_code: what the reports' order figures read (AOV, repeat purchase, ROI)

Revision ID: 0022b
Revises: 0016
Create Date: 2026-12-03 08:30:00

`sales` is the paid order's line items after discounts (before shipping and taxes), `reward_code` the loyalty
reward code it used, if any; both are set with the order's facts (services/order_sales.py). Orders paid before
this revision are filled from their stored facts on PostgreSQL. An index covers the figures' one pass over a
period's orders (PostgreSQL INCLUDE), replacing 0022's (shop_id, paid_at, member_id).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022b"
down_revision = "0016"
branch_labels = None
depends_on = None

BACKFILL_SALES = """
UPDATE orders o SET sales = s.sales
FROM (
    SELECT o2.shop_id, o2.order_id, sum((line ->> 2)::numeric - (line ->> 3)::numeric) AS sales
    FROM orders o2, jsonb_array_elements(o2.facts -> 'lines') AS line
    WHERE o2.facts IS NOT NULL AND jsonb_typeof(o2.facts -> 'lines') = 'array'
    GROUP BY o2.shop_id, o2.order_id
) s
WHERE o.shop_id = s.shop_id AND o.order_id = s.order_id
"""

BACKFILL_CODES = """
UPDATE orders o SET reward_code = r.code
FROM redemptions r
WHERE o.facts ? 'discount_codes' AND jsonb_typeof(o.facts -> 'discount_codes') = 'array'
  AND r.shop_id = o.shop_id AND (o.facts -> 'discount_codes') ? r.code
"""


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("sales", sa.Numeric(18, 2), nullable=True))
        batch.add_column(sa.Column("reward_code", sa.String(length=64), nullable=True))
    op.drop_index("ix_orders_shop_id_paid_at_member_id", table_name="orders")
    op.create_index(
        "ix_orders_shop_id_paid_at_member_id",
        "orders",
        ["shop_id", "paid_at", "member_id"],
        postgresql_include=["sales", "reward_code"],
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(BACKFILL_SALES)
        op.execute(BACKFILL_CODES)


def downgrade() -> None:
    op.drop_index("ix_orders_shop_id_paid_at_member_id", table_name="orders")
    op.create_index("ix_orders_shop_id_paid_at_member_id", "orders", ["shop_id", "paid_at", "member_id"])
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reward_code")
        batch.drop_column("sales")
