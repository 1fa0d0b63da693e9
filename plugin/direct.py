"""One statement on a kept psycopg connection, its own transaction, sent by libpq's prepared-statement call.

PostgreSQL only. Each connection is made by the engine's own pool (plugin.db.engine_for: its arguments and connect
events) and then detached from it: this module keeps it for its own statements, in a free list per engine (decision
0069), replaced after the pool's recycle age, dropped by a forked child, closed when the engine is disposed. The
statement is prepared on each connection at its first use there; later runs send only its name and the parameters.

Below psycopg's cursor (decision 0051): a cursor made per call built its adaptation context anew, converted the
query and its parameters, and the connection went to autocommit and back (a lock and a generator each way); on
this machine that was about a third of the web's CPU for the ack path's INSERT. Here the parameters are encoded by
`_encode` (a narrow set of types), sent by `PGconn.exec_prepared` (libpq's PQexecPrepared, which releases the GIL
while it waits), and the row is read back by psycopg's own loaders, so callers get the Python types psycopg gives.
Outside the pool (decision 0069): its checkout and return (the reset's rollback, the fairy, the queue's locks) cost
the ack path's INSERT about a third of its thread CPU on a loaded machine.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import weakref
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGresult
from sqlalchemy import Engine, event

from plugin.db import POOL_RECYCLE_SECONDS

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_NUMBERS = itertools.count(1)
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name


class _Kept:
    """A connection this module keeps: its loaders, the statements prepared on it, when and where it was made."""

    __slots__ = ("born", "connection", "encoding", "loader", "pid", "prepared")

    def __init__(self, connection: psycopg.Connection):
        self.connection = connection
        self.encoding = connection.info.encoding  # its loaders decode text in the encoding they were made with
        self.loader = Transformer(connection)
        self.prepared: set[bytes] = set()
        self.born = time.monotonic()
        self.pid = os.getpid()


# engine -> its connections not in use (list.pop and list.append are atomic, so gunicorn's threads share it): as
# many as ran statements at once in this process, gunicorn's threads at most on the ack path.
_KEPT: weakref.WeakKeyDictionary[Engine, list[_Kept]] = weakref.WeakKeyDictionary()


def _forget_after_fork() -> None:
    # The parent's sockets are the parent's: a forked child (an RQ work horse) makes its own, never closes these
    # (psycopg closes a connection it collects only in the process that made it).
    _KEPT.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@event.listens_for(Engine, "engine_disposed")
def _close_kept(engine: Engine) -> None:
    """An engine disposed (a test's, a database about to be dropped): its kept connections close with the pool's."""
    free = _KEPT.pop(engine, [])
    # Emptied as it is closed: a thread that took this list just before the pop must find it empty, never a
    # connection closed under it (list.pop is atomic, so each connection goes to exactly one party).
    while True:
        try:
            kept = free.pop()
        except IndexError:
            return
        _close(kept)


def fetch_one(engine: Engine, sql: str, params: dict[str, Any]) -> tuple | None:
    """Run `sql` (psycopg's %(name)s placeholders) as its own transaction and return its first row, or None.

    Without BEGIN, a statement is its own transaction, committed before its answer arrives: a write through here
    is as durable as one followed by COMMIT, in one round trip instead of three. Each parameter takes the type
    PostgreSQL infers for its place in the statement; values may be str, int, bool, datetime, bytes (sent binary)
    or None, anything else is refused (TypeError) rather than sent differently from psycopg.
    """
    statement = _prepared(sql)
    values: list[bytes | None] = []
    formats: list[int] = []
    for name in statement.names:  # a refused value is refused before any connection is taken
        value = params[name]
        values.append(_encode(value))
        formats.append(_BINARY if isinstance(value, bytes) else _TEXT)
    free = _KEPT.get(engine)
    if free is None:
        free = _KEPT.setdefault(engine, [])
    try:
        kept = free.pop()
    except IndexError:
        kept = _take(engine)
    else:
        if time.monotonic() - kept.born > POOL_RECYCLE_SECONDS:  # the pool's pool_recycle, for ours too
            _close(kept)
            kept = _take(engine)
    try:
        row = _run(kept, statement, params, values, formats)
    except BaseException:
        _close(kept)  # a broken or interrupted connection is never used again
        raise
    if _KEPT.get(engine) is free:
        free.append(kept)
    else:  # the engine was disposed while this statement ran: its kept connections are closed, this one too
        _close(kept)
    return row


def _take(engine: Engine) -> _Kept:
    """A new connection, made by the engine's pool as all of its connections are, then detached from it: ours."""
    pooled = engine.raw_connection()
    connection = pooled.driver_connection
    pooled.detach()  # the pool opens another one when it needs one; this one is closed by _close, not by the pool
    try:
        return _Kept(connection)
    except BaseException:
        connection.close()
        raise


def _close(kept: _Kept) -> None:
    if kept.pid == os.getpid():  # never a connection a parent process made: closing it would end the parent's
        kept.connection.close()


def _run(
    kept: _Kept, statement: _Statement, params: dict[str, Any], values: list[bytes | None], formats: list[int]
) -> tuple | None:
    connection = kept.connection
    pgconn = connection.pgconn
    encoding = connection.info.encoding  # as psycopg reads it per statement: a SET may change it
    if kept.encoding != encoding:
        kept.loader, kept.encoding = Transformer(connection), encoding
    if encoding != "utf-8":  # a database in another encoding: its text as psycopg would send it
        values = [_encode(params[name], encoding) for name in statement.names]
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        # Sent inside an open transaction, the statement would not be committed when its answer arrives.
        raise psycopg.ProgrammingError("plugin.direct needs an idle connection, not one in a transaction")
    if statement.name not in kept.prepared:
        _check(pgconn.prepare(statement.name, statement.query), connection)
        kept.prepared.add(statement.name)
    result = pgconn.exec_prepared(statement.name, values, formats)
    if result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT:
        # Someone sent DEALLOCATE ALL on this connection (psycopg does after a rollback when it had prepared
        # statements of its own). Nothing ran: prepare it again and send it once more.
        _check(pgconn.prepare(statement.name, statement.query), connection)
        result = pgconn.exec_prepared(statement.name, values, formats)
    _check(result, connection)
    if result.ntuples == 0:
        return None
    kept.loader.set_pgresult(result)
    return kept.loader.load_row(0, tuple)


class _Statement:
    """A statement in libpq's form: its name on every connection, $n placeholders, and its parameters' names."""

    __slots__ = ("name", "names", "query")

    def __init__(self, sql: str):
        names: list[str] = []

        def placeholder(match: re.Match) -> str:
            if match.group(0) == "%%":
                return "%"
            if match.group(1) is None:
                raise ValueError(f"a lone % in a statement for plugin.direct: {sql!r}")
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.query = _PLACEHOLDER.sub(placeholder, sql).encode()
        self.names = tuple(names)
        self.name = b"loyalty_direct_%d" % next(_NUMBERS)  # never psycopg's own names (_pg3_...)


@lru_cache(maxsize=32)
def _prepared(sql: str) -> _Statement:
    return _Statement(sql)


_TEXT, _BINARY = pq.Format.TEXT, pq.Format.BINARY


def _encode(value: Any, encoding: str = "utf-8") -> bytes | None:
    """A parameter as libpq takes it: text for everything but bytes. psycopg's refusals are kept (NUL in text)."""
    if value is None:
        return None
    if isinstance(value, str):
        if "\x00" in value:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return value.encode(encoding)
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, datetime):
        return value.isoformat().encode()
    if isinstance(value, bytes):
        return value
    raise TypeError(f"plugin.direct sends str, int, bool, datetime, bytes or None, not {type(value).__name__}")


def _check(result: PGresult, connection: psycopg.Connection) -> PGresult:
    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return result
    raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
