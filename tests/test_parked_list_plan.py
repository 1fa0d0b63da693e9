"""The parked lists read the parked deliveries by their partial index, in the generic plan too, not the whole inbox."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from plugin import inbox
from plugin.models import Shop
from plugin.services import support
from tests.conftest import SHOP

PROCESSED, PARKED = 3000, 5


@pytest.fixture
def inbox_rows(pg_engine, shop):
    """PROCESSED processed deliveries of the shop, then PARKED parked ones, the table analysed."""
    with pg_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO deliveries (platform, shop_domain, topic, webhook_id, body, received_at, status, attempts)"
                " SELECT 'shopify', :shop, 'orders/paid', 'parked-plan-' || g, convert_to(md5(g::text), 'UTF8'),"
                " now(), CASE WHEN g > :processed THEN 'parked' ELSE 'processed' END, 1"
                " FROM generate_series(1, :total) g"
            ),
            {"shop": SHOP, "processed": PROCESSED, "total": PROCESSED + PARKED},
        )
        connection.execute(text("ANALYZE deliveries"))


def _nodes(plan: dict) -> list[dict]:
    return [plan] + [node for child in plan.get("Plans", []) for node in _nodes(child)]


def _generic_plan_of(pg_engine, call) -> tuple[list, list[dict]]:
    """What `call(session)` returns and the plan of the statement it sent, planned generically (as a prepared
    statement's plan may be once psycopg has prepared it), executed to count the rows each node read."""
    sent: list[tuple[str, object]] = []
    with Session(pg_engine) as session, session.begin():
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
        name = f"parked_list_{uuid.uuid4().hex}"
        connection.exec_driver_sql(f"PREPARE {name} AS {statement}")
        arguments = ", ".join(_literal(parameters[name]) for name in names)
        explained = connection.exec_driver_sql(
            f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) EXECUTE {name} ({arguments})"
        ).scalar_one()
        connection.exec_driver_sql(f"DEALLOCATE {name}")
    plan = explained if isinstance(explained, list) else json.loads(explained)
    return found, _nodes(plan[0]["Plan"])


def _literal(value: object) -> str:
    """A test's own parameter as SQL: an integer, or a string without quotes."""
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, str) and "'" not in value
    return f"'{value}'"


def _deliveries_read(nodes: list[dict]) -> int:
    """Rows of deliveries the scans produced and threw away."""
    return sum(
        node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        for node in nodes
        if node.get("Relation Name") == "deliveries"
    )


def test_the_support_desks_parked_list_reads_only_parked_deliveries(pg_engine, inbox_rows):
    def call(session):
        return support.parked(session, session.query(Shop).filter_by(domain=SHOP).one())

    found, nodes = _generic_plan_of(pg_engine, call)
    assert len(found) == PARKED
    assert "ix_deliveries_parked" in {node.get("Index Name") for node in nodes}
    assert _deliveries_read(nodes) <= PARKED


def test_the_clis_parked_list_reads_only_parked_deliveries(pg_engine, inbox_rows):
    found, nodes = _generic_plan_of(pg_engine, inbox.parked_in)
    assert len(found) == PARKED
    assert "ix_deliveries_parked" in {node.get("Index Name") for node in nodes}
    assert _deliveries_read(nodes) <= PARKED
