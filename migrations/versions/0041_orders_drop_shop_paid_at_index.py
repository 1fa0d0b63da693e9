"""orders: drop (shop_id, paid_at), a prefix of (shop_id, paid_at, member_id) INCLUDE (sales, reward_code) (decision 0089)

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-07 00:20:00

Every query the two-column index could serve, the three-column one serves as well: the same leading columns, in the
same order, with more in each entry. Each order written maintained both. The downgrade restores it.
"""

from __future__ import annotations

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_orders_shop_id_paid_at", table_name="orders")


def downgrade() -> None:
    op.create_index("ix_orders_shop_id_paid_at", "orders", ["shop_id", "paid_at"])
