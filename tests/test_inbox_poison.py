"""Deliveries the database or the drain's own helpers could choke on: parked alone, never blocking the inbox."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Member
from plugin.services import privacy, shops
from tests import builders
from tests.conftest import SHOP
from tests.test_storefront_proxy import get, give, signed


def store(settings, webhook_id: str, payload, topic: str = "orders/paid") -> None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, topic, webhook_id, body))


def drained_twice(settings) -> dict[str, str]:
    """Drain twice (the second finds nothing if the first parked the bad one); the statuses by webhook id."""
    for _ in range(2):
        inbox.drain(settings.database_url, batch_size=50)
    with transaction(settings.database_url) as session:
        return {d.webhook_id: d.status for d in session.scalars(select(Delivery))}


REFUSED_NAME = "#REFUSED-1"


@pytest.fixture
def refusing_database(settings):
    """On PostgreSQL, a CHECK that refuses one order name: a write the schema lets through and the database does
    not (payload text is cut to its columns now, so an over-long name no longer serves). SQLite cannot add one."""
    engine = engine_for(settings.database_url)
    if engine.dialect.name != "postgresql":
        yield False
        return
    with engine.begin() as connection:
        connection.execute(text(f"ALTER TABLE orders ADD CONSTRAINT ck_test_refused CHECK (name <> '{REFUSED_NAME}')"))
    yield True
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE orders DROP CONSTRAINT ck_test_refused"))


def refused(order_id: int, customer_id: int) -> dict:
    payload = builders.order(order_id, customer_id, [builders.line(order_id * 10, "10.00")])
    payload["name"] = REFUSED_NAME  # refused by the database when the order row is written
    return payload


def test_a_value_the_database_refuses_mid_batch_parks_that_delivery(settings, shop, refusing_database):
    store(settings, "w-refused", refused(1, 7001))
    store(settings, "w-ok", builders.order(2, 7002, [builders.line(20, "10.00")]))
    statuses = drained_twice(settings)
    assert statuses["w-ok"] == "processed"
    assert statuses["w-refused"] == ("parked" if refusing_database else "processed")


def test_a_value_the_database_refuses_last_in_a_batch_parks_that_delivery(settings, shop, refusing_database):
    store(settings, "w-ok", builders.order(2, 7001, [builders.line(20, "10.00")]))
    store(settings, "w-refused", refused(1, 7002))  # sorts last: its row would be written at COMMIT
    statuses = drained_twice(settings)
    assert statuses["w-ok"] == "processed"
    assert statuses["w-refused"] == ("parked" if refusing_database else "processed")


def test_a_customer_id_beyond_the_column_parks_the_delivery_and_keeps_no_id(settings, shop):
    store(settings, "w-huge", builders.order(1, 2**63, [builders.line(10, "10.00")]))
    store(settings, "w-ok", builders.order(2, 7002, [builders.line(20, "10.00")]))
    assert drained_twice(settings) == {"w-huge": "parked", "w-ok": "processed"}
    with transaction(settings.database_url) as session:
        assert session.execute(select(Delivery.customer_id).where(Delivery.webhook_id == "w-huge")).scalar() is None


def test_a_body_whose_customer_id_overflows_is_parked(settings, shop):
    store(settings, "w-inf", b'{"id": 1, "customer": {"id": 1e400}}')
    store(settings, "w-ok", builders.order(2, 7002, [builders.line(20, "10.00")]))
    assert drained_twice(settings) == {"w-inf": "parked", "w-ok": "processed"}


def test_an_order_after_an_uninstall_in_the_same_batch_stays_after_it(settings, shop):
    store(settings, "w-1", builders.order(1, 7001, [builders.line(10, "40.00")]))
    store(settings, "w-2", {"id": 1, "myshopify_domain": SHOP}, topic="app/uninstalled")
    store(settings, "w-3", builders.order(2, 7000, [builders.line(20, "10.00")]))  # would sort first
    assert drained_twice(settings) == {"w-1": "processed", "w-2": "processed", "w-3": "parked"}
    with transaction(settings.database_url) as session:
        assert dict(session.execute(select(Member.customer_id, Member.balance)).all()) == {7001: 40}


def test_a_visitor_never_sees_an_anonymised_members_points(client, settings, shop):
    give(settings, 555, 120)  # member id 1; anonymised, its customer id becomes -1
    with transaction(settings.database_url) as session:
        privacy.redact_customer(session, shops.get(session, SHOP), 555)
    body = get(client, "widget", signed(None)).get_json()
    assert (body["customer"], body["history"], body["redemptions"]) == (None, [], [])
