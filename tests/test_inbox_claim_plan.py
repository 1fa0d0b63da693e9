"""The inbox claim reads about the batch it takes, not the backlog, whatever the statistics say (decision 0077).

With the drain behind, thousands of deliveries wait, and statistics taken while few waited (or none: autovacuum off,
or a table's first minute) estimate a handful. The claim was then planned as a bitmap scan of every waiting
delivery with its body, a join to delivery_claims and a sort, to keep 50 (decision 0075: 3,050 rows, 689 buffer
hits and a 4.6 MB sort on disk). The plans are read from auto_explain, so they are the ones the code's statements
got as sent (parameters, the prepared statement's generic plan, the session's settings), and rows are counted, not
timed.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import text
from sqlalchemy.orm import Session

from plugin import inbox
from plugin.db import engine_for
from tests.conftest import alembic_config

HELD = 10  # the first waiting deliveries, locked by another drain's batch
BATCH = 50
# The first half planned for their parameters, as each run is until psycopg prepares the statement (after five) and
# for a prepared statement's first five runs; the second half get the generic plan, which PostgreSQL then keeps when
# its estimate is no worse than the custom plans' (as it did for decision 0075's form of the claim, on a table
# analysed while few waited): forced, so every table state is checked for it.
CLAIMS = 12


@pytest.fixture
def server(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plans are PostgreSQL's")
    return settings.database_url


def _deliveries(connection, first: int, last: int, processed_up_to: int) -> None:
    """Deliveries `first`..`last`, those up to `processed_up_to` done, each with its claim count (claims stay)."""
    connection.execute(
        text(
            "INSERT INTO deliveries (id, platform, shop_domain, topic, webhook_id, body, received_at, status, attempts)"
            " SELECT g, 'shopify', 'claim-plan.myshopify.com', 'orders/paid', 'claim-plan-' || g,"
            " convert_to(repeat(md5(g::text), 40), 'UTF8'), now(),"
            " CASE WHEN g <= :processed THEN 'processed' ELSE 'received' END, 1"
            " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g"
        ),
        {"first": first, "last": last, "processed": processed_up_to},
    )
    connection.execute(
        text(
            "INSERT INTO delivery_claims SELECT g, 1, now()"
            " FROM generate_series(CAST(:first AS bigint), CAST(:last AS bigint)) g WHERE g <= :done"
        ),
        {"first": first, "last": last, "done": processed_up_to},
    )


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


def _claims_explained(engine, waiting: list[int], monkeypatch) -> list[dict]:
    """CLAIMS claims of BATCH on one connection, the first HELD waiting held by another; their plans."""
    # The claim counts are committed on a connection of their own; left out, every claim takes the same rows.
    monkeypatch.setattr(inbox, "_count_claims", lambda session, ids, now: dict.fromkeys(ids, 1))
    # Fresh connections: the runs below are counted from the statement's first on this connection (psycopg prepares
    # it at the sixth, PostgreSQL may take a generic plan from its sixth prepared run). A pooled connection on which
    # earlier tests' drains had run the claim could give a generic plan among the first half.
    engine.dispose()
    plans: list[dict] = []
    with engine.connect() as other, Session(engine) as session:
        other.execute(text("SELECT id FROM deliveries WHERE id = ANY(:ids) FOR UPDATE"), {"ids": waiting[:HELD]})
        for run in range(CLAIMS):
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
                if run >= CLAIMS // 2:
                    connection.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
                batch = inbox._claim(session, BATCH, inbox.utcnow(), timedelta(minutes=1))
                claimed = [delivery.id for delivery in batch]
                sorts = connection.exec_driver_sql("SHOW enable_sort").scalar()
                session.rollback()
            driver.remove_notice_handler(heard)
            explained = [json.loads(notice.split("plan:", 1)[1]) for notice in notices if "plan:" in notice]
            plans += [e["Plan"] for e in explained if "FOR UPDATE" in e["Query Text"]]
            assert claimed == waiting[HELD : HELD + BATCH]
            assert sorts == "on", "the batch's own statements are planned with sorts as usual"
        other.rollback()
    assert len(plans) == CLAIMS
    # A generic plan leaves the parameters in its filter, a custom one their values: both kinds were checked.
    generic = [any("$" in node.get("Filter", "") for node in _nodes(plan)) for plan in plans]
    assert all(generic[CLAIMS // 2 :]), "the forced half's plans are generic"
    assert not all(generic[: CLAIMS // 2]), "the first half's plans include custom ones"
    return plans


def _assert_reads_the_batch(plan: dict) -> None:
    nodes = _nodes(plan)
    # Before decision 0077: a bitmap scan of every waiting delivery, a join and a sort.
    assert not [node for node in nodes if node["Node Type"] == "Sort"], plan
    for node in nodes:
        read = node["Actual Rows"] * node["Actual Loops"] + node.get("Rows Removed by Filter", 0)
        if node.get("Relation Name") == "deliveries":
            # a generic plan for `status = $1` cannot use the partial index: pk_deliveries read every processed row
            assert node["Node Type"] == "Index Scan" and node["Index Name"] == "ix_deliveries_waiting", plan
            assert read <= HELD + BATCH, plan
        elif node.get("Relation Name") == "delivery_claims":
            # probed by its key for each delivery read: a merge join read every claim below the first waiting id
            assert node["Actual Loops"] <= HELD + BATCH and read <= HELD + BATCH, plan


def test_on_tables_never_analysed_the_claim_reads_the_batch_and_the_held_rows(server, monkeypatch):
    engine = engine_for(server)
    with engine.begin() as connection:
        _deliveries(connection, 1, 2_000, processed_up_to=950)
        assert connection.execute(
            text("SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'public'"
                 " AND relname IN ('deliveries', 'delivery_claims')"
                 " AND last_analyze IS NULL AND last_autoanalyze IS NULL")
        ).scalar() == 2, "the tables must be as a fresh server leaves them: never analysed"  # fmt: skip
    for plan in _claims_explained(engine, list(range(951, 2_001)), monkeypatch):
        _assert_reads_the_batch(plan)


def test_on_tables_analysed_while_few_waited_the_claim_reads_the_batch_and_the_held_rows(
    server, scratch_url, monkeypatch
):
    # A database of its own: the run's tables stay never analysed for the other plan tests.
    command.upgrade(alembic_config(scratch_url), "head")
    engine = engine_for(scratch_url)
    with engine.begin() as connection:
        _deliveries(connection, 1, 3_000, processed_up_to=2_950)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE deliveries, delivery_claims"))  # 50 waiting of 3,000
    with engine.begin() as connection:
        _deliveries(connection, 3_001, 6_000, processed_up_to=0)
    for plan in _claims_explained(engine, list(range(2_951, 6_001)), monkeypatch):
        _assert_reads_the_batch(plan)
