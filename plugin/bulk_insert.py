"""Many rows in one INSERT with one array parameter per column (PostgreSQL: INSERT ... SELECT FROM unnest).

SQLAlchemy's multi-row INSERT ... VALUES names one placeholder per row and column, and psycopg converts every such
long statement's placeholders anew (its cache keeps only short ones): about a quarter of the drain's Python. With
one array per column the statement is short, the same for any number of rows, and psycopg's cache keeps it. The
arrays go in binary (`%(name)b`): psycopg's text form of an array escapes every quote of every JSON value with a
regular expression, which cost as much as the conversion saved. The rows go in list order (unnest keeps the arrays'
order), so ids, triggers and RETURNING see them as before; each value passes its column's own bind processing
(JSON, UTC times, SQL NULL for null()), and each returned value its result processing, as SQLAlchemy's would.
Columns whose values need no escaping (integers, booleans, numerics, dates) go as the array's text
instead ('{1,NULL,3}', cast in SQL): psycopg's binary array dumper walks every element in Python, a join does not.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from operator import index, methodcaller
from typing import Any

from sqlalchemy import Boolean, Connection, Date, Dialect, Integer, Numeric, String, Table
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
    for n, (name, process, text) in enumerate(zip(names, statement.processors, statement.texts, strict=True)):
        values = [process(row[name]) for row in rows] if process else [row[name] for row in rows]
        params[f"c{n}"] = text(values) if text else values
    result = connection.exec_driver_sql(statement.sql, params)
    if not returning:
        return []
    shape, results = statement.returned, statement.results
    if not any(results):
        return [shape._make(row) for row in result]
    return [shape._make(p(v) if p else v for p, v in zip(results, row, strict=True)) for row in result]


class _Statement(namedtuple("_Statement", "sql processors texts returned results")):
    """The SQL, each column's bind processor and array text maker (None: sent binary), the returned rows' shape and
    each returned column's result processor."""


def _array_text(element: Callable[[Any], str]) -> Callable[[list], str]:
    """The maker of an array's text from a column's values: `element` gives a value's text, which must need no
    escaping and must raise on a value of another type (so that no string can add elements); None is NULL."""

    def text(values: list) -> str:
        if None in values:
            return "{" + ",".join("NULL" if value is None else element(value) for value in values) + "}"
        return "{" + ",".join(map(element, values)) + "}"

    return text


def _integer(value: Any) -> str:
    return str(index(value))  # index refuses floats, Decimals and strings


def _numeric(value: Any) -> str:
    return str(Decimal(value))  # digits, sign, point, exponent, NaN or Infinity; Decimal refuses other strings


integer_array_text = _array_text(_integer)  # also db.among_ids's array of ids
_isoformat = methodcaller("isoformat")  # dates only here: strings have no isoformat


# Each column type's array text, by its type affinity (BigInteger and SmallInteger are Integer's); any other type
# (strings, JSON, bytes, and timestamps: an aware datetime's isoformat costs ~0.8 us, three times psycopg's binary
# dump of it) goes binary.
_TEXTS = {
    Integer: integer_array_text,
    Boolean: _array_text({True: "t", False: "f"}.__getitem__),
    Numeric: _array_text(_numeric),
    Date: _array_text(_isoformat),
}


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
    arrays, processors, texts = [], [], []
    for n, name in enumerate(names):
        column_type = table.c[name].type.dialect_impl(dialect)
        # Strings as text: a cast to varchar(n) would cut a value too long, which the column must refuse instead.
        sql_type = "TEXT" if isinstance(column_type, String) else column_type.compile(dialect=dialect)
        text = _TEXTS.get(column_type._type_affinity)
        arrays.append(f"CAST(%(c{n}){'s' if text else 'b'} AS {sql_type}[])")
        processors.append(column_type.bind_processor(dialect))
        texts.append(text)
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, names))}) SELECT * FROM unnest({', '.join(arrays)})"
        f" ON CONFLICT ({', '.join(map(quote, conflict))}) {action}"
    )
    if returning:
        sql += f" RETURNING {', '.join(map(quote, returning))}"
    results = tuple(table.c[name].type.dialect_impl(dialect).result_processor(dialect, None) for name in returning)
    return _Statement(sql, tuple(processors), tuple(texts), namedtuple("Returned", returning), results)
