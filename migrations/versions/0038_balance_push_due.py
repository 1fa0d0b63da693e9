"""balance pushes: the members due one listed in balance_push_due, not found by a partial index on balance (decision 0062)

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-06 01:00:00

`ix_members_unpushed` (migration 0003) found the members whose balance the shop has not been sent by its predicate
`balance IS DISTINCT FROM pushed_balance`. A column named by an index's predicate counts as indexed, so every
balance change (the ledger's statement trigger, one per order) was a non-HOT update of members: a new entry in each
of its indexes. The members due a push are now rows of `balance_push_due` (shop_id, member_id), which the posting
trigger fills (ON CONFLICT DO NOTHING: once per member until pushed) and services/balance_push.py empties for the
members whose sent balance is still their balance. No index of members names `balance` any more, and members get
fillfactor 90, so the update finds room on its own page (HOT needs both). The upgrade lists every member already
behind; the downgrade restores the index and 0033's trigger function and drops the table (the index finds the same
members again: it reads the columns, not the table).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

# postings_moved as migration 0033 made it, with {due} in its statement: the upgrade lists the moved members as
# due there, one more part of the same statement (no second trigger reading the transition table again).
FUNCTION = """
CREATE OR REPLACE FUNCTION postings_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    members_posted bigint;
    members_moved bigint;
    refused bigint;
BEGIN
    -- Each member's postings of the statement at once. The member rows are locked already, in the rows' order,
    -- by postings_balance_after; AFTER triggers see only rows really inserted, so a duplicate idempotency key
    -- (ON CONFLICT DO NOTHING) moves nothing.
    WITH per_member AS (
        SELECT shop_id, member_id, sum(points) AS points, count(*) AS postings, max(balance_after) AS balance_after
        FROM new_rows GROUP BY shop_id, member_id
    ), moved AS (
        UPDATE members m SET balance = m.balance + p.points
        FROM per_member p WHERE m.shop_id = p.shop_id AND m.id = p.member_id
        RETURNING m.id, m.balance, p.postings, p.balance_after
    ){due}
    -- A member with two postings in one statement: each row's balance_after counted only the balance before the
    -- statement, so the second could not count the first. (Read from the UPDATE's own rows, not joined back:
    -- the planner cannot estimate them.)
    SELECT (SELECT count(*) FROM per_member), count(*),
           min(id) FILTER (WHERE postings > 1 OR balance IS DISTINCT FROM balance_after)
    INTO members_posted, members_moved, refused
    FROM moved;
    IF refused IS NOT NULL THEN
        RAISE EXCEPTION 'posting refused: write one posting of member % per statement', refused
            USING ERRCODE = 'check_violation';
    END IF;
    IF members_moved <> members_posted THEN
        RAISE EXCEPTION 'posting refused: % of the statement''s members not found', members_posted - members_moved
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
"""
# Under the member's lock (postings_balance_after took it), so a push marking the member cannot interleave; a
# member already due stays one row. In key order, as the members were locked.
DUE = """, due AS (
        INSERT INTO balance_push_due (shop_id, member_id)
        SELECT shop_id, member_id FROM per_member ORDER BY 1, 2
        ON CONFLICT DO NOTHING
    )"""
POSTGRES_UPGRADE = FUNCTION.format(due=DUE) + "ALTER TABLE members SET (fillfactor = 90);"
POSTGRES_DOWNGRADE = FUNCTION.format(due="") + "ALTER TABLE members RESET (fillfactor);"

SQLITE_UPGRADE = (
    "CREATE TRIGGER postings_push_due AFTER INSERT ON postings "
    "BEGIN INSERT OR IGNORE INTO balance_push_due (shop_id, member_id) VALUES (NEW.shop_id, NEW.member_id); END"
)
SQLITE_DOWNGRADE = "DROP TRIGGER postings_push_due"

UNPUSHED = {
    "postgresql_where": sa.text("balance IS DISTINCT FROM pushed_balance"),
    "sqlite_where": sa.text("balance IS NOT pushed_balance"),
}
BEHIND = {"postgresql": "balance IS DISTINCT FROM pushed_balance", "sqlite": "balance IS NOT pushed_balance"}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # Released while the old processes still drain: a posting that moved a balance before the list's snapshot
        # but committed after it would be neither listed below nor by the old trigger. The lock waits for those
        # and holds later ones until the new trigger lists them (the upgrade's transaction commits).
        op.execute("LOCK TABLE members IN SHARE ROW EXCLUSIVE MODE")
    op.create_table(
        "balance_push_due",
        sa.Column("shop_id", sa.BigInteger(), sa.ForeignKey("shops.id", ondelete="CASCADE"), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("shop_id", "member_id"),
        # With its member (a shop's erasure deletes them); SQLite's members keep their one-column key (0023).
        sa.ForeignKeyConstraint(
            ["shop_id", "member_id"] if dialect == "postgresql" else ["member_id"],
            ["members.shop_id", "members.id"] if dialect == "postgresql" else ["members.id"],
            ondelete="CASCADE",
        ),
    )
    # The members already behind (a new member with no push yet among them: NULL is not its balance).
    op.execute(
        f"INSERT INTO balance_push_due (shop_id, member_id) SELECT shop_id, id FROM members WHERE {BEHIND[dialect]}"
    )
    op.drop_index("ix_members_unpushed", table_name="members", **UNPUSHED)
    op.execute(POSTGRES_UPGRADE if dialect == "postgresql" else SQLITE_UPGRADE)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute(POSTGRES_DOWNGRADE if dialect == "postgresql" else SQLITE_DOWNGRADE)
    op.create_index("ix_members_unpushed", "members", ["shop_id", "id"], **UNPUSHED)
    op.drop_table("balance_push_due")
