"""install lifecycle and privacy

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:04:04.099532
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_erasures",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", name=op.f("pk_ledger_erasures")),
    )
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shop_domain", sa.String(length=255), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "outcome", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_requests_shop_domain_id"), ["shop_domain", "id"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("customer_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_deliveries_shop_domain_customer_id"), ["shop_domain", "customer_id"], unique=False
        )

    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("refresh_token", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("refresh_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("webhooks_checked_at", sa.DateTime(timezone=True), nullable=True))

    _allow_erasure_with_a_permit()


POSTGRES_APPEND_ONLY = """
CREATE OR REPLACE FUNCTION postings_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM ledger_erasures WHERE shop_id = OLD.shop_id) THEN
        RETURN OLD;  -- a shop being erased (privacy shop/redact), inside the transaction that holds the permit
    END IF;
    RAISE EXCEPTION 'postings are append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
END $$;
"""

SQLITE_DELETE_GUARD = (
    "CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings "
    "WHEN NOT EXISTS (SELECT 1 FROM ledger_erasures WHERE shop_id = OLD.shop_id) "
    "BEGIN SELECT RAISE(ABORT, 'postings are append-only: DELETE refused'); END"
)


def _allow_erasure_with_a_permit() -> None:
    """Postings stay append-only; only a shop's erasure, holding a permit row, may delete its postings."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_APPEND_ONLY)
    else:
        op.execute("DROP TRIGGER postings_no_delete")
        op.execute(SQLITE_DELETE_GUARD)

def downgrade() -> None:
    with op.batch_alter_table("shops", schema=None) as batch_op:
        batch_op.drop_column("webhooks_checked_at")
        batch_op.drop_column("scopes")
        batch_op.drop_column("refresh_expires_at")
        batch_op.drop_column("refresh_token")
        batch_op.drop_column("token_expires_at")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_shop_domain_customer_id"))
        batch_op.drop_column("customer_id")

    with op.batch_alter_table("privacy_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_requests_shop_domain_id"))

    op.drop_table("privacy_requests")
    op.drop_table("ledger_erasures")
