"""postings and paid orders: their AFTER INSERT triggers once per statement, not per row (decision 0050)

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-04 22:40:00

PostgreSQL only. The drain writes a batch's postings and orders with one INSERT each, and three row-level AFTER
INSERT triggers then ran a PL/pgSQL call per row: the balance move, the day delta, and the member-month recount
(four statements per order). They are now statement-level triggers with a transition table:

- `postings_moved`: one UPDATE of members for all the statement's postings, then the same refusal as before when a
  member's new balance is not its posting's `balance_after` (two postings of one member in one statement), or when
  a member was not found.
- `postings_day_delta` (same name, so bench/reports.py's baseline still disables it alone): one INSERT of the
  statement's day deltas, one row per posting as before (the compaction counts them).
- `orders_member_months_inserted`: the member-months the statement's paid orders join are locked (created if
  new) in key order by one upsert, then recounted from their orders by one UPDATE, a new statement that sees every
  order committed before the locks (decision 0033).

`postings_balance_after` (BEFORE, per row: it sets NEW) and every other trigger stay as they were; the update and
delete triggers of orders still recount per row. SQLite (the embedded demo) keeps its own triggers.
"""

from __future__ import annotations

from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None

POSTGRES_UPGRADE = """
CREATE FUNCTION postings_moved() RETURNS trigger LANGUAGE plpgsql AS $$
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
    )
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

CREATE FUNCTION postings_day_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The shop-local day of each posting really inserted (decision 0023): one delta per posting, as the
    -- compaction counts them.
    INSERT INTO ledger_day_deltas (shop_id, day, kind, source_type, points)
    SELECT r.shop_id, (r.created_at AT TIME ZONE s.time_zone)::date, r.kind, r.source_type, r.points
    FROM new_rows r JOIN shops s ON s.id = r.shop_id;
    RETURN NULL;
END $$;

CREATE FUNCTION orders_member_months_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Lock (or create) each member-month the statement's paid orders join, once and in key order, so two writers
    -- lock them in the same order; a concurrent writer of one of them waits here.
    INSERT INTO member_order_months AS m (shop_id, member_id, month, orders, sales, first_paid_at, last_paid_at)
    SELECT r.shop_id, r.member_id, date_trunc('month', r.paid_at AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date,
           0, 0, min(r.paid_at), min(r.paid_at)
    FROM new_rows r JOIN shops s ON s.id = r.shop_id
    WHERE r.paid_at IS NOT NULL AND r.member_id IS NOT NULL
    GROUP BY 1, 2, 3
    ORDER BY 1, 2, 3
    ON CONFLICT (shop_id, member_id, month) DO UPDATE SET orders = m.orders;
    -- Then recount them from their orders: a new statement, which sees every order committed before the locks.
    UPDATE member_order_months m
    SET (orders, sales, first_paid_at, last_paid_at) = (
        SELECT count(*), coalesce(sum(o.sales), 0), coalesce(min(o.paid_at), m.first_paid_at),
               coalesce(max(o.paid_at), m.last_paid_at)
        FROM orders o
        WHERE o.shop_id = m.shop_id AND o.member_id = m.member_id
          AND o.paid_at >= k.month::timestamp AT TIME ZONE k.zone
          AND o.paid_at < (k.month + interval '1 month')::timestamp AT TIME ZONE k.zone
    )
    FROM (
        SELECT DISTINCT r.shop_id, r.member_id, coalesce(s.time_zone, 'UTC') AS zone,
               date_trunc('month', r.paid_at AT TIME ZONE coalesce(s.time_zone, 'UTC'))::date AS month
        FROM new_rows r JOIN shops s ON s.id = r.shop_id
        WHERE r.paid_at IS NOT NULL AND r.member_id IS NOT NULL
    ) k
    WHERE m.shop_id = k.shop_id AND m.member_id = k.member_id AND m.month = k.month;
    RETURN NULL;
END $$;

DROP TRIGGER postings_move_balance ON postings;
DROP TRIGGER postings_day_delta ON postings;
DROP TRIGGER orders_member_month_insert ON orders;
CREATE TRIGGER postings_moved AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION postings_moved();
CREATE TRIGGER postings_day_delta AFTER INSERT ON postings
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION postings_day_deltas();
CREATE TRIGGER orders_member_months_inserted AFTER INSERT ON orders
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION orders_member_months_inserted();
"""

# As 0008, 0022 and 0028 left them (their functions stay: 0033 drops only the triggers).
POSTGRES_DOWNGRADE = """
DROP TRIGGER orders_member_months_inserted ON orders;
DROP TRIGGER postings_day_delta ON postings;
DROP TRIGGER postings_moved ON postings;
DROP FUNCTION orders_member_months_inserted();
DROP FUNCTION postings_day_deltas();
DROP FUNCTION postings_moved();
CREATE TRIGGER postings_move_balance AFTER INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_move_balance();
CREATE TRIGGER postings_day_delta AFTER INSERT ON postings
    FOR EACH ROW EXECUTE FUNCTION postings_day_delta();
CREATE TRIGGER orders_member_month_insert AFTER INSERT ON orders
    FOR EACH ROW WHEN (NEW.paid_at IS NOT NULL AND NEW.member_id IS NOT NULL)
    EXECUTE FUNCTION orders_member_month();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_UPGRADE)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_DOWNGRADE)
