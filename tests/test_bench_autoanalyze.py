"""The bench's autovacuum stand-in analyzes the tables autovacuum would, by its default thresholds, and no others."""

from __future__ import annotations

import time

import psycopg
import pytest

from bench import autoanalyze


def test_a_table_past_the_threshold_is_analyzed_and_one_below_it_is_not(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("statistics and autovacuum are PostgreSQL's")
    libpq = settings.database_url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("CREATE TABLE busy (n integer)")
        conn.execute("CREATE TABLE quiet (n integer)")
        conn.execute("INSERT INTO busy SELECT generate_series(1, 500)")  # past 50 + a tenth of none
        conn.execute("INSERT INTO quiet SELECT generate_series(1, 40)")  # under the 50 of the threshold
    # The inserting backend has exited, which sends its counts to the statistics; wait until they are read.
    deadline = time.monotonic() + 10
    with psycopg.connect(libpq, autocommit=True) as conn:
        while "busy" not in autoanalyze.due_tables(conn) and time.monotonic() < deadline:
            time.sleep(0.1)
    analyzed = autoanalyze.analyze_due(libpq)
    with psycopg.connect(libpq) as conn:
        tuples = dict(conn.execute("SELECT relname, reltuples FROM pg_class WHERE relname IN ('busy', 'quiet')"))
        again = autoanalyze.due_tables(conn)
    assert "busy" in analyzed and "quiet" not in analyzed
    assert tuples == {"busy": 500, "quiet": -1}  # -1: never analyzed
    assert "busy" not in again
