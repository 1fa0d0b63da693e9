"""A table's indexes as the migrated database holds them, on PostgreSQL or SQLite, for the migrations' tests."""

from __future__ import annotations

from sqlalchemy import text

from plugin.db import engine_for


def indexes(url: str, table: str) -> dict[str, str]:
    """Each index of `table` by name, with its SQL (empty for SQLite's automatic ones)."""
    if url.startswith("postgresql"):
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :table"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"
    with engine_for(url).connect() as connection:
        return {name: sql or "" for name, sql in connection.execute(text(query), {"table": table})}
