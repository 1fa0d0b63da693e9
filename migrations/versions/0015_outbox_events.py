"""outbox_events: outgoing events recorded in the transaction that causes them; shops.time_zone (decision 0020)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 20:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="UTC"))
    op.create_table(
        "outbox_events",
        sa.Column("id", BigId, nullable=False),
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("payload", Json, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_outbox_events_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("shop_id", "dedupe_key", name=op.f("uq_outbox_events_shop_id_dedupe_key")),
        sa.UniqueConstraint("shop_id", "event_id", name=op.f("uq_outbox_events_shop_id_event_id")),
    )
    op.create_index("ix_outbox_events_shop_id_member_id_id", "outbox_events", ["shop_id", "member_id", "id"])
    op.create_index("ix_outbox_events_shop_id_event_type_id", "outbox_events", ["shop_id", "event_type", "id"])


def downgrade() -> None:
    op.drop_table("outbox_events")
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("time_zone")
