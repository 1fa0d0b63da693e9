"""postings: a partial index of the tier rewards, (shop_id, member_id) WHERE source_type = 'tier' (decision 0058)

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-05 22:10:00

tiers.held_rewards reads the tier reward postings of a drained batch's members, once per batch of a shop with a
tier programme. With (shop_id, member_id, id) alone it visits every posting of those members (two or more an
order), and a fresh, never-analysed table was read whole for the shop: a cost per batch that grew with the
ledger. held_rewards now probes this index once per member (a LATERAL over the members): the tier rewards are a few
rows a member, and the other postings never enter it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None

TIER = sa.text("source_type = 'tier'")


def upgrade() -> None:
    # A plain CREATE INDEX (no batch: SQLite need not copy the ledger and its triggers for an index).
    op.create_index(
        "ix_postings_tier_rewards", "postings", ["shop_id", "member_id"], postgresql_where=TIER, sqlite_where=TIER
    )


def downgrade() -> None:
    op.drop_index("ix_postings_tier_rewards", table_name="postings")
