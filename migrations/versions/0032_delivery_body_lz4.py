"""deliveries.body compressed with lz4 instead of pglz: a third less PostgreSQL CPU per stored delivery

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-04 19:40:00

PostgreSQL only, and only where the server was built with lz4 (PostgreSQL 14+ `--with-lz4`, as Debian's and the
official images are); elsewhere nothing changes. Every webhook body (7 kB for a typical order) is stored on the
ack path and read once by the drain; pglz compressed each one in about 340 microseconds of backend CPU per insert
and lz4 in about 240, median of six alternating rounds of 4,000 inserts (docs/decisions/0045). Rows already
stored keep pglz and are still read: PostgreSQL records the method per value.
"""

from __future__ import annotations

from alembic import op

from plugin.db import lz4_available

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if lz4_available(op.get_bind()):
        op.execute("ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE deliveries ALTER COLUMN body SET COMPRESSION default")
