"""What the migrated database holds (a table's indexes, whether it can compress with lz4), for the migrations' tests."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from plugin.db import engine_for, lz4_available


def indexes(url: str, table: str) -> dict[str, str]:
    """Each index of `table` by name, with its SQL (empty for SQLite's automatic ones)."""
    if url.startswith("postgresql"):
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = :table"
    else:
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :table"
    with engine_for(url).connect() as connection:
        return {name: sql or "" for name, sql in connection.execute(text(query), {"table": table})}


def skip_without_lz4(url: str) -> None:
    """Skip the test unless `url` is a PostgreSQL server that can compress with lz4 (plugin.db.lz4_available)."""
    if not url.startswith("postgresql"):
        pytest.skip("TOAST compression is PostgreSQL's")
    with engine_for(url).connect() as connection:
        if not lz4_available(connection):
            pytest.skip("this PostgreSQL was built without lz4: the migrations leave pglz")
