"""outbox_events: the unfanned rows by member, so a claim finds a member's earlier event not yet fanned out

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-04 16:10:00

A delivery waits while an earlier event of its member has no deliveries yet (decision 0040): two workers fan out
neighbouring chunks at once, and the one with the later events may commit first. The claim probes this partial
index once per candidate; it holds only rows not yet fanned out, so it stays as small as the fan-out's backlog.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

INDEX = "ix_outbox_events_unfanned_member"
UNFANNED = sa.text("fanned_out_at IS NULL")


def upgrade() -> None:
    op.create_index(
        INDEX, "outbox_events", ["shop_id", "member_id", "id"], postgresql_where=UNFANNED, sqlite_where=UNFANNED
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="outbox_events")
