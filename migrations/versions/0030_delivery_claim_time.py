"""delivery_claims.claimed_at: a delivery whose drain died twice waits before its next claim (decision 0042)

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-04 16:20:00

Existing rows get NULL: no wait, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery_claims") as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery_claims") as batch_op:
        batch_op.drop_column("claimed_at")
