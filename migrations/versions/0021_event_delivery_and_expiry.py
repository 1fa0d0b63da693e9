"""event_endpoints and event_deliveries: signed webhooks out of the outbox; outbox_events.fanned_out_at (#18)

Revision ID: 0021
Revises: 0022
Create Date: 2026-12-03 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0021"
down_revision = "0022"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def _primary_key(table: str) -> sa.PrimaryKeyConstraint:
    """(shop_id, id) on PostgreSQL, as distribution by shop needs; SQLite auto-increments only a lone INTEGER key."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.PrimaryKeyConstraint("shop_id", "id", name=f"pk_{table}")
    return sa.PrimaryKeyConstraint("id", name=f"pk_{table}")


def _id() -> sa.Column:
    if op.get_bind().dialect.name == "postgresql":
        return sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False)
    return sa.Column("id", BigId, nullable=False)


def upgrade() -> None:
    op.create_table(
        "event_endpoints",
        _id(),
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="webhook"),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("event_types", Json, nullable=True),
        sa.Column("description", sa.String(length=200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failing_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("disabled_reason", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_event_endpoints_shop_id_shops"), ondelete="CASCADE"
        ),
        _primary_key("event_endpoints"),
    )
    op.create_index("ix_event_endpoints_shop_id_id", "event_endpoints", ["shop_id", "id"], unique=True)
    op.create_table(
        "event_deliveries",
        _id(),
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("outbox_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_event_deliveries_shop_id_shops"), ondelete="CASCADE"
        ),
        _primary_key("event_deliveries"),
        sa.UniqueConstraint(
            "shop_id", "endpoint_id", "outbox_id", name=op.f("uq_event_deliveries_shop_id_endpoint_id_outbox_id")
        ),
    )
    op.create_index(
        "ix_event_deliveries_due",
        "event_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
        sqlite_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_event_deliveries_shop_id_outbox_id", "event_deliveries", ["shop_id", "outbox_id"])
    with op.batch_alter_table("outbox_events") as batch:
        batch.add_column(sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_outbox_events_unfanned",
        "outbox_events",
        ["shop_id", "id"],
        postgresql_where=sa.text("fanned_out_at IS NULL"),
        sqlite_where=sa.text("fanned_out_at IS NULL"),
    )

    # Expiry: the shop's policy, each day's run (resumable), and each order's points already expired.
    op.create_table(
        "expiry_policies",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("policy", sa.String(length=16), nullable=False),
        sa.Column("months", sa.Integer(), nullable=True),
        sa.Column("reminder_days", Json, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_expiry_policies_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", name=op.f("pk_expiry_policies")),
    )
    op.create_table(
        "expiry_runs",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("run_date", sa.Date(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("after_member_id", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("points_expired", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("reminders", sa.BigInteger(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_expiry_runs_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "run_date", name=op.f("pk_expiry_runs")),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("expired_points", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("expired_points")
    op.drop_table("expiry_runs")
    op.drop_table("expiry_policies")
    op.drop_index("ix_outbox_events_unfanned", table_name="outbox_events")
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("fanned_out_at")
    op.drop_table("event_deliveries")
    op.drop_table("event_endpoints")
