"""used oauth states

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 09:49:05.441186
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_oauth_states",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("state", name=op.f("pk_used_oauth_states")),
    )


def downgrade() -> None:
    op.drop_table("used_oauth_states")
