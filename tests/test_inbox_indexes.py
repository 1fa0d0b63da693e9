"""The inbox's indexes: what each stored delivery costs to index, and the parked lists still read only parked rows.

Every index a delivery enters is written by the ack path's INSERT (and again by the drain's status change), so a
delivery stored waiting enters only the three that are not partial; the two partial ones hold the waiting and the
parked deliveries (decision 0056). Checked on the live schema, and on the plans of the queries that read them.
"""

from __future__ import annotations

import json
import re
import uuid

import pytest
from alembic import command
from sqlalchemy import event, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from plugin import inbox
from plugin.db import engine_for
from plugin.models import Delivery, Shop
from plugin.services import support
from tests.conftest import SHOP, alembic_config

PROCESSED, PARKED = 20_000, 40  # a long-running shop's inbox: nearly all processed, a few parked


@pytest.fixture
def engine(settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the catalogue and the plans are PostgreSQL's")
    return engine_for(settings.database_url)


def test_a_delivery_stored_waiting_enters_only_the_three_full_indexes(engine):
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'deliveries'::regclass"
            )
        ).all()
    full = {name for name, predicate in rows if predicate is None}
    partial = {name: predicate for name, predicate in rows if predicate is not None}
    assert full == {"pk_deliveries", "uq_deliveries_shop_domain_webhook_id", "ix_deliveries_shop_domain_customer_id"}
    assert partial == {
        "ix_deliveries_waiting": "((status)::text = 'received'::text)",
        "ix_deliveries_parked": "((status)::text = 'parked'::text)",
    }


def _plan(connection, query) -> dict:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return connection.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)).scalar()[0]["Plan"]


def _work(node: dict) -> int:
    """Rows every node produced or filtered out, times its loops, and the buffers the statement read."""
    loops = node.get("Actual Loops", 1)
    here = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    return here + sum(_work(child) for child in node.get("Plans", []))


def _indexes(node: dict) -> set[str]:
    return {node["Index Name"]} if "Index Name" in node else set().union(*map(_indexes, node.get("Plans", [])))


def _store_inbox(engine) -> None:
    """PROCESSED deliveries, every other one the test shop's, PARKED of them (all the test shop's) parked."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (platform, shop_domain, topic, webhook_id, body, received_at, status, attempts)"
                " SELECT 'shopify', CASE WHEN g % 2 = 0 THEN :shop ELSE 'other.myshopify.com' END, 'orders/paid',"
                " 'indexes-' || g, '\\x7b7d', now(), CASE WHEN g % (:processed / :parked) = 0 THEN 'parked'"
                " ELSE 'processed' END, 1 FROM generate_series(1, :processed) g"
            ),
            {"shop": SHOP, "processed": PROCESSED, "parked": PARKED},
        )


@pytest.mark.parametrize("per_shop", [False, True], ids=["every shop (CLI)", "one shop (support API)"])
def test_the_parked_lists_read_the_parked_deliveries_only(engine, per_shop):
    _store_inbox(engine)
    # The queries of plugin.inbox.parked and plugin.services.support.parked, with their limits.
    query = select(Delivery).where(Delivery.status == "parked").order_by(Delivery.id).limit(100)
    if per_shop:
        query = query.where(Delivery.shop_domain == SHOP).limit(200)
    with engine.connect() as connection:  # never analyzed (autovacuum is off): the planner's defaults
        plan = _plan(connection, query)
        found = connection.execute(query).all()
    assert len(found) == PARKED
    assert _indexes(plan) == {"ix_deliveries_parked"}, json.dumps(plan)
    assert _work(plan) <= 4 * PARKED, json.dumps(plan)


def _generic_plan_of(engine, call) -> tuple[list, dict]:
    """What `call(session)` returns and the plan of the last statement it sent, planned generically (as a prepared
    statement's plan may be once psycopg has prepared it) and run, to count the rows each node read."""
    sent: list[tuple[str, dict]] = []
    with Session(engine) as session, session.begin():
        connection = session.connection()
        connection.execute(text("SET LOCAL plan_cache_mode = force_generic_plan"))

        def heard(conn, cursor, statement, parameters, context, executemany):
            sent.append((statement, parameters))

        event.listen(connection, "before_cursor_execute", heard)
        try:
            found = call(session)
        finally:
            event.remove(connection, "before_cursor_execute", heard)
        statement, parameters = sent[-1]
        # Prepared by name, as psycopg prepares a statement it has sent five times, so the setting applies.
        names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
        for number, name in enumerate(names, 1):
            statement = statement.replace(f"%({name})s", f"${number}")
        prepared = f"parked_list_{uuid.uuid4().hex}"
        connection.exec_driver_sql(f"PREPARE {prepared} AS {statement}")
        arguments = ", ".join(_literal(parameters[name]) for name in names)
        explained = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE {prepared} ({arguments})"
        ).scalar_one()
        connection.exec_driver_sql(f"DEALLOCATE {prepared}")
    return found, explained[0]["Plan"]


def _literal(value: object) -> str:
    """A test's own parameter as SQL: an integer, or a string without quotes."""
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, str) and "'" not in value
    return f"'{value}'"


def test_the_support_desks_parked_list_reads_the_parked_deliveries_only_in_its_generic_plan_too(engine, scratch_url):
    """The list as the code sends it, planned generically: a web process runs it often enough on one connection for
    psycopg to prepare it. With the status as a parameter, that plan could not use ix_deliveries_parked and read the
    shop's deliveries in id order (pk_deliveries). The CLI's list runs once per process: never prepared."""
    # A database of its own: its ANALYZE leaves the run's tables never analysed for the other plan tests (run after
    # this one, tests/test_inbox_claim_plan.py's first test found deliveries analysed and failed).
    command.upgrade(alembic_config(scratch_url), "head")
    own = engine_for(scratch_url)
    _store_inbox(own)
    with own.begin() as connection:
        connection.execute(text("ANALYZE deliveries"))
    found, plan = _generic_plan_of(own, lambda session: support.parked(session, Shop(domain=SHOP)))
    assert len(found) == PARKED
    assert _indexes(plan) == {"ix_deliveries_parked"}, json.dumps(plan)
    assert _work(plan) <= 4 * PARKED, json.dumps(plan)


def test_a_status_in_the_statements_text_is_one_of_the_inboxs():
    # Written into the SQL as text: only the inbox's own four statuses, never a string from elsewhere.
    assert "'parked'" in str(inbox.status_is(inbox.PARKED).compile(dialect=postgresql.dialect()))
    with pytest.raises(ValueError, match="unknown delivery status"):
        inbox.status_is("parked' OR true --")
