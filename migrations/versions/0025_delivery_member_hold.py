"""event_deliveries.member_id: a member's later event waits while an earlier one to the same endpoint is pending

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 14:40:00

The member is copied from the outbox event at fan-out, so the claim's "no earlier pending delivery of this
member to this endpoint" is one probe of a partial index instead of a join per candidate. Existing rows are
filled from their events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

INDEX = "ix_event_deliveries_member_pending"
PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("event_deliveries") as batch_op:
        batch_op.add_column(sa.Column("member_id", sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE event_deliveries SET member_id = (SELECT o.member_id FROM outbox_events o "
        "WHERE o.shop_id = event_deliveries.shop_id AND o.id = event_deliveries.outbox_id)"
    )
    op.create_index(
        INDEX,
        "event_deliveries",
        ["shop_id", "endpoint_id", "member_id", "outbox_id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="event_deliveries")
    with op.batch_alter_table("event_deliveries") as batch_op:
        batch_op.drop_column("member_id")
