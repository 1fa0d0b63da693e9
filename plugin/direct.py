"""One statement on a pooled psycopg connection, its own transaction, sent by libpq's prepared-statement call.

PostgreSQL only. The connection comes from the engine's own pool (plugin.db.engine_for), so the pool size, the
fork recipe of gunicorn.conf.py and `pool_recycle` apply to it as to every other connection. The statement is
prepared on each connection at its first use there; later runs send only its name and the parameters.

Below psycopg's cursor (decision 0051): a cursor made per call built its adaptation context anew, converted the
query and its parameters, and the connection went to autocommit and back (a lock and a generator each way); on
this machine that was about a third of the web's CPU for the ack path's INSERT. Here the parameters are encoded by
`_encode` (a narrow set of types), sent by `PGconn.exec_prepared` (libpq's PQexecPrepared, which releases the GIL
while it waits), and the row is read back by psycopg's own loaders, so callers get the Python types psycopg gives.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import Transformer
from psycopg.pq.abc import PGresult
from sqlalchemy import Engine

_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%%|%")
_NUMBERS = itertools.count(1)
_NO_SUCH_STATEMENT = b"26000"  # invalid_sql_statement_name
# The pool entry's info key: (driver connection, its Transformer, the names prepared on it, its client encoding).
_STATE = "loyalty.direct"


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
    for name in statement.names:
        value = params[name]
        values.append(_encode(value))
        formats.append(_BINARY if isinstance(value, bytes) else _TEXT)
    pooled = engine.raw_connection()
    try:
        connection = pooled.driver_connection
        pgconn = connection.pgconn
        encoding = connection.info.encoding  # as psycopg reads it per statement: a SET may change it
        state = pooled.info.get(_STATE)
        if state is None or state[0] is not connection:  # a new connection behind this pool entry
            state = pooled.info[_STATE] = (connection, Transformer(connection), set(), encoding)
        elif state[3] != encoding:  # its loaders decode text in the encoding they were made with
            state = pooled.info[_STATE] = (connection, Transformer(connection), state[2], encoding)
        if encoding != "utf-8":  # a database in another encoding: its text as psycopg would send it
            values = [_encode(params[name], encoding) for name in statement.names]
        if pgconn.transaction_status != pq.TransactionStatus.IDLE:
            # Sent inside an open transaction, the statement would not be committed when its answer arrives.
            raise psycopg.ProgrammingError("plugin.direct needs an idle connection, not one in a transaction")
        if statement.name not in state[2]:
            _check(pgconn.prepare(statement.name, statement.query), connection)
            state[2].add(statement.name)
        result = pgconn.exec_prepared(statement.name, values, formats)
        if result.error_field(pq.DiagnosticField.SQLSTATE) == _NO_SUCH_STATEMENT:
            # psycopg sends DEALLOCATE ALL after a rollback when it had prepared statements of its own on this
            # connection, which takes ours too. Nothing ran: prepare it again and send it once more.
            _check(pgconn.prepare(statement.name, statement.query), connection)
            result = pgconn.exec_prepared(statement.name, values, formats)
        _check(result, connection)
        if result.ntuples == 0:
            return None
        loader = state[1]
        loader.set_pgresult(result)
        return loader.load_row(0, tuple)
    except BaseException:
        pooled.invalidate()  # a broken or interrupted connection never goes back to the pool
        raise
    finally:
        pooled.close()  # back to the pool (after invalidate: discarded)


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
