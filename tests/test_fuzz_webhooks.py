"""Fuzzing what a signed webhook can carry: the payload parser, and the inbox's JSON parsing and processing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Delivery
from plugin.platforms.shopify.adapter import parse_event
from plugin.programme import events
from tests.conftest import deliver
from tests.fuzzing import fuzz_settings

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

# The bounds issue #12 sets for every number in a payload (the decision record on number bounds, branch
# intake-guards, holds the reasons): what a shop can sell, with room, and what a Shopify order can hold.
MAX_QUANTITY = 10**6
MAX_AMOUNT = Decimal(10) ** 12
MAX_LINES = 1_000
MAX_ID = 2**63 - 1
PARSED_TOPICS = ("orders/create", "orders/paid", "orders/cancelled", "refunds/create", "customers/create")
WHEN = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


class Raw(str):
    """A JSON number written exactly as drawn (json.dumps would quote it, or cannot write it at all)."""


def encode(value: Any) -> bytes:
    raws: list[str] = []

    def mark(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(str(item))
            return f"\x00raw{len(raws) - 1}\x00"
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value))
    for index, raw in enumerate(raws):
        text = text.replace(f'"\\u0000raw{index}\\u0000"', raw)
    return text.encode()


# Hostile but quick: negative, huge, tiny, too precise. Exponents stay small here; absurd ones (1e999990) cost
# minutes of Decimal arithmetic on today's code and are fuzzed in their own test below.
NUMBER_TEXT = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.decimals(min_value=-(10**16), max_value=10**16, places=2, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["-1", "-2", "-0.01", "0", "-0", "0.001", "1e16", "1E+30", "-1e30", "1e-30", "9" * 40]),
)
JUNK = st.sampled_from([None, True, "", "abc", [], {}, "NaN", "Infinity"])
MONEY = st.one_of(NUMBER_TEXT, NUMBER_TEXT.map(Raw), JUNK)
COUNT = st.one_of(st.integers(-(10**17), 10**17), st.sampled_from([-2, -1, 0, 1, 10**16, 2**63, -(2**63), 2**64]), JUNK)
ID = st.one_of(st.integers(1, MAX_ID), st.sampled_from([0, -1, 2**63, 2**64, 10**30]), JUNK)


@st.composite
def bags(draw) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(JUNK)
    amount = {"amount": draw(MONEY), "currency_code": "USD"}
    return {"shop_money": amount, "presentment_money": amount}


@st.composite
def lines(draw) -> dict[str, Any]:
    return {
        "id": draw(ID),
        "quantity": draw(COUNT),
        "price": draw(MONEY),
        "price_set": draw(bags()),
        "total_discount_set": draw(bags()),
        "discount_allocations": draw(st.lists(st.fixed_dictionaries({"amount_set": bags()}), max_size=2)),
        "tax_lines": draw(st.lists(st.fixed_dictionaries({"price_set": bags(), "price": MONEY}), max_size=2)),
        "gift_card": draw(st.one_of(st.booleans(), JUNK)),
    }


@st.composite
def refunds(draw) -> dict[str, Any]:
    return {
        "id": draw(ID),
        "order_id": draw(ID),
        "created_at": "2026-11-21T12:00:00-05:00",
        "refund_line_items": draw(st.lists(st.fixed_dictionaries({"line_item_id": ID, "quantity": COUNT}), max_size=3)),
        "refund_shipping_lines": draw(st.lists(st.fixed_dictionaries({"subtotal_amount_set": bags()}), max_size=2)),
        "order_adjustments": draw(
            st.lists(st.fixed_dictionaries({"kind": st.just("shipping_refund"), "amount": MONEY}), max_size=2)
        ),
    }


@st.composite
def orders(draw) -> dict[str, Any]:
    shipping = {"price_set": draw(bags()), "discounted_price_set": draw(bags()), "is_removed": False}
    shipping["tax_lines"] = draw(st.lists(st.fixed_dictionaries({"price_set": bags()}), max_size=1))
    return {
        "id": draw(ID),
        "name": "#1",
        "email": "ada@example.com",
        "currency": "USD",
        "presentment_currency": "USD",
        "customer": draw(st.one_of(st.none(), st.fixed_dictionaries({"id": ID}))),
        "line_items": draw(st.lists(lines(), min_size=1, max_size=4)),
        "shipping_lines": draw(st.lists(st.just(shipping), max_size=1)),
        "total_tip_received": draw(MONEY),
        "subtotal_price_set": draw(bags()),
        "refunds": draw(st.lists(refunds(), max_size=2)),
    }


JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), NUMBER_TEXT.map(Raw))
ANY_JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)
PAYLOADS = st.one_of(orders(), refunds(), ANY_JSON)


def parsed(topic: str, payload: Any) -> events.Event | None:
    """parse_event on the payload as the inbox reads it (floats as Decimal), or None if refused."""
    data = json.loads(encode(payload), parse_float=Decimal)
    try:
        return parse_event(topic, data, WHEN)
    except ValidationError:
        return None


@fuzz_settings(400)
@given(topic=st.sampled_from(PARSED_TOPICS), payload=PAYLOADS)
def test_the_payload_parser_accepts_or_refuses_with_a_validation_error(topic, payload):
    event = parsed(topic, payload)  # any exception but ValidationError fails the test
    assert event is None or isinstance(
        event,
        events.OrderCreated | events.OrderPaid | events.OrderCancelled | events.OrderRefunded | events.CustomerCreated,
    )


def _amounts(order: events.OrderSnapshot):
    for line in order.lines:
        yield from (line.gross, line.discount, line.tax)
    yield from (order.shipping, order.shipping_tax, order.tip)
    for refund in order.refunds:
        yield refund.shipping


def _within_bounds(refund: events.RefundFacts) -> None:
    assert 0 < refund.refund_id <= MAX_ID and 0 < refund.order_id <= MAX_ID
    assert all(0 < line_id <= MAX_ID for line_id in refund.line_quantities)
    assert all(0 <= quantity <= MAX_QUANTITY for quantity in refund.line_quantities.values())
    assert 0 <= refund.shipping <= MAX_AMOUNT


@fuzz_settings(400, shrink=False)
@given(topic=st.sampled_from(PARSED_TOPICS), payload=st.one_of(orders(), refunds()))
def test_every_payload_the_parser_accepts_is_within_bounds(topic, payload):
    event = parsed(topic, payload)
    if event is None:  # refused: fine. Not assume(): refusals still count, so the example budget stays bounded
        return
    if isinstance(event, events.OrderRefunded):
        _within_bounds(event.refund)
        return
    if isinstance(event, events.CustomerCreated):
        assert 0 < event.customer.customer_id <= MAX_ID
        return
    order = event.order
    assert 0 < order.order_id <= MAX_ID
    assert order.customer is None or 0 < order.customer.customer_id <= MAX_ID
    assert 1 <= len(order.lines) <= MAX_LINES
    assert all(0 < line.line_id <= MAX_ID and 0 <= line.quantity <= MAX_QUANTITY for line in order.lines)
    assert all(0 <= amount <= MAX_AMOUNT for amount in _amounts(order))
    for refund in order.refunds:
        _within_bounds(refund)


def _final_status(settings, webhook_id: str) -> tuple[str, str | None]:
    with transaction(settings.database_url) as session:
        row = session.execute(select(Delivery).where(Delivery.webhook_id == webhook_id)).scalar_one()
        return row.status, row.reason


def _body(draw_payload: Any) -> bytes:
    return draw_payload if isinstance(draw_payload, bytes) else encode(draw_payload)


RAW_BODIES = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"[" * 100_000, b'{"id": NaN}', b'{"id": Infinity}', b'{"id": 1' + b"0" * 5000 + b"}", b"{"]),
)


@fuzz_settings(60)
@given(topic=st.sampled_from(PARSED_TOPICS), payload=st.one_of(PAYLOADS, RAW_BODIES))
def test_every_signed_delivery_ends_processed_ignored_or_parked_with_a_reason(client, settings, shop, topic, payload):
    webhook_id = str(uuid.uuid4())
    response = deliver(client, topic, _body(payload), webhook_id=webhook_id)
    assert response.status_code == 200
    status, reason = _final_status(settings, webhook_id)
    assert status in ("processed", "ignored", "parked")
    assert status != "parked" or reason


ABSURD_EXPONENTS = st.sampled_from(["-1e999990", "1e999999", "1E-999999", "-1e-999990", "1e400", "1e-400"])


@fuzz_settings(30)
@given(topic=st.sampled_from(("orders/paid", "refunds/create")), payload=st.data())
def test_absurd_exponents_are_parked_with_a_reason(client, settings, shop, topic, payload):
    exponent = Raw(payload.draw(ABSURD_EXPONENTS))
    body = payload.draw(orders() if topic == "orders/paid" else refunds())
    where = payload.draw(st.sampled_from(("subtotal", "price", "shipping")))
    if topic == "orders/paid" and where == "subtotal":
        body["subtotal_price_set"] = {"shop_money": {"amount": exponent, "currency_code": "USD"}}
    elif topic == "orders/paid":
        body["line_items"][0]["price_set"] = {"shop_money": {"amount": exponent, "currency_code": "USD"}}
    else:
        body["order_adjustments"] = [{"kind": "shipping_refund", "amount": exponent}]
    webhook_id = str(uuid.uuid4())
    assert deliver(client, topic, encode(body), webhook_id=webhook_id).status_code == 200
    status, reason = _final_status(settings, webhook_id)
    assert status == "parked" and reason
