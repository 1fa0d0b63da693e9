"""Signed payloads with impossible numbers: parked with a readable reason, never applied, never slow."""

from __future__ import annotations

import json

from sqlalchemy import select

from plugin import inbox
from plugin.db import transaction
from plugin.models import Delivery, Member
from tests import builders
from tests.conftest import deliver


def balance(settings) -> int | None:
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.balance).where(Member.customer_id == 7001)).scalar_one_or_none()


def last(settings) -> Delivery:
    with transaction(settings.database_url) as session:
        return session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(1)).one()


def test_a_refund_of_a_negative_quantity_gives_back_nothing_and_is_parked(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "50.00", 2)]))
    assert balance(settings) == 100
    deliver(client, "refunds/create", builders.refund(5, 1, {10: -2}))
    parked = last(settings)
    assert parked.status == "parked" and "quantity" in parked.reason and "greater than or equal to 0" in parked.reason
    assert balance(settings) == 100


def test_a_negative_refund_sent_first_does_not_cancel_a_later_real_refund(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "50.00", 2)]))
    deliver(client, "refunds/create", builders.refund(5, 1, {10: -1}))
    assert last(settings).status == "parked"
    deliver(client, "refunds/create", builders.refund(6, 1, {10: 1}))
    assert last(settings).status == "processed"
    assert balance(settings) == 50


def test_a_negative_discount_allocation_earns_nothing_extra(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "10.00", discount="-10.00")]))
    parked = last(settings)
    assert parked.status == "parked" and "must not be negative" in parked.reason
    assert balance(settings) is None


def test_a_negative_tax_earns_nothing_extra(client, settings, shop):
    payload = builders.order(1, 7001, [builders.line(10, "10.00", tax="-5.00")], taxes_included=True)
    deliver(client, "orders/paid", payload)
    parked = last(settings)
    assert parked.status == "parked" and "must not be negative" in parked.reason
    assert balance(settings) is None


def test_a_quantity_beyond_any_sale_is_parked(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "0.01", 10**16)]))
    parked = last(settings)
    assert parked.status == "parked" and "quantity" in parked.reason
    assert balance(settings) is None


def test_a_huge_price_times_quantity_is_parked(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "999999999999.00", 1000)]))
    parked = last(settings)
    assert parked.status == "parked" and "price times quantity" in parked.reason


def test_an_amount_with_an_absurd_exponent_in_a_string_is_parked_with_its_reason(client, settings, shop):
    payload = builders.order(1, 7001, [builders.line(10, "10.00")])
    payload["subtotal_price_set"] = builders.money("-1e999990")
    deliver(client, "orders/paid", payload)
    parked = last(settings)
    assert parked.status == "parked" and "subtotal_price_set" in parked.reason and "at most" in parked.reason


def test_a_json_number_with_an_absurd_exponent_is_refused_when_parsed(client, settings, shop):
    body = json.dumps(builders.order(1, 7001, [builders.line(10, "10.00")]))
    body = body.replace('"total_tip_received": "0.00"', '"total_tip_received": -1e999990')
    assert "-1e999990" in body
    deliver(client, "orders/paid", body.encode())
    parked = last(settings)
    assert parked.status == "parked" and "malformed JSON" in parked.reason and "beyond 10^" in parked.reason


def test_an_integer_of_thousands_of_digits_is_refused_when_parsed(client, settings, shop):
    deliver(client, "orders/paid", b'{"id": ' + b"9" * 5000 + b', "line_items": []}')
    parked = last(settings)
    assert parked.status == "parked" and "more than 40 digits" in parked.reason


def test_too_many_lines_are_parked(client, settings, shop):
    lines = [builders.line(i, "1.00") for i in range(1, 1002)]
    deliver(client, "orders/paid", builders.order(1, 7001, lines))
    parked = last(settings)
    assert parked.status == "parked" and "line_items" in parked.reason


def test_an_amount_with_too_many_places_is_parked(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "10.0000001")]))
    assert "decimal places" in last(settings).reason


def test_parse_body_keeps_ordinary_numbers_exact():
    assert inbox.parse_body(b'{"a": 10.25, "b": 0.0, "c": 12345678901234567890}') == {
        "a": inbox.Decimal("10.25"),
        "b": inbox.Decimal("0.0"),
        "c": 12345678901234567890,
    }


def test_unstorable_text_in_a_real_order_is_made_storable_and_the_order_earns(client, settings, shop):
    payload = builders.order(1, 7001, [builders.line(10, "20.00")], email="a\x00b@example.com")
    payload["name"] = "#" + "LONG-PREFIX-" * 10 + "1001"  # longer than the 64-character column
    payload["customer"]["first_name"] = "Ada\ud800"  # an unpaired surrogate, as JSON can carry
    payload["customer"]["email"] = "a\x00b@example.com"
    deliver(client, "orders/paid", payload)
    assert last(settings).status == "processed"
    assert balance(settings) == 20
    with transaction(settings.database_url) as session:
        member = session.scalars(select(Member).where(Member.customer_id == 7001)).one()
    assert member.email == "ab@example.com" and member.first_name == "Ada\ufffd"


def test_a_currency_that_is_not_an_iso_code_is_parked(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "20.00")], currency="X" * 300))
    parked = last(settings)
    assert parked.status == "parked" and "ISO 4217" in parked.reason
    assert balance(settings) is None
