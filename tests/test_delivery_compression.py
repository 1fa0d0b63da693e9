"""deliveries.body is compressed with lz4 where the server has it (migration 0032), and reads back unchanged."""

from __future__ import annotations

import json

from sqlalchemy import text

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.models import Delivery
from tests.conftest import SHOP, fixture
from tests.schema_reads import skip_without_lz4


def test_a_stored_body_is_lz4_compressed_and_reads_back_byte_for_byte(settings):
    skip_without_lz4(settings.database_url)
    engine = engine_for(settings.database_url)
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
