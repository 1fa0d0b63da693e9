"""SQLAlchemy engine and session factory, shared by web requests, jobs and the CLI."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import ARRAY, Engine, Text, any_, cast, create_engine, event, literal
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import ColumnElement

from plugin.bulk_insert import integer_array_text

_ENGINES: dict[str, Engine] = {}
POOL_RECYCLE_SECONDS = 1800  # a connection older than this is replaced (the pool's and plugin.direct's)
# Called with every PostgreSQL engine, made before or after: plugin.generations hooks its commits here (this
# module imports no Redis, so the ledger, which uses it, stays pure).
_ENGINE_HOOKS: list[Callable[[Engine, str], None]] = []


def hook_engines(hook: Callable[[Engine, str], None]) -> None:
    """Call `hook(engine, url)` for every PostgreSQL engine of this process, those made so far and those to come."""
    _ENGINE_HOOKS.append(hook)
    for url, engine in list(_ENGINES.items()):
        if engine.dialect.name == "postgresql":
            hook(engine, url)


def engine_for(url: str) -> Engine:
    """One engine (and connection pool) per database URL per process."""
    engine = _ENGINES.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            engine = _sqlite_engine(url)
        else:
            engine = create_engine(url, pool_size=5, max_overflow=5, pool_recycle=POOL_RECYCLE_SECONDS)
            for hook in _ENGINE_HOOKS:
                hook(engine, url)
        # gunicorn's threads (decision 0038) may race here: the first engine stored wins and every thread uses it.
        winner = _ENGINES.setdefault(url, engine)
        if winner is not engine:
            engine.dispose()
        engine = winner
    return engine


def _sqlite_engine(url: str) -> Engine:
    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    # pysqlite's own transaction handling breaks SAVEPOINT; let SQLAlchemy emit BEGIN itself
    # (the recipe from SQLAlchemy's SQLite dialect documentation).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # IMMEDIATE takes the write lock up front, so two processes never deadlock upgrading a read lock.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _forget_pools_after_fork() -> None:
    # A forked RQ job must not reuse the parent's sockets; close=False leaves the parent's connections alone.
    for engine in _ENGINES.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pools_after_fork)


@lru_cache(maxsize=8)
def _session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on any error."""
    with _session_factory(url)() as session, session.begin():
        yield session


@contextmanager
def reading(url: str) -> Iterator[Session]:
    """A session for a read-only request: each query runs on its own (autocommit on PostgreSQL).

    Saves BEGIN and COMMIT, two of a short read's round trips; the reads may see changes committed between
    them, which a page of balances and history tolerates. Never write through it.
    """
    engine = engine_for(url)
    if engine.dialect.name == "sqlite":  # the development database keeps its BEGIN IMMEDIATE recipe
        with transaction(url) as session:
            yield session
        return
    with Session(bind=engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False) as session:
        yield session


@contextmanager
def unprepared(session: Session) -> Iterator[None]:
    """Statements sent in this block are planned for their own parameters each time: psycopg does not prepare them.

    psycopg prepares a statement text after five runs, and PostgreSQL may then keep one generic plan for the
    session. A batch statement of one text for every batch (an array parameter) planned while its table was small
    keeps a sequential scan after the table has grown, until an ANALYZE (decision 0068, "Not covered"); planned for
    each batch's own values it takes the index. Planning a batch's statement costs far less than one wrong scan.
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    driver = session.connection().connection.driver_connection
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


def among(session: Session, column, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN values`, as `column = ANY(array)` on PostgreSQL: one parameter instead of thousands."""
    values = list(values)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(values, ARRAY(column.type)))
    return column.in_(values)


def among_ids(session: Session, column, ids: Iterable[int]) -> ColumnElement[bool]:
    """`among` for integer ids, the array sent as its text ('{1,2,3}'): psycopg dumps a list element by element in
    Python (_dump_list), a string at once; PostgreSQL reads the same array from either."""
    ids = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        array = cast(literal(integer_array_text(ids), Text), ARRAY(column.type))
        return column == any_(array)
    return column.in_(ids)


def insert_for(engine_or_session) -> type:
    """The dialect's INSERT construct, which offers ON CONFLICT DO NOTHING on PostgreSQL and SQLite."""
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return dialect_insert(bind.dialect.name)


def dialect_insert(dialect: str) -> type:
    """insert_for by the dialect's name: for statements built once per dialect and cached by it."""
    return sqlite.insert if dialect == "sqlite" else postgresql.insert


def lz4_available(connection) -> bool:
    """Whether this server can compress TOAST values with lz4 (PostgreSQL 14+ built `--with-lz4`, as Debian's packages
    and the official images are); False on any other server and on SQLite (migrations 0032 and 0042)."""
    if connection.dialect.name != "postgresql":
        return False
    methods = connection.exec_driver_sql(
        "SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'"
    ).scalar()
    return methods is not None and "lz4" in methods
