"""Every statement of the hot paths that touches a per-shop table names its shop (decision 0026).

On a database sharded by shop_id, a statement that compares shop_id with a value runs on the one node holding
that shop; one that does not is sent to every node. The statements are captured as the application sends them
(webhook intake, the drain of a paid order and of a refund, the widget read, a redemption and its job, the
balance push) and each is checked.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from sqlalchemy import Engine, event

from plugin import create_app, direct, distribution, inbox, ledger, platforms
from plugin.db import transaction
from plugin.jobs import tasks
from plugin.programme.events import Customer
from plugin.services import balance_push, shops
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_storefront_proxy import signed

pytestmark = pytest.mark.integration

_TABLE = re.compile(r'\b(?:FROM|JOIN|UPDATE|INTO)\s+"?(\w+)"?', re.IGNORECASE)
# shop_id compared with a value the statement carries: a bound parameter (psycopg's %(name)s, SQLite's ?), a
# literal, or a list of them; a join between two tables' shop_id columns alone does not route to one node.
_NAMES_SHOP = re.compile(r"\bshop_id\s*(?:=|IN\b|=\s*ANY)\s*\(?\s*(?:%\(|\?|\$\d|\d|:\w|\[POSTCOMPILE)", re.IGNORECASE)
_INSERT_COLUMNS = re.compile(r"^\s*INSERT\s+INTO\s+\"?(\w+)\"?\s*\(([^)]*)\)", re.IGNORECASE)
# Rows given as parameters, one array per column (plugin/bulk_insert.py): like VALUES, each row carries its shop_id
# and reads no table, so each row goes to its shop's node.
_FROM_PARAMETERS = re.compile(
    r"\s+SELECT \* FROM unnest\((?:CAST\(%\(\w+\)[sb] AS [A-Z ]+(?:\(\d+(?:, \d+)?\))?\[\]\)(?:, )?)+\)"
    r"(?:\s+ON CONFLICT|\s*$)"
)


# DO UPDATE SET, FOR UPDATE OF, FROM (SELECT ...); FROM unnest(...): rows given as parameters (inbox._finish_applied)
_KEYWORDS = {"SET", "OF", "SELECT", "LATERAL", "ONLY", "UNNEST"}
# Statements that look across shops on purpose, once per run of a job, never per order or per shopper: on a
# distributed database they go to every node (decision 0026).
FAN_OUT = {
    "balance push: which shops have balances due": "SELECT shops.id FROM shops WHERE shops.active IS true",
}


def per_shop_tables(statement: str) -> set[str]:
    found = {name for name in _TABLE.findall(statement) if name.upper() not in _KEYWORDS}
    return {name for name in found if distribution.role(name) == "per-shop"}


def names_its_shop(statement: str) -> bool:
    insert = _INSERT_COLUMNS.match(statement)
    if insert is not None:
        return "shop_id" in insert.group(2) and (
            " SELECT " not in statement.upper()
            or bool(_NAMES_SHOP.search(statement) or _FROM_PARAMETERS.match(statement, insert.end()))
        )
    return bool(_NAMES_SHOP.search(statement))


@contextmanager
def captured() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def recorded_direct(engine, sql, params):  # the ack path and the widget's version skip SQLAlchemy's events
        statements.append(sql)
        return sent_directly(engine, sql, params)

    sent_directly = direct.fetch_one
    event.listen(Engine, "before_cursor_execute", record)
    direct.fetch_one = recorded_direct
    try:
        yield statements
    finally:
        direct.fetch_one = sent_directly
        event.remove(Engine, "before_cursor_execute", record)


def offenders(statements: list[str]) -> list[str]:
    flat = [" ".join(statement.split()) for statement in statements]
    return [
        statement[:300]
        for statement in flat
        if per_shop_tables(statement)
        and not names_its_shop(statement)
        and not any(statement.startswith(start) for start in FAN_OUT.values())
    ]


def test_the_checker_tells_a_routed_statement_from_a_broadcast_one():
    assert names_its_shop("SELECT members.id FROM members WHERE members.shop_id = %(shop_id_1)s AND id = 3")
    assert names_its_shop("UPDATE orders SET x = 1 WHERE orders.shop_id = ? AND orders.id = ?")
    assert names_its_shop("INSERT INTO postings (shop_id, member_id) VALUES (%(shop_id)s, %(member_id)s)")
    assert names_its_shop(
        "INSERT INTO postings (shop_id, member_id) SELECT * FROM unnest(CAST(%(c0)b AS BIGINT[]), CAST(%(c1)b AS "
        "BIGINT[])) ON CONFLICT (shop_id, idempotency_key) DO NOTHING RETURNING id"
    )
    assert not names_its_shop("INSERT INTO postings (shop_id, member_id) SELECT shop_id, id FROM members")
    assert not names_its_shop("SELECT redemptions.id FROM redemptions WHERE redemptions.id = %(pk_1)s")
    assert not names_its_shop("SELECT * FROM orders o JOIN members m ON m.shop_id = o.shop_id WHERE o.id = 1")
    assert per_shop_tables("INSERT INTO deliveries (shop_domain) VALUES (?)") == set()  # the inbox: coordinator
    assert per_shop_tables("INSERT INTO delivery_claims (id) VALUES (1) ON CONFLICT (id) DO UPDATE SET n = 2") == set()


def test_the_redemption_job_carries_its_shop(everything, monkeypatch):
    queued: list[tuple] = []
    monkeypatch.setattr(tasks, "dispatch", lambda settings, job, *args, **claim: queued.append(args) or "queued")
    tasks.enqueue_issue(everything, 41, 7)
    assert queued == [(41, 7)]


@pytest.fixture
def everything(fake_shop_api, queued):
    """Redis on (jobs queued, not run inline) and the Admin API answered by the in-process fake shop."""
    fake_settings, _state = fake_shop_api
    settings = dataclasses.replace(queued, shopify_api_base_url=fake_settings.shopify_api_base_url)
    with transaction(settings.database_url) as session:
        shops.install(session, SHOP, "shpat_test_token", settings.encryption_keys)
    return settings


def test_the_hot_paths_name_the_shop_in_every_per_shop_statement(everything):
    settings = everything
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite, the one-process database, is never distributed; its widget read is the ORM's")
    from storefront_widget import widget_sql

    # As a fresh process: the first widget read below learns the shop's id, the second fills the cache (and is
    # captured). An id left by an earlier test (every test database numbers its shops from 1) made the first read
    # fill the cache and the second a hit that sends nothing.
    widget_sql.shop_ids.clear()
    client = create_app(settings, TESTING=True).test_client()
    paths: dict[str, list[str]] = {}

    with captured() as paths["webhook intake"]:
        paid = deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "900.00")]))
    assert paid.status_code == 200

    with captured() as paths["drain of a paid order"]:
        assert inbox.drain(settings.database_url)[inbox.PROCESSED] == 1

    deliver(client, "refunds/create", builders.refund(501, 1, {10: 1}))
    with captured() as paths["drain of a refund"]:
        assert inbox.drain(settings.database_url)[inbox.PROCESSED] == 1

    with transaction(settings.database_url) as session:  # points the refund left are enough for a reward
        shop = shops.get(session, SHOP)
        shop_id = shop.id
        member_id = enrol(session, shop.id, Customer(7001))
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", 1000, "support", "s", "s:7001", "m"))

    client.get(f"/proxy/widget?{urlencode(signed(7001))}")  # the process learns the shop's id
    with captured() as paths["widget read"]:  # the statement (and the cache filled)
        widget = client.get(f"/proxy/widget?{urlencode(signed(7001))}")
    assert widget.status_code == 200
    with captured() as from_the_cache:  # a hit asks PostgreSQL nothing: Redis's generations vouch (decision 0044)
        assert client.get(f"/proxy/widget?{urlencode(signed(7001))}").get_json() == widget.get_json()
    assert from_the_cache == []

    with captured() as paths["redemption"]:
        redeemed = client.post(f"/proxy/redeem?{urlencode(signed(7001))}", json={"reward_id": "5-off"})
    assert redeemed.status_code in (200, 201, 202), redeemed.get_data(as_text=True)
    redemption_id = redeemed.get_json()["redemption"]["id"]

    with captured() as paths["redemption job"]:
        assert tasks.issue_code_with(settings, redemption_id, shop_id) == "issued"

    with captured() as paths["redemption status"]:
        assert client.get(f"/proxy/redemptions/{redemption_id}?{urlencode(signed(7001))}").status_code == 200

    with captured() as paths["balance push"]:
        assert balance_push.push_balances(settings, platforms.admin_client) >= 1

    for name, statements in paths.items():
        assert statements, f"{name}: nothing captured"
    broadcast = [f"{name}: {statement}" for name, statements in paths.items() for statement in offenders(statements)]
    assert broadcast == [], "\n".join(broadcast)


def test_the_widget_never_reads_another_shop_through_a_stale_shop_id(client, settings, shop, database_url):
    if not database_url.startswith("postgresql"):
        pytest.skip("the one-statement widget read is PostgreSQL's")
    from storefront_widget import widget_sql

    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "25.00")]))
    widget_sql.shop_ids[SHOP] = shop + 1000  # as if the shop had been erased and installed again
    answer = client.get(f"/proxy/widget?{urlencode(signed(7001))}")
    assert answer.status_code == 200
    assert answer.get_json()["customer"]["balance"] == 25
    assert widget_sql.shop_ids[SHOP] == shop
