"""The inbox claim reads about the batch it takes, not the backlog, on a deliveries table never analysed.

With the drain behind, thousands of deliveries wait, and statistics taken while few waited (or none: autovacuum off,
or a table's first minute) estimate a handful. The claim was then planned as a bitmap scan of every waiting
delivery with its body, a join to delivery_claims and a sort, to keep 50 (decision 0075: 3,050 rows, 689 buffer
hits and a 4.6 MB sort on disk). The plans are read from auto_explain, so they are the ones the code's statements
got as sent (parameters, the prepared statement's generic plan after five runs, the session's settings), and rows
are counted, not timed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from plugin import inbox
from plugin.db import engine_for

PROCESSED = 950
WAITING = 1_000
HELD = 10  # the first waiting deliveries, locked by another drain's batch
BATCH = 50
CLAIMS = 7  # past psycopg's five runs before it prepares, so the prepared statement's generic plan is checked too


@pytest.fixture
def engine(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plans are PostgreSQL's")
    return engine_for(settings.database_url)


@pytest.fixture
def backlog(engine) -> list[int]:
    """PROCESSED deliveries done (each with its claim count), then WAITING waiting; returns the waiting ids."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (platform, shop_domain, topic, webhook_id, body, received_at, status, attempts)"
                " SELECT 'shopify', 'claim-plan.myshopify.com', 'orders/paid', 'claim-plan-' || g,"
                " convert_to(repeat(md5(g::text), 40), 'UTF8'), now(),"
                " CASE WHEN g <= :processed THEN 'processed' ELSE 'received' END, 1"
                " FROM generate_series(1, :processed + :waiting) g"
            ),
            {"processed": PROCESSED, "waiting": WAITING},
        )
        connection.execute(
            text("INSERT INTO delivery_claims SELECT id, 1, now() FROM deliveries WHERE status = 'processed'")
        )
        return list(connection.scalars(text("SELECT id FROM deliveries WHERE status = 'received' ORDER BY id")))


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


def test_the_claim_reads_the_batch_and_the_held_rows_not_the_backlog(engine, backlog, monkeypatch):
    # The claim counts are committed on a connection of their own; left out, every claim takes the same rows.
    monkeypatch.setattr(inbox, "_count_claims", lambda session, ids, now: dict.fromkeys(ids, 1))
    with engine.connect() as other:
        other.execute(text("SELECT id FROM deliveries WHERE id = ANY(:ids) FOR UPDATE"), {"ids": backlog[:HELD]})
        with Session(engine) as session:
            assert session.execute(
                text("SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'public'"
                     " AND relname IN ('deliveries', 'delivery_claims')"
                     " AND last_analyze IS NULL AND last_autoanalyze IS NULL")
            ).scalar() == 2, "the tables must be as a fresh server leaves them: never analysed"  # fmt: skip
            session.rollback()
            plans: list[dict] = []
            for _ in range(CLAIMS):
                with session.begin():
                    connection = session.connection()
                    driver = connection.connection.driver_connection
                    notices: list[str] = []

                    def heard(notice, notices=notices):
                        notices.append(notice.message_primary)

                    driver.add_notice_handler(heard)
                    connection.exec_driver_sql("LOAD 'auto_explain'")
                    for name, value in (("log_min_duration", "0"), ("log_analyze", "on"), ("log_buffers", "on"),
                                        ("log_format", "json"), ("log_level", "notice")):  # fmt: skip
                        connection.exec_driver_sql(f"SET LOCAL auto_explain.{name} = '{value}'")
                    batch = inbox._claim(session, BATCH, inbox.utcnow(), timedelta(minutes=1))
                    claimed = [delivery.id for delivery in batch]
                    sorts = connection.exec_driver_sql("SHOW enable_sort").scalar()
                    session.rollback()
                driver.remove_notice_handler(heard)
                explained = [json.loads(notice.split("plan:", 1)[1]) for notice in notices if "plan:" in notice]
                plans += [e["Plan"] for e in explained if "FOR UPDATE" in e["Query Text"]]
                assert claimed == backlog[HELD : HELD + BATCH]
                assert sorts == "on", "the batch's own statements are planned with sorts as usual"
        other.rollback()
    assert len(plans) == CLAIMS
    for plan in plans:
        nodes = _nodes(plan)
        # Without the change: a bitmap scan of all 1,000 waiting deliveries, a hash join and a sort.
        assert not [node for node in nodes if node["Node Type"] == "Sort"], plan
        for node in nodes:
            read = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
            if node.get("Relation Name") == "deliveries":
                assert node["Node Type"] == "Index Scan" and node["Index Name"] == "ix_deliveries_waiting", plan
                assert read <= HELD + BATCH, plan
            elif node.get("Relation Name") == "delivery_claims":
                # probed by its key for each delivery read: a merge join read every claim below the first waiting id
                assert node["Actual Loops"] <= HELD + BATCH and read <= HELD + BATCH, plan
