"""support keys and actions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 09:33:37.035720
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "support_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("prefix", sa.String(length=24), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_support_keys_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_keys")),
        sa.UniqueConstraint("prefix", name=op.f("uq_support_keys_prefix")),
    )
    with op.batch_alter_table("support_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_support_keys_shop_id_id"), ["shop_id", "id"], unique=False)

    op.create_table(
        "support_actions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=24), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason_code", sa.String(length=40), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("balance_before", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=True),
        sa.Column("undo_of", sa.BigInteger(), nullable=True),
        sa.Column("undone_by", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["member_id"], ["members.id"], name=op.f("fk_support_actions_member_id_members")),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_support_actions_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_actions")),
        sa.UniqueConstraint("shop_id", "idempotency_key", name=op.f("uq_support_actions_shop_id_idempotency_key")),
    )
    with op.batch_alter_table("support_actions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_support_actions_shop_id_member_id_id"), ["shop_id", "member_id", "id"], unique=False
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("support_delta", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("unpaid_reversal", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("unpaid_reversal")
        batch_op.drop_column("support_delta")

    with op.batch_alter_table("support_actions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_actions_shop_id_member_id_id"))

    op.drop_table("support_actions")
    with op.batch_alter_table("support_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_support_keys_shop_id_id"))

    op.drop_table("support_keys")
