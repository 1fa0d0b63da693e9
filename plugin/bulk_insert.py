"""Many rows in one INSERT with one array parameter per column (PostgreSQL: INSERT ... SELECT FROM unnest).

SQLAlchemy's multi-row INSERT ... VALUES names one placeholder per row and column, and psycopg converts every such
long statement's placeholders anew (its cache keeps only short ones): about a quarter of the drain's Python. With
one array per column the statement is short, the same for any number of rows, and psycopg's cache keeps it. The
arrays go in binary (`%(name)b`): psycopg's text form of an array escapes every quote of every JSON value with a
regular expression, which cost as much as the conversion saved. The rows go in list order (unnest keeps the arrays'
order), so ids, triggers and RETURNING see them as before; each value passes its column's own bind processing
(JSON, UTC times, SQL NULL for null()), and each returned value its result processing, as SQLAlchemy's would.
"""

from __future__ import annotations

from collections import namedtuple
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Dialect, String, Table
from sqlalchemy.orm import Session


def insert_rows(
    executor: Connection | Session,
    table: Table,
    rows: list[dict[str, Any]],
    conflict: tuple[str, ...],
    returning: tuple[str, ...] = (),
    action: str = "DO NOTHING",
) -> list:
    """INSERT the rows (each naming the same columns; keys that are no column are ignored) ON CONFLICT (`conflict`)
    `action` on PostgreSQL (an upsert's `DO UPDATE SET ... WHERE ...`, written in SQL with `excluded`); returns the
    rows written, in list order, as named tuples of `returning`."""
    connection = executor.connection() if isinstance(executor, Session) else executor
    names = tuple(column.name for column in table.c if column.name in rows[0])
    statement = _statement(connection.dialect, table, names, conflict, returning, action)
    params = {}
    for n, (name, process) in enumerate(zip(names, statement.processors, strict=True)):
        params[f"c{n}"] = [process(row[name]) for row in rows] if process else [row[name] for row in rows]
    result = connection.exec_driver_sql(statement.sql, params)
    if not returning:
        return []
    shape, results = statement.returned, statement.results
    if not any(results):
        return [shape._make(row) for row in result]
    return [shape._make(p(v) if p else v for p, v in zip(results, row, strict=True)) for row in result]


class _Statement(namedtuple("_Statement", "sql processors returned results")):
    """The SQL, each column's bind processor, the returned rows' shape and each returned column's result processor."""


@lru_cache(maxsize=32)
def _statement(
    dialect: Dialect,
    table: Table,
    names: tuple[str, ...],
    conflict: tuple[str, ...],
    returning: tuple[str, ...],
    action: str,
) -> _Statement:
    quote = dialect.identifier_preparer.quote
    arrays, processors = [], []
    for n, name in enumerate(names):
        column_type = table.c[name].type.dialect_impl(dialect)
        # Strings as text: a cast to varchar(n) would cut a value too long, which the column must refuse instead.
        sql_type = "TEXT" if isinstance(column_type, String) else column_type.compile(dialect=dialect)
        arrays.append(f"CAST(%(c{n})b AS {sql_type}[])")
        processors.append(column_type.bind_processor(dialect))
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) SELECT * FROM unnest({', '.join(arrays)})"
        f" ON CONFLICT ({', '.join(map(quote, conflict))}) {action}"
    )
    if returning:
        sql += f" RETURNING {', '.join(map(quote, returning))}"
    results = tuple(table.c[name].type.dialect_impl(dialect).result_processor(dialect, None) for name in returning)
    return _Statement(sql, tuple(processors), namedtuple("Returned", returning), results)
