"""orders.lot and orders.facts are compressed with lz4 where the server has it (migration 0042, decision 0091)."""

from __future__ import annotations

import json

from alembic import command
from sqlalchemy import text

from plugin import inbox
from plugin.db import engine_for, transaction
from tests import builders
from tests.conftest import SHOP, alembic_config
from tests.schema_reads import skip_without_lz4

COLUMN_METHODS = text(
    "SELECT attname, attcompression FROM pg_attribute"
    " WHERE attrelid = 'orders'::regclass AND attname IN ('lot', 'facts') ORDER BY attname"
)


def test_a_drained_orders_lot_and_facts_are_lz4_compressed_and_read_back(settings, shop):
    skip_without_lz4(settings.database_url)
    engine = engine_for(settings.database_url)
    # Forty lines: the lot and the facts list every line, so the row is well past TOAST's 2 kB threshold.
    lines = [builders.line(100 + n, "10.00") for n in range(40)]
    body = json.dumps(builders.order(1, 7000, lines)).encode()
    inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", "lz4-lot-1", body))
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 1}
    with transaction(settings.database_url) as session:
        lot_method, facts_method, points_held, contributed = session.execute(
            text(
                "SELECT pg_column_compression(lot), pg_column_compression(facts), points_held,"
                " (SELECT sum((c->>'points')::bigint) FROM jsonb_array_elements(lot->'contributions') AS c)"
                " FROM orders WHERE shop_id = :shop"
            ),
            {"shop": shop},
        ).one()
    assert (lot_method, facts_method) == ("lz4", "lz4")
    assert points_held == contributed == 400


def test_the_migration_sets_lz4_and_the_downgrade_restores_the_default(scratch_url):
    skip_without_lz4(scratch_url)
    config = alembic_config(scratch_url)
    command.upgrade(config, "0042")
    with engine_for(scratch_url).connect() as connection:
        assert connection.execute(COLUMN_METHODS).all() == [("facts", "l"), ("lot", "l")]
    command.downgrade(config, "0041")
    with engine_for(scratch_url).connect() as connection:
        assert connection.execute(COLUMN_METHODS).all() == [("facts", ""), ("lot", "")]
    command.upgrade(config, "head")
