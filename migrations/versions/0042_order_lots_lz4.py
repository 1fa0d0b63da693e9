"""orders.lot and orders.facts compressed with lz4 instead of pglz: less PostgreSQL CPU per order written and read

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-07 06:50:00

PostgreSQL only, and only where the server was built with lz4 (as for deliveries.body, migration 0032); elsewhere
nothing changes. An order's row is past TOAST's 2 kB threshold (the lot's JSON about 1.9 kB as text, the facts'
0.7 kB), so PostgreSQL compresses its lot on every write, and the member rules decompress past lots on every read
(decision 0091). Rows already stored keep pglz and are still read: PostgreSQL records the method per value.
"""

from __future__ import annotations

from alembic import op

from plugin.db import lz4_available

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if lz4_available(op.get_bind()):
        op.execute("ALTER TABLE orders ALTER COLUMN lot SET COMPRESSION lz4, ALTER COLUMN facts SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE orders ALTER COLUMN lot SET COMPRESSION default, ALTER COLUMN facts SET COMPRESSION default"
        )
