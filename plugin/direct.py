"""One statement on a pooled psycopg connection in autocommit, without SQLAlchemy's per-statement work (hot paths).

PostgreSQL only. The connection comes from the engine's own pool (plugin.db.engine_for), so the pool size, the
fork recipe of gunicorn.conf.py and `pool_recycle` apply to it as to every other connection. The statement is
prepared on the connection at its first use (psycopg's `prepare=True`), so later runs skip parsing and planning.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine


def fetch_one(engine: Engine, sql: str, params: dict[str, Any]) -> tuple | None:
    """Run `sql` (psycopg's %(name)s placeholders) as its own transaction and return its first row, or None.

    In autocommit a statement is committed before its answer arrives: a write through here is as durable as one
    followed by COMMIT, in one round trip instead of three.
    """
    pooled = engine.raw_connection()
    try:
        connection = pooled.driver_connection
        connection.autocommit = True  # no BEGIN, no COMMIT: the statement is its own transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params, prepare=True)
                return cursor.fetchone()
        finally:
            connection.autocommit = False  # the pool hands this connection to sessions that open transactions
    except BaseException:
        pooled.invalidate()  # a broken or interrupted connection never goes back to the pool
        raise
    finally:
        pooled.close()  # back to the pool (after invalidate: discarded)
