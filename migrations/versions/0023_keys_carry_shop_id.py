"""Every per-shop key carries shop_id: primary keys (shop_id, id) and composite foreign keys (decision 0026)

On PostgreSQL only. A distributed PostgreSQL (Citus, distribution column shop_id) enforces a primary key,
unique constraint or foreign key only when it includes the distribution column, because each shop's rows live
on one shard and the database checks keys shard by shard. SQLite, the one-process development database, keeps
its single-column keys (decision 0004): its INTEGER PRIMARY KEY is what makes `id` auto-increment there.

`id` keeps its sequence, so it stays unique on its own and the ORM keeps using it as each row's identity.

Revision ID: 0023
Revises: 0022b
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022b"
branch_labels = None
depends_on = None

# Frozen here, so this revision's effect never changes when a later one adds tables (they follow the rule
# themselves; tests/test_distribution_schema.py checks the live schema after every migration).
PER_SHOP_TABLES = (
    "members",
    "orders",
    "refunds",
    "postings",
    "redemptions",
    "support_actions",
    "rule_sets",
    "products",
    "outbox_events",
    "import_batches",
    "import_rows",
)
# (table, columns, referred table, referred columns, ON DELETE): foreign keys from one per-shop table to another.
FOREIGN_KEYS = (
    ("orders", "member_id", "members", "id", None),
    ("postings", "member_id", "members", "id", None),
    ("redemptions", "member_id", "members", "id", None),
    ("support_actions", "member_id", "members", "id", None),
    ("import_rows", "batch_id", "import_batches", "id", "CASCADE"),
)

# The posting trigger of migration 0008 moved the balance by member id alone: on a sharded database a statement
# without the distribution column is sent to every shard.
MOVE_BALANCE = """
CREATE OR REPLACE FUNCTION postings_move_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    UPDATE members SET balance = balance + NEW.points
        WHERE shop_id = NEW.shop_id AND id = NEW.member_id RETURNING balance INTO moved;
    -- Equal unless one statement inserted two postings of this member: row triggers after the insert run at
    -- the statement's end, so the second row's balance_after could not count the first.
    IF moved IS DISTINCT FROM NEW.balance_after THEN
        RAISE EXCEPTION 'posting refused: write one posting of member % per statement', NEW.member_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
"""
MOVE_BALANCE_0008 = MOVE_BALANCE.replace(
    "WHERE shop_id = NEW.shop_id AND id = NEW.member_id", "WHERE id = NEW.member_id"
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _postgresql():
        return
    for table, column, referred, _, _ in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_{column}_{referred}")
    for table in PER_SHOP_TABLES:
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, ADD CONSTRAINT pk_{table} PRIMARY KEY (shop_id, id)"
        )
    for table, column, referred, referred_column, on_delete in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{column}_{referred} FOREIGN KEY (shop_id, {column}) "
            f"REFERENCES {referred} (shop_id, {referred_column})" + (f" ON DELETE {on_delete}" if on_delete else "")
        )
    op.execute(MOVE_BALANCE)


def downgrade() -> None:
    if not _postgresql():
        return
    op.execute(MOVE_BALANCE_0008)
    for table, column, referred, _, _ in FOREIGN_KEYS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT fk_{table}_{column}_{referred}")
    for table in PER_SHOP_TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, ADD CONSTRAINT pk_{table} PRIMARY KEY (id)")
    for table, column, referred, referred_column, on_delete in FOREIGN_KEYS:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT fk_{table}_{column}_{referred} FOREIGN KEY ({column}) "
            f"REFERENCES {referred} ({referred_column})" + (f" ON DELETE {on_delete}" if on_delete else "")
        )
