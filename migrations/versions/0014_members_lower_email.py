"""members (shop_id, lower(email)): e-mail look-ups ignore case and still use an index

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Shopify keeps an address as the shopper typed it; support look-ups and imports match it whatever its case.
    op.create_index("ix_members_shop_id_lower_email", "members", ["shop_id", sa.text("lower(email)")])


def downgrade() -> None:
    op.drop_index("ix_members_shop_id_lower_email", table_name="members")
