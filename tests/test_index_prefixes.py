"""No index is the leading part of another: every row written would maintain it for nothing (decision 0089)."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text

from tests.conftest import alembic_config
from tests.schema_reads import indexes

# A plain index (not unique: a unique one's shorter key is a rule of its own) whose key columns lead another index of
# the same table, with the same predicate, and whose included columns that index holds too: any query it serves,
# the longer one serves as well.
REDUNDANT = """
SELECT short.indexrelid::regclass::text, long.indexrelid::regclass::text
FROM pg_index AS short
JOIN pg_index AS long ON long.indrelid = short.indrelid AND long.indexrelid <> short.indexrelid
JOIN pg_class AS t ON t.oid = short.indrelid
WHERE t.relnamespace = current_schema()::regnamespace
  AND NOT short.indisunique
  AND short.indexprs IS NULL AND long.indexprs IS NULL
  AND pg_get_expr(short.indpred, short.indrelid) IS NOT DISTINCT FROM pg_get_expr(long.indpred, long.indrelid)
  AND short.indnkeyatts <= long.indnkeyatts
  AND (short.indkey::int2[])[0:short.indnkeyatts - 1] = (long.indkey::int2[])[0:short.indnkeyatts - 1]
  AND (short.indkey::int2[])[short.indnkeyatts:] <@ long.indkey::int2[]
ORDER BY 1, 2
"""


def redundant(connection) -> list[tuple[str, str]]:
    return [tuple(row) for row in connection.execute(text(REDUNDANT))]


def test_no_index_of_the_live_schema_leads_another(pg_engine):
    with pg_engine.connect() as connection:
        assert redundant(connection) == []


def test_an_index_that_leads_another_is_caught_and_one_with_its_own_columns_is_not(pg_engine):
    with pg_engine.connect() as connection, connection.begin() as transaction:
        connection.execute(
            text(
                "CREATE TABLE prefix_probe (shop_id bigint, paid_at timestamptz, member_id bigint,"
                " PRIMARY KEY (shop_id, member_id))"
            )
        )
        connection.execute(text("CREATE INDEX probe_long ON prefix_probe (shop_id, paid_at, member_id)"))
        connection.execute(text("CREATE INDEX probe_short ON prefix_probe (shop_id, paid_at)"))
        connection.execute(text("CREATE INDEX probe_other ON prefix_probe (shop_id, member_id)"))
        connection.execute(text("CREATE UNIQUE INDEX probe_unique ON prefix_probe (shop_id)"))
        connection.execute(text("CREATE INDEX probe_partial ON prefix_probe (shop_id) WHERE member_id IS NOT NULL"))
        connection.execute(text("CREATE INDEX probe_included ON prefix_probe (shop_id) INCLUDE (member_id)"))
        found = [pair for pair in redundant(connection) if pair[0].startswith("probe_")]
        transaction.rollback()
    # probe_included's member_id is in every longer index, so it leads them all; probe_other copies the primary key.
    assert found == [
        ("probe_included", "prefix_probe_pkey"),
        ("probe_included", "probe_long"),
        ("probe_included", "probe_other"),
        ("probe_other", "prefix_probe_pkey"),
        ("probe_short", "probe_long"),
    ]


def test_the_migration_drops_the_two_copies_and_the_downgrade_restores_them(scratch_url):
    config = alembic_config(scratch_url)
    on_postgresql = scratch_url.startswith("postgresql")
    command.upgrade(config, "0040")
    assert {"ix_orders_shop_id_paid_at", "ix_orders_shop_id_paid_at_member_id"} <= indexes(scratch_url, "orders").keys()
    assert "ix_import_batches_shop_id_id" in indexes(scratch_url, "import_batches")
    command.upgrade(config, "0041")
    orders = indexes(scratch_url, "orders")
    assert "ix_orders_shop_id_paid_at" not in orders and "ix_orders_shop_id_paid_at_member_id" in orders
    # SQLite's primary key is id alone: there the index is a shop's batches in order, no copy.
    assert ("ix_import_batches_shop_id_id" in indexes(scratch_url, "import_batches")) is not on_postgresql
    command.downgrade(config, "0040")
    assert "ix_orders_shop_id_paid_at" in indexes(scratch_url, "orders")
    assert "ix_import_batches_shop_id_id" in indexes(scratch_url, "import_batches")
    command.upgrade(config, "head")
