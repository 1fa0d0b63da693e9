"""VIP tiers: shops.tiers (the current tier programme) and its versions, members' tier columns, tier_moves and
tier_purchases (docs/decisions/0022-tiers.md)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
UNPUSHED = "coalesce(tier, '') <> coalesce(pushed_tier, '')"


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("tiers", Json, nullable=True))
        batch.add_column(sa.Column("tiers_version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("skus", Json, nullable=True))
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("tier", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("tier_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("tier_paid_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("pushed_tier", sa.String(length=40), nullable=True))
    op.create_index(
        "ix_members_tier_unpushed",
        "members",
        ["shop_id", "id"],
        postgresql_where=sa.text(UNPUSHED),
        sqlite_where=sa.text(UNPUSHED),
    )
    op.create_index("ix_members_shop_id_tier", "members", ["shop_id", "tier"])
    op.create_index("ix_members_shop_id_tier_until", "members", ["shop_id", "tier_until"])
    op.create_table(
        "tier_sets",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=op.f("fk_tier_sets_shop_id_shops"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("shop_id", "version", name=op.f("pk_tier_sets")),
    )
    op.create_table(
        "tier_moves",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("from_tier", sa.String(length=40), nullable=True),
        sa.Column("to_tier", sa.String(length=40), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("tiers_version", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_tier_moves_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "seq", name=op.f("pk_tier_moves")),
    )
    op.create_index("ix_tier_moves_shop_id_occurred_at", "tier_moves", ["shop_id", "occurred_at"])
    op.create_table(
        "tier_purchases",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("months", sa.Integer(), nullable=False),
        sa.Column("line_ids", Json, nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_tier_purchases_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "order_id", name=op.f("pk_tier_purchases")),
    )
    op.create_index("ix_tier_purchases_shop_id_member_id", "tier_purchases", ["shop_id", "member_id"])


def downgrade() -> None:
    op.drop_table("tier_purchases")
    op.drop_table("tier_moves")
    op.drop_table("tier_sets")
    op.drop_index("ix_members_shop_id_tier_until", table_name="members")
    op.drop_index("ix_members_shop_id_tier", table_name="members")
    op.drop_index("ix_members_tier_unpushed", table_name="members")
    with op.batch_alter_table("members") as batch:
        for column in ("pushed_tier", "tier_paid_until", "tier_until", "tier"):
            batch.drop_column(column)
    with op.batch_alter_table("products") as batch:
        batch.drop_column("skus")
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("tiers_version")
        batch.drop_column("tiers")
