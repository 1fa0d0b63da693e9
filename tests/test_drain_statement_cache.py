"""The drain's statements are compiled once per worker, not once per batch: none of them lacks a cache key."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event
from sqlalchemy.engine.default import NO_CACHE_KEY

from plugin import inbox
from plugin.db import engine_for
from tests import builders
from tests.conftest import SHOP


def store(settings, n: int) -> None:
    body = json.dumps(builders.order(n, 7000 + n % 3, [builders.line(n * 10, "10.00")])).encode()
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))


def test_every_statement_of_a_drain_has_a_cache_key_whatever_the_batch_size(settings, shop):
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite counts claims in the drain's own transaction, with its own statement")
    engine = engine_for(settings.database_url)
    uncached: list[str] = []

    def seen(_conn, _cursor, statement, _parameters, context, _executemany) -> None:
        # Statements sent as driver SQL (the set-based apply's multi-row INSERTs) are never compiled.
        if context is not None and context.compiled is not None and context.cache_hit == NO_CACHE_KEY:
            uncached.append(statement.split("(")[0])

    for n in range(1, 8):
        store(settings, n)
    event.listen(engine, "after_cursor_execute", seen)
    try:
        # Batches of 3, 3 and 1: a statement without a cache key would be compiled for each, and per batch size.
        outcomes = inbox.drain(settings.database_url, batch_size=3)
    finally:
        event.remove(engine, "after_cursor_execute", seen)
    assert outcomes[inbox.PROCESSED] == 7
    assert uncached == []
