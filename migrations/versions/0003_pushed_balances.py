"""pushed balances

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:42:20.583732
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pushed_balance", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            "ix_members_unpushed",
            ["shop_id", "id"],
            unique=False,
            postgresql_where=sa.text("balance IS DISTINCT FROM pushed_balance"),
            sqlite_where=sa.text("balance IS NOT pushed_balance"),
        )


def downgrade() -> None:
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_members_unpushed",
            postgresql_where=sa.text("balance IS DISTINCT FROM pushed_balance"),
            sqlite_where=sa.text("balance IS NOT pushed_balance"),
        )
        batch_op.drop_column("pushed_balance")
