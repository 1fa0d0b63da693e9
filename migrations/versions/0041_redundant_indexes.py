"""Drop two indexes another index of their table makes redundant (decision 0089)

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-07 00:20:00

- orders (shop_id, paid_at): (shop_id, paid_at, member_id) INCLUDE (sales, reward_code) leads with the same columns in
  the same order and serves every query it served. Each order written maintained both.
- import_batches (shop_id, id), on PostgreSQL only: the primary key is (shop_id, id) there (migration 0023). SQLite's
  primary key is `id` alone (decision 0004), so the index still serves a shop's batches there.

tests/test_index_prefixes.py finds any plain index whose columns lead another's. The downgrade restores both.
"""

from __future__ import annotations

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_orders_shop_id_paid_at", table_name="orders")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_import_batches_shop_id_id", table_name="import_batches")


def downgrade() -> None:
    op.create_index("ix_orders_shop_id_paid_at", "orders", ["shop_id", "paid_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_import_batches_shop_id_id", "import_batches", ["shop_id", "id"])
