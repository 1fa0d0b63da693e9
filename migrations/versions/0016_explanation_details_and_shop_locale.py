"""postings.details: explanations as data, rendered in the shop's language; shops.locale (decision 0026)

Revision ID: 0016
Revises: 0020
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0016"
down_revision = "0020"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # A nullable column with no default: PostgreSQL adds it without rewriting the (large) postings table, and
    # the append-only triggers, which refuse UPDATE and DELETE, are untouched. Older postings keep their note.
    with op.batch_alter_table("postings") as batch:
        batch.add_column(sa.Column("details", Json, nullable=True))
    with op.batch_alter_table("shops") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=16), nullable=False, server_default="en"))


def downgrade() -> None:
    with op.batch_alter_table("shops") as batch:
        batch.drop_column("locale")
    with op.batch_alter_table("postings") as batch:
        batch.drop_column("details")
