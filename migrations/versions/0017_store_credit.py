"""redemptions: the store credit a redemption gave, its currency and the balance after it; when a debit began

Revision ID: 0017
Revises: 0015
Create Date: 2026-12-03 07:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        # Money as integer thousandths of the major unit: exact in every currency (none has more than three decimals).
        batch.add_column(sa.Column("credit_milli", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("credit_currency", sa.String(length=3), nullable=True))
        batch.add_column(sa.Column("credit_balance_milli", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("credit_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("debit_started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("redemptions") as batch:
        for name in ("debit_started_at", "credit_expires_at", "credit_balance_milli", "credit_currency", "credit_milli"):
            batch.drop_column(name)
