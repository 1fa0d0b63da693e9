"""ledger invariants in the database: kind and points checks, balance moved by trigger

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:30:00

PostgreSQL: CHECK constraints on postings.kind and points <> 0; a BEFORE INSERT trigger that locks the member
and sets balance_after; an AFTER INSERT trigger that moves members.balance (only for rows really inserted, so
ON CONFLICT DO NOTHING moves nothing); members.balance starts at zero and changes only from inside that trigger.
SQLite: the same CHECKs (the table is rebuilt, and its append-only triggers with it); balance_after is checked,
not set; the balance is moved by an AFTER INSERT trigger and any other change of it must equal the sum.
See docs/decisions/0012-ledger-invariants-in-the-database.md.
"""

from __future__ import annotations

from alembic import op

from plugin.ledger.kinds import kind_check

# The kinds as this revision knows them, frozen here: a later kind comes with a migration that rebuilds the CHECK.
KINDS = ("earn", "reverse", "redeem", "return", "adjust", "expire", "bonus", "forgive", "import")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

KIND_CHECK = "ck_postings_kind"
POINTS_CHECK = "ck_postings_points_nonzero"

POSTGRES_TRIGGERS = """
CREATE FUNCTION postings_set_balance_after() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    balance_before bigint;
BEGIN
    -- Lock the member row (as ledger.post does), so balance_after is exact; move nothing yet: this trigger
    -- also fires for a row that ON CONFLICT DO NOTHING then skips.
    SELECT balance INTO balance_before FROM members
        WHERE id = NEW.member_id AND shop_id = NEW.shop_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'posting refused: shop % has no member %', NEW.shop_id, NEW.member_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    NEW.balance_after := balance_before + NEW.points;
    RETURN NEW;
END $$;

CREATE FUNCTION postings_move_balance() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    UPDATE members SET balance = balance + NEW.points WHERE id = NEW.member_id RETURNING balance INTO moved;
    -- Equal unless one statement inserted two postings of this member: row triggers after the insert run at
    -- the statement's end, so the second row's balance_after could not count the first.
    IF moved IS DISTINCT FROM NEW.balance_after THEN
        RAISE EXCEPTION 'posting refused: write one posting of member % per statement', NEW.member_id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION members_balance_moves_with_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        RAISE EXCEPTION 'members.balance starts at 0; postings move it (member %)', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;
    RAISE EXCEPTION 'members.balance moves only with a posting: UPDATE of member % refused', NEW.id
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER postings_balance_after BEFORE INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_set_balance_after();
CREATE TRIGGER postings_move_balance AFTER INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_move_balance();
-- pg_trigger_depth() is 0 for a statement on members itself and 1 for the UPDATE that postings_move_balance
-- issues: the guard's function runs only to refuse, so a posting pays for no extra call.
CREATE TRIGGER members_balance_guard BEFORE UPDATE OF balance ON members
    FOR EACH ROW WHEN (pg_trigger_depth() = 0 AND NEW.balance IS DISTINCT FROM OLD.balance)
    EXECUTE FUNCTION members_balance_moves_with_postings();
CREATE TRIGGER members_balance_starts_at_zero BEFORE INSERT ON members
    FOR EACH ROW WHEN (NEW.balance <> 0)
    EXECUTE FUNCTION members_balance_moves_with_postings();
"""

POSTGRES_DROP = """
DROP TRIGGER members_balance_starts_at_zero ON members;
DROP TRIGGER members_balance_guard ON members;
DROP TRIGGER postings_move_balance ON postings;
DROP TRIGGER postings_balance_after ON postings;
DROP FUNCTION members_balance_moves_with_postings();
DROP FUNCTION postings_move_balance();
DROP FUNCTION postings_set_balance_after();
"""

# As 0001 and 0004 left them; rebuilding the table for its CHECKs drops them.
SQLITE_APPEND_ONLY = [
    "CREATE TRIGGER postings_no_update BEFORE UPDATE ON postings "
    "BEGIN SELECT RAISE(ABORT, 'postings are append-only: UPDATE refused'); END",
    "CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings "
    "WHEN NOT EXISTS (SELECT 1 FROM ledger_erasures WHERE shop_id = OLD.shop_id) "
    "BEGIN SELECT RAISE(ABORT, 'postings are append-only: DELETE refused'); END",
]

# SQLite triggers cannot change NEW, and have no session settings: balance_after is checked (SQLite has one
# writer at a time, so the writer's own read is exact), and a balance change must land on the postings' sum.
SQLITE_BALANCE = [
    "CREATE TRIGGER postings_balance_after BEFORE INSERT ON postings "
    "WHEN NEW.balance_after IS NOT "
    "(SELECT balance + NEW.points FROM members WHERE id = NEW.member_id AND shop_id = NEW.shop_id) "
    "BEGIN SELECT RAISE(ABORT, 'posting refused: balance_after must be the member''s balance plus points'); END",
    "CREATE TRIGGER postings_move_balance AFTER INSERT ON postings "
    "BEGIN UPDATE members SET balance = balance + NEW.points WHERE id = NEW.member_id; END",
    "CREATE TRIGGER members_balance_guard BEFORE UPDATE OF balance ON members "
    "WHEN NEW.balance IS NOT OLD.balance AND NEW.balance IS NOT "
    "(SELECT coalesce(sum(points), 0) FROM postings WHERE shop_id = NEW.shop_id AND member_id = NEW.id) "
    "BEGIN SELECT RAISE(ABORT, 'members.balance moves only with a posting: UPDATE refused'); END",
    "CREATE TRIGGER members_balance_starts_at_zero BEFORE INSERT ON members WHEN NEW.balance <> 0 "
    "BEGIN SELECT RAISE(ABORT, 'members.balance starts at 0; postings move it'); END",
]
SQLITE_BALANCE_TRIGGERS = (
    "members_balance_starts_at_zero",
    "members_balance_guard",
    "postings_move_balance",
    "postings_balance_after",
)


def upgrade() -> None:
    # Built from this revision's frozen KINDS: a later migration that adds a kind drops and re-adds this CHECK.
    with op.batch_alter_table("postings", recreate="auto") as batch_op:
        batch_op.create_check_constraint(KIND_CHECK, kind_check(KINDS))
        batch_op.create_check_constraint(POINTS_CHECK, "points <> 0")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_TRIGGERS)
    else:
        for statement in SQLITE_APPEND_ONLY + SQLITE_BALANCE:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_DROP)
    else:
        for name in SQLITE_BALANCE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("postings", recreate="auto") as batch_op:
        batch_op.drop_constraint(POINTS_CHECK, type_="check")
        batch_op.drop_constraint(KIND_CHECK, type_="check")
    if op.get_bind().dialect.name != "postgresql":
        for statement in SQLITE_APPEND_ONLY:
            op.execute(statement)
