"""The end-to-end bench polls its run's progress on one kept connection, and waits while a delivery still waits."""

from __future__ import annotations

import psycopg
import pytest

from bench import e2e


@pytest.fixture
def libpq(settings) -> str:
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the bench runs on PostgreSQL")
    return settings.database_url.replace("postgresql+psycopg", "postgresql")


def _sessions(libpq: str) -> int:
    """Backends started for this database so far (each new connection is one)."""
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        return conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def test_a_runs_polls_start_one_backend(libpq):
    before = _sessions(libpq)
    with e2e.Progress(libpq) as progress:
        for _ in range(20):  # wrk's stop condition, then the drain's, as _measure polls them
            progress.scalar("SELECT count(*) FROM deliveries")
            progress.every_order_posted(1)
    # The polls' one backend and the two that read the count (each reads the counter before its own is added).
    assert _sessions(libpq) - before <= 2


def test_every_order_is_posted_only_once_no_delivery_waits(libpq, shop):
    with e2e.Progress(libpq) as progress, psycopg.connect(libpq, autocommit=True) as conn:
        assert progress.every_order_posted(0)
        assert not progress.every_order_posted(1)  # no posting yet
        conn.execute(
            "INSERT INTO deliveries (platform, shop_domain, topic, webhook_id, body, received_at, status, attempts)"
            " VALUES ('shopify', 'x.myshopify.com', 'orders/paid', 'progress-1', '\\x00', now(), 'received', 0)"
        )
        assert not progress.every_order_posted(0)
        conn.execute("UPDATE deliveries SET status = 'processed' WHERE webhook_id = 'progress-1'")
        assert progress.every_order_posted(0)
