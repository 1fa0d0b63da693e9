"""The drain's statements are compiled once per worker, not once per batch: none of them lacks a cache key."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event, text
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


def test_no_statement_of_a_set_based_drain_grows_with_the_batch(settings, shop):
    """psycopg converts a statement's placeholders once and keeps it only up to 50 parameters and 4,096 characters:
    a batch's ids or rows sent one parameter each (an IN list, a multi-row VALUES) were converted anew per batch."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("psycopg's statement cache: PostgreSQL only")
    engine = engine_for(settings.database_url)
    beyond_cache: list[str] = []
    sent: list[str] = []

    def seen(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        sent.append(statement)
        # An executemany sends a list of parameter sets, each converted by the same cached statement; a multi-row
        # INSERT (SQLAlchemy's insertmanyvalues, flagged as executemany too) sends one set, one entry per value.
        one_set = parameters[0] if isinstance(parameters, list) and parameters else parameters or ()
        if len(statement) > 4096 or len(one_set) > 50:
            beyond_cache.append(f"{statement[:50]}... ({len(one_set)} parameters)")

    # 60 shoppers' first orders, then their second ones with the same details (the upsert leaves them alone).
    for first in (1, 61):
        for n in range(first, first + 60):
            body = json.dumps(builders.order(n, 8000 + n % 60, [builders.line(n * 10, "10.00")])).encode()
            inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"big-{n}", body))
        sent.clear()
        event.listen(engine, "before_cursor_execute", seen)
        try:
            outcomes = inbox.drain(settings.database_url, batch_size=60)
        finally:
            event.remove(engine, "before_cursor_execute", seen)
        assert outcomes[inbox.PROCESSED] == 60
        assert len(sent) < 30  # set-based: a few statements for the batch, not several per order
    assert not beyond_cache, "\n".join(beyond_cache)


def test_a_set_based_batch_marks_its_deliveries_processed_in_one_statement(settings, shop):
    """One UPDATE of arrays for the batch on PostgreSQL, not one parameter set per delivery through the ORM's flush;
    each row as _finish leaves it."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite keeps the ORM's flush")
    engine = engine_for(settings.database_url)
    parameter_sets: list[int] = []

    def seen(_conn, _cursor, statement, parameters, _context, executemany) -> None:
        if statement.lstrip().startswith("UPDATE deliveries"):
            parameter_sets.append(len(parameters) if executemany else 1)

    for n in range(1, 41):
        store(settings, n)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        outcomes = inbox.drain(settings.database_url, batch_size=40)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert outcomes[inbox.PROCESSED] == 40
    assert parameter_sets == [1]
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT status, reason, attempts, customer_id, processed_at IS NOT NULL FROM deliveries ORDER BY id")
        ).all()
    assert rows == [("processed", None, 1, 7000 + n % 3, True) for n in range(1, 41)]
