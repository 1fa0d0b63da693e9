"""Bulk statements for a chunk of a few thousand rows: COPY and array parameters on PostgreSQL, portable SQL else.

A 1,000-row IN list or multi-row VALUES costs PostgreSQL's driver more to build than the server to run; COPY
and one array parameter (`plugin.db.among`) cost almost nothing. SQLite (the development database) takes the plain
statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session


def on_postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def copy_rows(session: Session, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows in the caller's transaction: COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return
    if not on_postgresql(session):
        session.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    raw = session.connection().connection.driver_connection  # the psycopg connection of this very transaction
    with raw.cursor() as cursor, cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])
