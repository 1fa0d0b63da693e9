"""The bench's autovacuum stand-in analyzes the tables autovacuum would, by its default thresholds, and no others."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from bench import autoanalyze

SCHEMA = "autoanalyzed"  # its own: the tables of public belong to the other tests, never analyzed


@pytest.fixture
def libpq(settings) -> Iterator[str]:
    """The test's database, its own schema dropped after: other tests read the tables of public, and must not
    find them analyzed by this one."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("statistics and autovacuum are PostgreSQL's")
    url = settings.database_url.replace("postgresql+psycopg", "postgresql")
    yield url
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS autoanalyzed CASCADE")


def test_a_table_past_the_threshold_is_analyzed_and_one_below_it_is_not(libpq):
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS autoanalyzed CASCADE")  # a crashed run's
        conn.execute("CREATE SCHEMA autoanalyzed")
        conn.execute("CREATE TABLE autoanalyzed.busy (n integer)")
        conn.execute("CREATE TABLE autoanalyzed.quiet (n integer)")
        conn.execute("INSERT INTO autoanalyzed.busy SELECT generate_series(1, 500)")  # past 50 + a tenth of none
        conn.execute("INSERT INTO autoanalyzed.quiet SELECT generate_series(1, 40)")  # under the threshold's 50
    # The inserting backend has exited, which sends its counts to the statistics; wait until they are read.
    deadline = time.monotonic() + 10
    with psycopg.connect(libpq, autocommit=True) as conn:
        while "busy" not in autoanalyze.due_tables(conn, SCHEMA) and time.monotonic() < deadline:
            time.sleep(0.1)
    analyzed = autoanalyze.analyze_due(libpq, SCHEMA)
    with psycopg.connect(libpq) as conn:
        tuples = dict(
            conn.execute("SELECT relname, reltuples FROM pg_class WHERE relnamespace = %s::regnamespace", (SCHEMA,))
        )
        again = autoanalyze.due_tables(conn, SCHEMA)
    assert "busy" in analyzed and "quiet" not in analyzed
    assert tuples == {"busy": 500, "quiet": -1}  # -1: never analyzed
    assert "busy" not in again
