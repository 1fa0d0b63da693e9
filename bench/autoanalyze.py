"""A stand-in for autovacuum's analyze in bench runs: this machine's PostgreSQL has autovacuum off (its CI conf).

A production server analyzes a table once 50 rows plus a tenth of it changed, checking each database about once
a minute (autovacuum_naptime, autovacuum_analyze_threshold and _scale_factor at their defaults). Without it no
bench table ever had statistics, and a plan chosen blind measured something no shop runs (decision 0049). The
ANALYZEs' CPU counts in PostgreSQL's share, as autovacuum's does in production. VACUUM is not stood in for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import psycopg

THRESHOLD, SCALE_FACTOR = 50, 0.1  # PostgreSQL's defaults for autovacuum_analyze_threshold and _scale_factor
NAPTIME_SECONDS = 60.0  # autovacuum_naptime's default

DUE = """
SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
WHERE s.schemaname = %(schema)s AND s.n_mod_since_analyze > %(threshold)s + %(scale)s * greatest(c.reltuples, 0)
ORDER BY s.relname
"""


def due_tables(conn: psycopg.Connection, schema: str = "public") -> list[str]:
    """The tables of `schema` autovacuum would analyze now, by its default thresholds."""
    values = {"threshold": THRESHOLD, "scale": SCALE_FACTOR, "schema": schema}
    return [row[0] for row in conn.execute(DUE, values).fetchall()]


def analyze_due(libpq: str, schema: str = "public") -> list[str]:
    """One of autovacuum's rounds: ANALYZE every table of `schema` past its threshold; returns their names."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        tables = due_tables(conn, schema)
        for table in tables:
            conn.execute(f'ANALYZE "{schema}"."{table}"')  # names read from the catalogue, quoted
    return tables


@dataclass
class AutoAnalyze:
    """Runs analyze_due every `naptime` seconds in a thread while a measurement runs; counts what it analyzed."""

    libpq: str
    naptime: float = NAPTIME_SECONDS
    analyzed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.naptime):
            self.analyzed.extend(analyze_due(self.libpq))

    def __enter__(self) -> AutoAnalyze:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)
