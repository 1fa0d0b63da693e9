"""deliveries.body is compressed with lz4 where the server has it (migration 0032), and reads back unchanged."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.models import Delivery
from tests.conftest import SHOP, fixture


def test_a_stored_body_is_lz4_compressed_and_reads_back_byte_for_byte(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("TOAST compression is PostgreSQL's")
    engine = engine_for(settings.database_url)
    with engine.connect() as connection:
        methods = connection.execute(
            text("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        ).scalar()
    if "lz4" not in methods:
        pytest.skip("this PostgreSQL was built without lz4: the migration leaves pglz")
    order = fixture("orders.paid.json")["body"]
    order["note"] = "x" * 4000  # past TOAST's 2 kB threshold whatever the captured order's size
    body = json.dumps(order).encode()
    delivery_id = inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", "lz4-1", body))
    with transaction(settings.database_url) as session:
        method = session.execute(
            text("SELECT pg_column_compression(body) FROM deliveries WHERE id = :id"), {"id": delivery_id}
        ).scalar()
        stored = session.get(Delivery, delivery_id).body
    assert method == "lz4"
    assert stored == body
