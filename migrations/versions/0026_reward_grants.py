"""Reward grants: a redemption's kind (redeem or grant), the grant it comes from, and its take-back; the rewards a
milestone holding issued

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DUE = "revoke_requested_at IS NOT NULL AND revoked_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        batch.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="redeem"))
        batch.add_column(sa.Column("granted_by", JSON, nullable=True))
        batch.add_column(sa.Column("revoke_requested_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
    # The sweeper's look for take-backs still to do: a handful of rows at most, so a partial index.
    op.create_index(
        "ix_redemptions_revoke_due",
        "redemptions",
        ["shop_id", "id"],
        postgresql_where=sa.text(DUE),
        sqlite_where=sa.text(DUE),
    )
    with op.batch_alter_table("milestone_holdings") as batch:
        batch.add_column(sa.Column("rewards", JSON, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("milestone_holdings") as batch:
        batch.drop_column("rewards")
    op.drop_index("ix_redemptions_revoke_due", table_name="redemptions")
    with op.batch_alter_table("redemptions") as batch:
        for name in ("revoked_at", "revoke_requested_at", "granted_by", "kind"):
            batch.drop_column(name)
