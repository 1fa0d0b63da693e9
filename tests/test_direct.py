"""plugin.direct: a statement on a pooled connection commits alone and leaves the pool as it found it."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

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
