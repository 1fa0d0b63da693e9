"""earning rules: versioned rule sets, the product cache, stored order facts, member tags

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-02 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("rules", Json, nullable=True))
        batch.add_column(sa.Column("rules_version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("tags", Json, nullable=True))
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("facts", Json, nullable=True))
    op.create_index("ix_orders_shop_id_paid_at", "orders", ["shop_id", "paid_at"])
    op.create_table(
        "rule_sets",
        sa.Column("id", BigId, nullable=False),
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("rules", Json, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_rule_sets_shop_id_shops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_sets")),
        sa.UniqueConstraint("shop_id", "version", name=op.f("uq_rule_sets_shop_id_version")),
    )
    op.create_table(
        "products",
        sa.Column("id", BigId, nullable=False),
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("product_type", sa.String(length=255), nullable=False),
        sa.Column("vendor", sa.String(length=255), nullable=False),
        sa.Column("tags", Json, nullable=False),
        sa.Column("collections", Json, nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_products_shop_id_shops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_products")),
        sa.UniqueConstraint("shop_id", "product_id", name=op.f("uq_products_shop_id_product_id")),
    )
    op.create_table(
        "order_product_waits",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("product_id", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_order_product_waits_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "product_id", "order_id", name=op.f("pk_order_product_waits")),
    )


def downgrade() -> None:
    op.drop_table("order_product_waits")
    op.drop_table("products")
    op.drop_table("rule_sets")
    op.drop_index("ix_orders_shop_id_paid_at", table_name="orders")
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("facts")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("tags")
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("rules_version")
        batch.drop_column("rules")
