"""report roll-ups: postings summed per shop-local day, written with each posting (decision 0023)

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-03 08:00:00

PostgreSQL: an AFTER INSERT trigger on postings adds one row to ledger_day_deltas (the posting's shop-local day,
kind, source and points) in the posting's own transaction: an insert, never an update, so concurrent writers
never wait on a shared counter row. A compaction (plugin/services/report_rollups.py) moves deltas into
ledger_days, one row per (shop, day, kind, source), in one transaction; reports read both tables, so they are
exact whether or not compaction has run. Existing postings are summed into ledger_days here.
SQLite (the embedded, single-shop demo): no trigger; reports sum the postings themselves.
Also: report_settings (the merchant's point value), an index for pending points at a date, and one for active
members (paid orders per day with their member).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0019"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")

POSTGRES_TRIGGER = """
CREATE FUNCTION postings_day_delta() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The shop-local day the posting belongs to; AFTER INSERT fires only for rows really inserted, so a
    -- duplicate idempotency key (ON CONFLICT DO NOTHING) adds nothing.
    INSERT INTO ledger_day_deltas (shop_id, day, kind, source_type, points)
    SELECT NEW.shop_id, (NEW.created_at AT TIME ZONE s.time_zone)::date, NEW.kind, NEW.source_type, NEW.points
    FROM shops s WHERE s.id = NEW.shop_id;
    RETURN NULL;
END $$;

CREATE TRIGGER postings_day_delta AFTER INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_day_delta();
"""

POSTGRES_BACKFILL = """
INSERT INTO ledger_days (shop_id, day, kind, source_type, points_in, points_out, postings)
SELECT p.shop_id, (p.created_at AT TIME ZONE s.time_zone)::date, p.kind, p.source_type,
       sum(greatest(p.points, 0)), sum(least(p.points, 0)), count(*)
FROM postings p JOIN shops s ON s.id = p.shop_id
GROUP BY 1, 2, 3, 4
"""


def upgrade() -> None:
    op.create_table(
        "ledger_days",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_type", sa.String(length=24), nullable=False),
        sa.Column("points_in", sa.BigInteger(), nullable=False),
        sa.Column("points_out", sa.BigInteger(), nullable=False),
        sa.Column("postings", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_ledger_days_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "day", "kind", "source_type", name=op.f("pk_ledger_days")),
    )
    op.create_table(
        "ledger_day_deltas",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("id", BigId, sa.Identity(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source_type", sa.String(length=24), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_ledger_day_deltas_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", "id", name=op.f("pk_ledger_day_deltas")),
    )
    op.create_table(
        "report_settings",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("point_value", sa.Numeric(18, 6), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["shop_id"], ["shops.id"], name=op.f("fk_report_settings_shop_id_shops"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("shop_id", name=op.f("pk_report_settings")),
    )
    # Pending points at a date: postings made before it whose hold ends after it (few rows: holds are short).
    op.create_index(
        "ix_postings_pending",
        "postings",
        ["shop_id", "available_at"],
        postgresql_where=sa.text("available_at IS NOT NULL"),
        sqlite_where=sa.text("available_at IS NOT NULL"),
    )
    # Active members: distinct members with a paid order in a window, read from the index alone.
    op.create_index("ix_orders_shop_id_paid_at_member_id", "orders", ["shop_id", "paid_at", "member_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TRIGGER)
        op.execute(POSTGRES_BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER postings_day_delta ON postings")
        op.execute("DROP FUNCTION postings_day_delta()")
    op.drop_index("ix_orders_shop_id_paid_at_member_id", table_name="orders")
    op.drop_index("ix_postings_pending", table_name="postings")
    op.drop_table("report_settings")
    op.drop_table("ledger_day_deltas")
    op.drop_table("ledger_days")
