"""orders: the lot's four sums the member rules read, written with the lot, so a read need not sum its JSON

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-07 12:20:00

Decision 0094. Four nullable columns, added without a default (no row is rewritten); rows already stored keep them
NULL and are read as before, from their lot's JSON. On PostgreSQL a trigger empties them when a statement writes a
lot without them (a tier correction, the one-by-one path's UPDATE of an orders/create row), so stale sums are never
read. SQLite (the embedded demo) reads whole lots and never these columns: no trigger there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None

POSTGRES_TRIGGER = """
CREATE FUNCTION orders_lot_sums_stale() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The lot is written: unless the statement wrote its sums too, those stored say what the old lot held.
    IF (NEW.lot_eligible, NEW.lot_shipping_tip, NEW.lot_tier_points, NEW.lot_reasoned)
       IS NOT DISTINCT FROM (OLD.lot_eligible, OLD.lot_shipping_tip, OLD.lot_tier_points, OLD.lot_reasoned) THEN
        NEW.lot_eligible := NULL;
        NEW.lot_shipping_tip := NULL;
        NEW.lot_tier_points := NULL;
        NEW.lot_reasoned := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER orders_lot_sums_stale BEFORE UPDATE OF lot ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_lot_sums_stale();
"""


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("lot_eligible", sa.Numeric(), nullable=True))
        batch.add_column(sa.Column("lot_shipping_tip", sa.Numeric(), nullable=True))
        batch.add_column(sa.Column("lot_tier_points", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("lot_reasoned", sa.Boolean(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TRIGGER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER orders_lot_sums_stale ON orders")
        op.execute("DROP FUNCTION orders_lot_sums_stale()")
    with op.batch_alter_table("orders") as batch:
        for name in ("lot_reasoned", "lot_tier_points", "lot_shipping_tip", "lot_eligible"):
            batch.drop_column(name)
