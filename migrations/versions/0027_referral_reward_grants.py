"""referrals: the catalogue reward an advocate's referral grants (fixed when first given) and the grant it issued

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 14:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.add_column(sa.Column("reward_id", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("reward_redemption_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch:
        batch.drop_column("reward_redemption_id")
        batch.drop_column("reward_id")
