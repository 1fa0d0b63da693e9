"""delivery claims: how many times each delivery was claimed, committed apart from the drain's transaction

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02 16:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "delivery_claims",
        # No foreign key: checking it would share-lock the delivery row the claiming transaction holds.
        sa.Column("delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("claims", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_delivery_claims")),
    )


def downgrade() -> None:
    op.drop_table("delivery_claims")
