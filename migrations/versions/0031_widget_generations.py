"""widget generations: triggers that note which shops and shoppers a transaction changed (decision 0044)

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-04 16:10:00

PostgreSQL only. Statement-level triggers (with transition tables, so a bulk write costs one call per statement,
not per row) on the tables the widget's answer is made of (shops, expiry_policies, members, postings,
redemptions) add the touched (shop, customer) pairs to a transaction-local setting, `loyalty.widget_touched`:
`,<shop id>:<customer id>,` per shopper, `,<shop id>:*,` for the whole shop (a shop's or its expiry policy's row,
or more than MEMBER_CAP shoppers in one transaction). Before the commit, plugin/generations.py reads the setting
on the same connection and bumps those generations in Redis, so no writer has to remember to.

A members UPDATE is noted per row, and only for the columns the widget can show: PostgreSQL allows no column list
on a trigger with transition tables, and without one every posting (whose trigger moves `balance`) would call it
again; the posting's own trigger already notes the shopper. `pushed_balance` and `pushed_tier` (the pushes to
Shopify) are not shown.
SQLite (the embedded demo) computes every widget read: nothing to record.
"""

from __future__ import annotations

from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None

MEMBER_CAP = 500  # past this many shoppers in one transaction, their shops' generations invalidate them all

# Every members column but balance, pushed_balance and pushed_tier (what was last written to Shopify, not shown),
# as of this revision: tests/test_widget_cache.py fails when a column is added, so the migration that adds one
# also adds it here (or says why not).
MEMBER_COLUMNS = (
    "id, shop_id, customer_id, email, first_name, last_name, enrolled_at, tags, tier, tier_until, tier_paid_until"
)

POSTGRES_FUNCTIONS = f"""
CREATE FUNCTION widget_touch(added text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    seen text := coalesce(nullif(current_setting('loyalty.widget_touched', true), ''), ',');
    fresh text;
BEGIN
    -- Only entries not noted yet, and none of a shop already noted whole: the setting stays small.
    SELECT string_agg(e, ',') INTO fresh
      FROM (SELECT DISTINCT e FROM unnest(string_to_array(added, ',')) e WHERE e <> '') x
     WHERE position(',' || e || ',' IN seen) = 0
       AND position(',' || split_part(e, ':', 1) || ':*,' IN seen) = 0;
    IF fresh IS NULL THEN
        RETURN;
    END IF;
    seen := seen || fresh || ',';
    IF length(seen) - length(replace(seen, ',', '')) > {MEMBER_CAP} + 1 THEN
        SELECT ',' || string_agg(DISTINCT split_part(e, ':', 1) || ':*', ',') || ',' INTO seen
          FROM unnest(string_to_array(seen, ',')) e WHERE e <> '';
    END IF;
    PERFORM set_config('loyalty.widget_touched', seen, true);
END $$;

CREATE FUNCTION widget_touched_shops() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM widget_touch((SELECT string_agg(id || ':*', ',') FROM old_rows));
    ELSE
        PERFORM widget_touch((SELECT string_agg(id || ':*', ',') FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION widget_touched_expiry_policies() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM widget_touch((SELECT string_agg(shop_id || ':*', ',') FROM old_rows));
    ELSE
        PERFORM widget_touch((SELECT string_agg(shop_id || ':*', ',') FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION widget_touched_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM widget_touch((SELECT string_agg(shop_id || ':' || customer_id, ',') FROM old_rows));
    ELSE
        PERFORM widget_touch((SELECT string_agg(shop_id || ':' || customer_id, ',') FROM new_rows));
    END IF;
    RETURN NULL;
END $$;

-- Per row (see above). An update may change customer_id (erasure): the old and the new shopper are noted.
CREATE FUNCTION widget_touched_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM widget_touch(OLD.shop_id || ':' || OLD.customer_id || ',' || NEW.shop_id || ':' || NEW.customer_id);
    RETURN NULL;
END $$;

-- Postings and redemptions carry the member's id; the widget's reader knows the shopper's customer id.
-- A member deleted in the same statement is noted by the members trigger.
CREATE FUNCTION widget_touched_member_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM widget_touch((SELECT string_agg(DISTINCT r.shop_id || ':' || m.customer_id, ',')
                                FROM old_rows r JOIN members m ON m.shop_id = r.shop_id AND m.id = r.member_id));
    ELSE
        PERFORM widget_touch((SELECT string_agg(DISTINCT r.shop_id || ':' || m.customer_id, ',')
                                FROM new_rows r JOIN members m ON m.shop_id = r.shop_id AND m.id = r.member_id));
    END IF;
    RETURN NULL;
END $$;
"""

# (table, function, events): postings are append-only (their UPDATE is refused), erased with their shop.
TRIGGERS = (
    ("shops", "widget_touched_shops", ("INSERT", "UPDATE", "DELETE")),
    ("expiry_policies", "widget_touched_expiry_policies", ("INSERT", "UPDATE", "DELETE")),
    ("members", "widget_touched_members", ("INSERT", "DELETE")),
    ("members", "widget_touched_member", ("UPDATE",)),
    ("postings", "widget_touched_member_rows", ("INSERT", "DELETE")),
    ("redemptions", "widget_touched_member_rows", ("INSERT", "UPDATE", "DELETE")),
)

_REFERENCING = {
    "INSERT": "REFERENCING NEW TABLE AS new_rows",
    "UPDATE": "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "DELETE": "REFERENCING OLD TABLE AS old_rows",
}


def _create_trigger(table: str, function: str, event: str) -> str:
    if (table, event) == ("members", "UPDATE"):
        return (
            f"CREATE TRIGGER widget_touched_update AFTER UPDATE OF {MEMBER_COLUMNS} ON members "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
    return (
        f"CREATE TRIGGER widget_touched_{event.lower()} AFTER {event} ON {table} "
        f"{_REFERENCING[event]} FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
    )


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(POSTGRES_FUNCTIONS)
    for table, function, events in TRIGGERS:
        for event in events:
            op.execute(_create_trigger(table, function, event))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, _function, events in TRIGGERS:
        for event in events:
            op.execute(f"DROP TRIGGER widget_touched_{event.lower()} ON {table}")
    for function in dict.fromkeys(f for _t, f, _e in TRIGGERS):
        op.execute(f"DROP FUNCTION {function}()")
    op.execute("DROP FUNCTION widget_touch(text)")
