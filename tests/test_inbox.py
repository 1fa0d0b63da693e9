"""The inbox drain: batches, and what happens when a batch is rolled back by a deadlock."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from plugin import inbox, ledger
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Member, Order, OrderProductWait
from plugin.platforms.shopify import adapter
from plugin.programme.events import ProductFacts
from plugin.services import batch_accrual, products, shops
from tests import builders
from tests.conftest import SHOP
from tests.test_earning_e2e import OUTERWEAR_X2, save_rules
from tests.test_earning_e2e import line as e2e_line


def store_orders(settings, count: int) -> None:
    store_orders_from(settings, 1, count)


def store_orders_from(settings, first: int, count: int) -> None:
    for n in range(first, first + count):
        body = json.dumps(builders.order(n, 7000 + n % 2, [builders.line(n * 10, "10.00")])).encode()
        inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))


def test_a_deadlocked_batch_is_redone_one_delivery_per_transaction(settings, shop, monkeypatch):
    store_orders(settings, 7)
    claimed_sizes: list[int] = []
    real_claim, real_process = inbox._claim, inbox.process

    def claim(session, size, *args):
        claimed_sizes.append(size)
        return real_claim(session, size, *args)

    def process(session, delivery, shops=None, **options):
        if claimed_sizes == [5] and delivery.id == 2:  # the first batch's second delivery hits a deadlock
            raise OperationalError("UPDATE members ...", {}, Exception("deadlock detected"))
        return real_process(session, delivery, shops, **options)

    monkeypatch.setattr(inbox, "_claim", claim)
    monkeypatch.setattr(inbox, "process", process)
    outcomes = inbox.drain(settings.database_url, batch_size=5, set_based=False)  # every delivery through process

    assert outcomes == {"processed": 7}  # the rolled-back batch was not counted twice
    assert claimed_sizes == [5, 1, 1, 1, 1, 1, 5]  # five one by one after the deadlock, then batches again
    with transaction(settings.database_url) as session:
        assert set(session.scalars(select(Delivery.status))) == {"processed"}
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
    assert balances == {7000: 30, 7001: 40}


def test_a_deadlock_in_the_set_based_write_redoes_the_batch_one_delivery_per_transaction(settings, shop, monkeypatch):
    store_orders(settings, 7)
    claimed_sizes: list[int] = []
    set_based_calls: list[int] = []
    real_claim, real_apply = inbox._claim, batch_accrual.apply

    def claim(session, size, *args):
        claimed_sizes.append(size)
        return real_claim(session, size, *args)

    def apply(session, shop, items):
        set_based_calls.append(len(items))
        applied = real_apply(session, shop, items)
        if claimed_sizes == [5]:  # the first batch's multi-row writes are done, then the database aborts it
            raise OperationalError("INSERT INTO postings ...", {}, Exception("deadlock detected"))
        return applied

    monkeypatch.setattr(inbox, "_claim", claim)
    monkeypatch.setattr(batch_accrual, "apply", apply)
    outcomes = inbox.drain(settings.database_url, batch_size=5)

    assert outcomes == {"processed": 7}  # the rolled-back batch was not counted twice
    assert claimed_sizes == [5, 1, 1, 1, 1, 1, 5]  # five one by one after the deadlock, then batches again
    assert set_based_calls == [5, 2]  # the careful stretch never takes the set-based path
    with transaction(settings.database_url) as session:
        assert set(session.scalars(select(Delivery.status))) == {"processed"}
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
        assert ledger.verify(session) == []
    assert balances == {7000: 30, 7001: 40}


def test_a_drain_is_asked_whether_to_go_on_only_when_more_waits(settings, shop):
    store_orders(settings, 12)
    asked: list[int] = []

    def go_on() -> bool:
        asked.append(1)
        return False

    assert inbox.drain(settings.database_url, batch_size=5, cut_short=go_on) == {"processed": 12}
    assert len(asked) == 2  # after the two full batches, not after the last, short one: the drain ends anyway

    store_orders_from(settings, 13, 12)
    assert inbox.drain(settings.database_url, batch_size=5, cut_short=lambda: True) == {"processed": 5}
    with transaction(settings.database_url) as session:
        assert session.scalar(select(func.count()).where(Delivery.status == "received")) == 7  # left for the next


def test_a_drain_is_not_cut_short_within_a_careful_stretch(settings, shop, monkeypatch):
    store_orders(settings, 7)
    claimed_sizes: list[int] = []
    asked: list[list[int]] = []
    real_claim, real_process = inbox._claim, inbox.process

    def claim(session, size, *args):
        claimed_sizes.append(size)
        return real_claim(session, size, *args)

    def process(session, delivery, shops=None, **options):
        if claimed_sizes == [5] and delivery.id == 2:
            raise OperationalError("UPDATE members ...", {}, Exception("deadlock detected"))
        return real_process(session, delivery, shops, **options)

    monkeypatch.setattr(inbox, "_claim", claim)
    monkeypatch.setattr(inbox, "process", process)
    outcomes = inbox.drain(
        settings.database_url,
        batch_size=5,
        set_based=False,
        cut_short=lambda: asked.append(list(claimed_sizes)) or True,
    )
    # Cut only once the five one by one were done: a drain cut within them would begin the next optimistically.
    assert asked == [[5, 1, 1, 1, 1, 1]]
    assert outcomes == {"processed": 5} and claimed_sizes == [5, 1, 1, 1, 1, 1]


def test_a_bad_delivery_in_a_batch_is_parked_alone_and_the_rest_processed_once(settings, shop, monkeypatch):
    store_orders(settings, 3)
    bad = b'{"id": 99, "line_items": "not a list"}'
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", "w-bad", bad))
    store_orders_from = 4
    for n in range(store_orders_from, store_orders_from + 3):
        body = json.dumps(builders.order(n, 7000 + n % 2, [builders.line(n * 10, "10.00")])).encode()
        inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))
    claimed_sizes: list[int] = []
    real_claim = inbox._claim

    def claim(session, size, *args):
        claimed_sizes.append(size)
        return real_claim(session, size, *args)

    monkeypatch.setattr(inbox, "_claim", claim)
    outcomes = inbox.drain(settings.database_url, batch_size=10)

    # The optimistic batch of seven failed on the bad delivery and was rolled back; then one by one.
    assert claimed_sizes[0] == 10 and set(claimed_sizes[1:]) == {1}
    assert outcomes == {"processed": 6, "parked": 1}
    with transaction(settings.database_url) as session:
        rows = {d.webhook_id: (d.status, d.attempts) for d in session.scalars(select(Delivery))}
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
    assert rows.pop("w-bad")[0] == "parked"
    assert set(rows.values()) == {("processed", 1)}  # the rolled-back attempt left no trace
    assert balances == {7000: 30, 7001: 30}  # orders 1-6 at 10 points each, once


@pytest.mark.parametrize("set_based", [True, False])
def test_each_body_is_parsed_once_per_batch(settings, shop, monkeypatch, set_based):
    store_orders(settings, 4)
    engine = engine_for(settings.database_url)
    others = {
        "orders/create": builders.order(5, 7000, [builders.line(50, "10.00")]),
        "refunds/create": builders.refund(1, 1, {10: 1}),
        "customers/update": {"id": 7001, "email": "c7001@example.com", "tags": "vip"},
    }
    for topic, payload in others.items():
        body = json.dumps(payload).encode()
        inbox.store(engine, inbox.IncomingDelivery(SHOP, topic, f"w-{topic}", body))
    bodies: Counter[bytes] = Counter()
    schemas: Counter[str] = Counter()
    real_parse_body, real_parse_event = inbox.parse_body, adapter.parse_event

    def parse_body(body):
        bodies[body] += 1
        return real_parse_body(body)

    def parse_event(topic, payload, triggered_at):
        schemas[f"{topic} {payload.get('id')}"] += 1
        return real_parse_event(topic, payload, triggered_at)

    monkeypatch.setattr(inbox, "parse_body", parse_body)
    monkeypatch.setattr(adapter, "parse_event", parse_event)
    outcomes = inbox.drain(settings.database_url, batch_size=10, set_based=set_based)

    assert outcomes == {"processed": 7}  # one batch, nothing redone
    assert len(bodies) == 7 and set(bodies.values()) == {1}, bodies  # the sort, the set-based path and process()
    assert len(schemas) == 7 and set(schemas.values()) == {1}, schemas
    with transaction(settings.database_url) as session:
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
    assert balances == {7000: 20, 7001: 10}  # order 1's refund took back its 10 points


def test_unreadable_bodies_in_a_set_based_batch_are_parked_with_their_reasons(settings, shop):
    store_orders(settings, 3)
    engine = engine_for(settings.database_url)
    bad = {
        "w-json": b'{"id": 99, "customer": {"id": 7000}, ',
        "w-nan": b'{"id": 98, "customer": {"id": 7000}, "total_tip_received": NaN}',
        "w-schema": b'{"id": 97, "customer": {"id": 7001}, "line_items": "not a list"}',
        "w-deep": b"[" * 100_000 + b"]" * 100_000,
    }
    for webhook_id, body in bad.items():
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", webhook_id, body))
    outcomes = inbox.drain(settings.database_url, batch_size=10)

    assert outcomes == {"processed": 3, "parked": 4}
    with transaction(settings.database_url) as session:
        rows = {d.webhook_id: (d.status, d.reason) for d in session.scalars(select(Delivery))}
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
    assert rows.pop("w-json")[1].startswith("malformed JSON: Expecting property name")
    assert rows.pop("w-nan")[1] == "malformed JSON: NaN is not valid JSON"
    reason = rows.pop("w-schema")[1]
    assert reason.startswith("schema error: ") and '"line_items": ["Not a valid list."]' in reason
    assert rows.pop("w-deep")[1] == "malformed JSON: nested too deeply"
    assert set(rows.values()) == {("processed", None)}
    assert balances == {7000: 10, 7001: 20}


def test_a_product_rule_shops_orders_go_set_based_when_their_products_are_cached(settings, shop, monkeypatch):
    save_rules(settings, OUTERWEAR_X2)
    with transaction(settings.database_url) as session:
        products.upsert(session, shops.get(session, SHOP).id, ProductFacts(501, "Outerwear", "Acme"))
    engine = engine_for(settings.database_url)
    for order_id, customer_id, product_id in ((1, 7001, 501), (2, 7002, 502), (3, 7002, 501), (4, 7003, 501)):
        body = json.dumps(builders.order(order_id, customer_id, [e2e_line(order_id * 10, "10.00", product_id)]))
        inbox.store(engine, inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{order_id}", body.encode()))
    set_based: list[int] = []
    real_apply = batch_accrual.apply

    def apply(session, shop, items):
        applied = real_apply(session, shop, items)
        set_based.extend(sorted(applied))
        return applied

    monkeypatch.setattr(batch_accrual, "apply", apply)
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 4}

    # Product 502 is not cached: order 2 waits for it, one by one, and so does its shopper's later order 3.
    with transaction(settings.database_url) as session:
        assert set(session.scalars(select(Delivery.webhook_id).where(Delivery.id.in_(set_based)))) == {"w-1", "w-4"}
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
        waiting = list(session.execute(select(OrderProductWait.order_id, OrderProductWait.product_id)))
    assert balances == {7001: 20, 7002: 20, 7003: 20} and waiting == [(2, 502)]  # Outerwear earns double


def store_created_and_paid(settings, webhook_prefix: str, topics: tuple[str, ...], order_id: int = 1) -> None:
    body = builders.order(order_id, 7001, [builders.line(10, "10.00")])
    for topic in topics:
        body["customer"]["first_name"] = "Ada" if topic == "orders/create" else "Paid"
        delivery = inbox.IncomingDelivery(SHOP, topic, f"{webhook_prefix}-{topic}", json.dumps(body).encode())
        inbox.store(engine_for(settings.database_url), delivery)


def set_based_keys(monkeypatch) -> list[int]:
    applied_keys: list[int] = []
    real_apply = batch_accrual.apply

    def apply(session, shop, items):
        applied = real_apply(session, shop, items)
        applied_keys.extend(applied)
        return applied

    monkeypatch.setattr(batch_accrual, "apply", apply)
    return applied_keys


@pytest.mark.parametrize("same_batch", [True, False])
def test_an_orders_create_and_its_orders_paid_go_set_based(settings, shop, monkeypatch, same_batch):
    applied = set_based_keys(monkeypatch)
    if same_batch:
        store_created_and_paid(settings, "w", ("orders/create", "orders/paid"))
    else:
        store_created_and_paid(settings, "w", ("orders/create",))
        assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 1}
        store_created_and_paid(settings, "w", ("orders/paid",))
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 1 if not same_batch else 2}

    assert len(applied) == 2  # both deliveries, whether in one batch or two
    with transaction(settings.database_url) as session:
        order = session.execute(select(Order)).scalar_one()
        member = session.execute(select(Member)).scalar_one()
        assert ledger.verify(session) == []
    assert (order.created_seen, order.points_held, order.lot["points"], order.facts is not None) == (True, 10, 10, True)
    # The orders/paid of an order with a member enrols nobody (accrual._record_snapshot): the create's details stay.
    assert (member.balance, member.first_name) == (10, "Ada")


def test_an_orders_paid_whose_row_changed_since_it_was_read_redoes_the_batch_one_by_one(settings, shop, monkeypatch):
    store_created_and_paid(settings, "w", ("orders/create",))
    inbox.drain(settings.database_url, batch_size=10)
    store_created_and_paid(settings, "w", ("orders/paid",))
    real_existing = batch_accrual._existing

    def stale(session, shop, named):  # as if another worker had touched the row after this batch read it
        existing, blank = real_existing(session, shop, named)
        return existing, {order_id: replace(row, updated_at=row.updated_at - timedelta(seconds=1))
                          for order_id, row in blank.items()}  # fmt: skip

    monkeypatch.setattr(batch_accrual, "_existing", stale)
    failed: list[str] = []
    real_apply = batch_accrual.apply

    def apply(session, shop, items):
        try:
            return real_apply(session, shop, items)
        except batch_accrual.BatchConflict as conflict:
            failed.append(str(conflict))
            raise

    monkeypatch.setattr(batch_accrual, "apply", apply)
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 1}

    assert failed == ["1 of the batch's orders changed since they were read"]
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 10  # earned once, one by one
        assert session.execute(select(Order.points_held)).scalar_one() == 10
