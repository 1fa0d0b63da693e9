"""support actions remember a fingerprint of the request their Idempotency-Key made

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02 16:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: actions recorded before this revision have no fingerprint, and a retry of one is answered as before.
    with op.batch_alter_table("support_actions") as batch:
        batch.add_column(sa.Column("request_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("support_actions") as batch:
        batch.drop_column("request_fingerprint")
