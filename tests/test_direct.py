"""plugin.direct: a statement on a kept connection commits alone; the pool only makes the connections it keeps."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import create_engine, event, text

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


def test_a_statement_deallocated_on_its_connection_is_prepared_again(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        assert direct.fetch_one(single, "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n", {"n": 1}) == (1,)
        [kept] = direct._KEPT[single]
        # What psycopg sends after a rollback when it had prepared statements of its own: ours go too.
        assert kept.connection.pgconn.exec_(b"DEALLOCATE ALL").status == psycopg.pq.ExecStatus.COMMAND_OK
        assert direct.fetch_one(single, "INSERT INTO direct_probe (n) VALUES (%(n)s) RETURNING n", {"n": 2}) == (2,)
        assert direct._KEPT[single] == [kept]  # the same connection, still usable
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
        [kept] = direct._KEPT[single]
        # The connection's encoding changed under it (psycopg follows it per statement; so does plugin.direct).
        assert (
            kept.connection.pgconn.exec_(b"SET client_encoding TO 'LATIN1'").status == psycopg.pq.ExecStatus.COMMAND_OK
        )
        assert direct.fetch_one(single, "SELECT %(t)s::text, length(%(t)s::text)", {"t": "café"}) == ("café", 4)
    finally:
        single.dispose()


def test_statements_take_a_connection_from_the_pool_once_not_each_time(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    checkouts = []
    event.listen(single, "checkout", lambda *_: checkouts.append(1))
    try:
        rows = [direct.fetch_one(single, "SELECT %(n)s::bigint", {"n": n}) for n in range(5)]
        assert rows == [(n,) for n in range(5)]
        assert len(checkouts) == 1  # the first statement's: the connection is kept, the pool's slot free again
        assert single.pool.checkedout() == 0
        with single.connect() as connection:  # the pool's one connection is still there for everyone else
            assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        single.dispose()


def test_a_disposed_engine_closes_the_connections_kept_for_it(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    direct.fetch_one(single, "SELECT 1", {})
    [kept] = direct._KEPT[single]
    single.dispose()  # a test's engine, or a database about to be dropped
    assert kept.connection.closed
    assert single not in direct._KEPT


def test_a_connection_older_than_the_recycle_age_is_replaced(database_url, engine, monkeypatch):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = direct.fetch_one(single, "SELECT pg_backend_pid()", {})
        [old] = direct._KEPT[single]
        monkeypatch.setattr(direct, "POOL_RECYCLE_SECONDS", -1)  # every kept connection is now past it
        assert direct.fetch_one(single, "SELECT pg_backend_pid()", {}) != first
        assert old.connection.closed
        assert len(direct._KEPT[single]) == 1
    finally:
        single.dispose()


def test_a_connection_another_process_made_is_never_closed_here(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    direct.fetch_one(single, "SELECT 1", {})
    [kept] = direct._KEPT[single]
    kept.pid = -1  # as in a forked child: closing it would end the parent's session on the shared socket
    single.dispose()
    try:
        assert not kept.connection.closed
    finally:
        kept.connection.close()


def test_a_refused_parameter_takes_no_connection(database_url, engine):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with pytest.raises(TypeError):
            direct.fetch_one(single, "SELECT %(x)s::numeric", {"x": 1.5})
        assert single not in direct._KEPT or direct._KEPT[single] == []
        assert single.pool.checkedout() == 0
    finally:
        single.dispose()


def test_a_connection_in_use_when_its_engine_is_disposed_is_closed_after_its_statement(
    database_url, engine, monkeypatch
):
    single = create_engine(database_url, pool_size=1, max_overflow=0)
    run, used = direct._run, []

    def disposed_meanwhile(kept, *args):  # another thread, or a shutdown, disposes the engine while this one sends
        used.append(kept)
        single.dispose()  # the kept connection is in use, not in the free list: dispose cannot close it
        return run(kept, *args)

    monkeypatch.setattr(direct, "_run", disposed_meanwhile)
    assert direct.fetch_one(single, "SELECT 1", {}) == (1,)
    assert used[0].connection.closed  # closed once its statement was answered, not kept for a disposed engine
    assert single not in direct._KEPT


def test_a_statement_that_took_the_free_list_just_before_a_dispose_never_gets_a_closed_connection(
    database_url, engine, monkeypatch
):
    single = create_engine(database_url, pool_size=2, max_overflow=0)
    direct.fetch_one(single, "SELECT 1", {})  # one connection kept, idle, in the engine's free list

    class DisposedRightAfterGet(type(direct._KEPT)):
        def get(self, key, default=None):  # another thread disposes the engine between the look-up and the pop
            found = super().get(key, default)
            if found:
                single.dispose()
            return found

    kept = DisposedRightAfterGet()
    kept.update(direct._KEPT)
    monkeypatch.setattr(direct, "_KEPT", kept)
    assert direct.fetch_one(single, "SELECT 2", {}) == (2,)  # on a new connection, not the one the dispose closed
