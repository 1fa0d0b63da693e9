"""birthday_runs: the days each shop's birthday job finished, so a missed day is caught up on the next run

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 14:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "birthday_runs",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("awarded", sa.BigInteger(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_birthday_runs_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "run_date", name=op.f("pk_birthday_runs")),
    )


def downgrade() -> None:
    op.drop_table("birthday_runs")
