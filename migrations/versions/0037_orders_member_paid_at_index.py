"""orders: an index of each member's paid orders, (shop_id, member_id, paid_at) INCLUDE (sales) (decision 0061)

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-06 01:00:00

The member-month triggers (migrations 0033 and 0036) recount a member-month from its orders: shop and member
equal, paid_at in the month. The only index with both equalities led with (shop_id, member_id, available_at), which
cannot bound the month and does not hold sales; so on a table never analysed (a fresh shop: autovacuum has not run
yet) the planner took (shop_id, paid_at, member_id), whose INCLUDE (sales) makes it index-only, and read the shop's
whole month for every member-month of every drained batch: a cost per order that grew with the shop's orders of the
month. With equality on both leading columns, this index bounds the recount to the member's month, statistics or not.
"""

from __future__ import annotations

from alembic import op

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_orders_member_paid_at", "orders", ["shop_id", "member_id", "paid_at"], postgresql_include=["sales"]
    )


def downgrade() -> None:
    op.drop_index("ix_orders_member_paid_at", table_name="orders")
