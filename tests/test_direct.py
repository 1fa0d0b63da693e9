"""plugin.direct: a statement on a pooled connection commits alone and leaves the pool as it found it."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import create_engine, text

from plugin import direct
from plugin.db import engine_for, transaction


@pytest.fixture
def engine(database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("plugin.direct is PostgreSQL's (SQLite keeps SQLAlchemy's BEGIN IMMEDIATE recipe)")
    engine = engine_for(database_url)
    with engine.begin() as connection:  # a table of the test's own, so no real table's rows are touched
        connection.execute(text("CREATE TABLE direct_probe (n bigint PRIMARY KEY)"))
    yield engine
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE direct_probe"))


def test_a_write_is_committed_when_the_answer_arrives(engine, database_url):
    row = direct.fetch_one(
        engine,
        "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n",
        {"n": 424242},
    )
    assert row == (424242,)
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as other:
        assert other.execute("SELECT count(*) FROM direct_probe WHERE n = 424242").fetchone() == (1,)


def test_the_connection_goes_back_to_the_pool_in_transaction_mode(engine, database_url):
    direct.fetch_one(engine, "SELECT 1", {})
    # The next user of the pooled connection is a session whose rollback must undo its writes.
    with pytest.raises(RuntimeError), transaction(database_url) as session:
        session.execute(text("INSERT INTO direct_probe (n) VALUES (515151)"))
        raise RuntimeError("the request failed after writing")
    assert direct.fetch_one(engine, "SELECT count(*) FROM direct_probe WHERE n = 515151", {}) == (0,)
    pooled = engine.raw_connection()
    try:
        assert pooled.driver_connection.autocommit is False
    finally:
        pooled.close()


def test_a_failed_statement_raises_and_leaves_no_broken_connection_behind(engine):
    with pytest.raises(psycopg.errors.UndefinedTable):
        direct.fetch_one(engine, "SELECT * FROM no_such_table", {})
    assert direct.fetch_one(engine, "SELECT 2", {}) == (2,)
    assert engine.pool.checkedout() == 0


def test_a_statement_psycopg_deallocated_is_prepared_again(database_url, engine):
    # One connection, so the statement is prepared on the very connection psycopg then clears.
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        assert direct.fetch_one(single, "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n", {"n": 1}) == (1,)
        pooled = single.raw_connection()
        try:  # a session's statement psycopg prepared, then a rollback: psycopg sends DEALLOCATE ALL
            pooled.driver_connection.execute("SELECT 1", prepare=True)
            pooled.driver_connection.rollback()
        finally:
            pooled.close()
        assert direct.fetch_one(single, "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n", {"n": 2}) == (2,)
        assert single.pool.checkedout() == 0
    finally:
        single.dispose()


def test_a_connection_left_in_a_transaction_is_refused_not_written_through(database_url, engine):
    # A pool that does not roll back on return: the only way a connection could come out in a transaction.
    single = create_engine(database_url, pool_size=1, max_overflow=0, pool_reset_on_return=None)
    try:
        pooled = single.raw_connection()
        pooled.driver_connection.execute("SELECT 1")  # opens a transaction, left open
        pooled.close()
        with pytest.raises(psycopg.ProgrammingError):
            direct.fetch_one(single, "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n", {"n": 3})
    finally:
        single.dispose()
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as other:
        assert other.execute("SELECT count(*) FROM direct_probe WHERE n = 3").fetchone() == (0,)


def test_parameters_keep_their_values_and_unsupported_ones_are_refused(engine):
    sql = "SELECT %(text)s::text, %(n)s::bigint, %(yes)s::boolean, %(at)s::timestamptz, %(raw)s::bytea, %(none)s::text"
    at = datetime(2026, 12, 4, 22, 40, 1, 123456, tzinfo=UTC)
    row = direct.fetch_one(
        engine, sql, {"text": "é 100%", "n": -7, "yes": True, "at": at, "raw": b"\x00\xff", "none": None}
    )
    assert row == ("é 100%", -7, True, at, b"\x00\xff", None)
    assert direct.fetch_one(engine, "SELECT '50%%'::text", {}) == ("50%",)
    with pytest.raises(TypeError):
        direct.fetch_one(engine, "SELECT %(x)s::numeric", {"x": 1.5})  # a float would be sent unlike psycopg's
    with pytest.raises(psycopg.DataError):
        direct.fetch_one(engine, "SELECT %(x)s::text", {"x": "a\x00b"})  # as psycopg refuses it
    assert engine.pool.checkedout() == 0


def test_text_goes_in_and_comes_back_in_the_connections_encoding(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        assert direct.fetch_one(single, "SELECT %(t)s::text", {"t": "café"}) == ("café",)
        pooled = single.raw_connection()
        try:  # a session changed the connection's encoding (psycopg follows it per statement)
            pooled.driver_connection.execute("SET client_encoding TO 'LATIN1'")
            pooled.driver_connection.commit()
        finally:
            pooled.close()
        assert direct.fetch_one(single, "SELECT %(t)s::text, length(%(t)s::text)", {"t": "café"}) == ("café", 4)
    finally:
        single.dispose()
