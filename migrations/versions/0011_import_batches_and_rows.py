"""import batches and rows

Revision ID: 0012
Revises: 0007
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "import_batches",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("shop_id", BIG_ID, nullable=False),
        sa.Column("source", sa.String(length=24), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("encoding", sa.String(length=16), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("lines_total", sa.Integer(), nullable=False),
        sa.Column("last_line", sa.Integer(), nullable=False),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("matched", sa.Integer(), nullable=False),
        sa.Column("pending", sa.Integer(), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("points_matched", sa.BigInteger(), nullable=False),
        sa.Column("points_pending", sa.BigInteger(), nullable=False),
        sa.Column("unknown_columns", sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("undone_by", sa.String(length=120), nullable=True),
        sa.Column("undo_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_import_batches_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batches")),
    )
    op.create_index("ix_import_batches_shop_id_id", "import_batches", ["shop_id", "id"])
    op.create_index(
        "uq_import_batches_live_file",
        "import_batches",
        ["shop_id", "file_sha256"],
        unique=True,
        postgresql_where=sa.text("NOT dry_run AND status <> 'undone'"),
        sqlite_where=sa.text("dry_run = 0 AND status <> 'undone'"),
    )

    op.create_table(
        "import_rows",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("shop_id", BIG_ID, nullable=False),
        sa.Column("batch_id", BIG_ID, nullable=False),
        sa.Column("line", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("shopper_key", sa.String(length=330), nullable=True),
        sa.Column("customer_id", sa.BigInteger(), nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("member_id", sa.BigInteger(), nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=True),
        sa.Column("lifetime_points", sa.BigInteger(), nullable=True),
        sa.Column("lifetime_spend_minor", sa.BigInteger(), nullable=True),
        sa.Column("birthday", sa.String(length=10), nullable=True),
        sa.Column("tier", sa.String(length=120), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("matched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_import_rows_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["import_batches.id"], name=op.f("fk_import_rows_batch_id_import_batches"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_rows")),
    )
    op.create_index("uq_import_rows_line", "import_rows", ["shop_id", "batch_id", "line"], unique=True)
    op.create_index(
        "uq_import_rows_shopper",
        "import_rows",
        ["shop_id", "batch_id", "shopper_key"],
        unique=True,
        postgresql_where=sa.text("shopper_key IS NOT NULL"),
        sqlite_where=sa.text("shopper_key IS NOT NULL"),
    )
    for name, column in (("ix_import_rows_pending_customer", "customer_id"), ("ix_import_rows_pending_email", "email")):
        op.create_index(
            name,
            "import_rows",
            ["shop_id", column],
            postgresql_where=sa.text("status = 'pending'"),
            sqlite_where=sa.text("status = 'pending'"),
        )
    op.create_index(
        "uq_import_rows_member",
        "import_rows",
        ["shop_id", "batch_id", "member_id"],
        unique=True,
        postgresql_where=sa.text("member_id IS NOT NULL"),
        sqlite_where=sa.text("member_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_table("import_batches")
