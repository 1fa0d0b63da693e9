"""redemptions.reward_id, indexed, so reward limits are counted without reading JSON

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 17:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("redemptions", sa.Column("reward_id", sa.String(length=40), nullable=True))
    # Existing rows get the id of the reward they were for, so limits count them too.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE redemptions SET reward_id = reward->>'id'")
    else:
        op.execute("UPDATE redemptions SET reward_id = json_extract(reward, '$.id')")
    op.create_index(
        "ix_redemptions_shop_id_reward_id", "redemptions", ["shop_id", "reward_id", "member_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_redemptions_shop_id_reward_id", table_name="redemptions")
    op.drop_column("redemptions", "reward_id")
