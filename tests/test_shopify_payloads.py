"""The Shopify adapter: payload schemas into neutral events, signatures, shop domains and delivery timestamps.

Payloads go through json.loads(..., parse_float=Decimal), as the inbox parses a delivery's body.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from marshmallow import ValidationError

from plugin.platforms.shopify.adapter import is_valid_shop_domain, parse_event, parse_triggered_at, verify_webhook
from plugin.platforms.shopify.payloads import load_customer, load_order, load_refund
from plugin.programme import events
from plugin.programme.earning import ProgramSettings, build_lot, points_to_hold
from plugin.programme.events import Customer, RefundFacts
from tests import builders
from tests.conftest import fixture

DEFAULT = ProgramSettings()
TRIGGERED_AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def delivered(payload: Any) -> Any:
    """The payload as the inbox sees it: JSON text parsed with Decimal floats."""
    return json.loads(json.dumps(payload), parse_float=Decimal)


def fixture_body(name: str) -> dict[str, Any]:
    return delivered(fixture(name)["body"])


def earned(payload: dict[str, Any], settings: ProgramSettings = DEFAULT) -> int:
    snapshot = load_order(delivered(payload))
    return build_lot(snapshot, settings, TRIGGERED_AT, has_member=snapshot.customer is not None).points


def positive_copy_of_the_canned_order() -> dict[str, Any]:
    body = copy.deepcopy(fixture_body("orders.paid.json"))
    body["test"] = False
    body["cancelled_at"] = None
    return body


# --- the captured deliveries --------------------------------------------------------------------------------------


def test_captured_paid_order_is_a_cancelled_test_order_and_earns_nothing():
    body = fixture_body("orders.paid.json")
    event = parse_event("orders/paid", body, TRIGGERED_AT)
    assert isinstance(event, events.OrderPaid)
    assert event.paid_at == TRIGGERED_AT
    snapshot = event.order
    assert snapshot.test is True
    assert snapshot.cancelled_at is not None
    assert snapshot.currency == "USD"
    assert len(snapshot.lines) == len(body["line_items"]) == 2
    assert snapshot.customer is not None and snapshot.customer.email == body["customer"]["email"]

    lot = build_lot(snapshot, DEFAULT, event.paid_at, has_member=True)
    assert lot.points == 0
    assert lot.reason == "test order"
    assert points_to_hold(lot, snapshot.refunds, cancelled=snapshot.cancelled_at is not None) == 0


def test_live_copy_of_the_canned_order_earns_its_subtotal_after_the_unallocated_discount():
    body = positive_copy_of_the_canned_order()
    assert Decimal(body["subtotal_price_set"]["shop_money"]["amount"]) == Decimal("388.00")
    assert sum(Decimal(item["price"]) * item["quantity"] for item in body["line_items"]) == Decimal("398.00")

    snapshot = load_order(body)
    assert snapshot.test is False and snapshot.cancelled_at is None
    discounts = [line.discount for line in snapshot.lines]
    assert sum(discounts) == Decimal("10.00"), f"the unallocated 10.00 must be spread across lines, got {discounts}"
    assert discounts == [Decimal("5.00"), Decimal("5.00")]  # two equal 199.00 lines share it equally
    assert sum(line.gross - line.discount for line in snapshot.lines) == Decimal("388.00")

    lot = build_lot(snapshot, DEFAULT, TRIGGERED_AT, has_member=True)
    assert lot.points == 388
    assert lot.reason is None


def test_captured_refund_parses_with_its_line_quantities_and_reverses_the_live_copy():
    body = fixture_body("refunds.create.json")
    refund = load_refund(body)
    assert isinstance(refund, RefundFacts)
    assert refund.refund_id == body["id"]
    assert refund.order_id == body["order_id"]
    expected = {item["line_item_id"]: item["quantity"] for item in body["refund_line_items"]}
    assert len(expected) == 2 and set(expected.values()) == {1}
    assert refund.line_quantities == expected
    assert refund.shipping == Decimal(0)
    assert refund.created_at == datetime(2022, 1, 1, 0, 0, tzinfo=UTC)  # 2021-12-31T19:00:00-05:00

    # It refunds both lines of the canned order (by line_item_id, not the refund line's own id).
    order = load_order(positive_copy_of_the_canned_order())
    assert set(refund.line_quantities) == {line.line_id for line in order.lines}
    assert refund.order_id == order.order_id
    lot = build_lot(order, DEFAULT, TRIGGERED_AT, has_member=True)
    assert points_to_hold(lot, [refund], cancelled=False) == 0

    event = parse_event("refunds/create", body, TRIGGERED_AT)
    assert event == events.OrderRefunded(refund)


def test_captured_customer_parses_into_a_customer():
    body = fixture_body("customers.create.json")
    customer = load_customer(body)
    assert customer == Customer(body["id"], "bob@biller.com", "Bob", "Biller")
    assert parse_event("customers/create", body, TRIGGERED_AT) == events.CustomerCreated(customer)


# --- amounts from shop money --------------------------------------------------------------------------------------


def test_multi_currency_order_earns_on_shop_money_not_presentment():
    rate = Decimal("0.9")
    lines = [builders.line(1, "100.00", rate=rate), builders.line(2, "20.00", 2, discount="5.00", rate=rate)]
    payload = builders.order(6001, lines=lines, currency="USD", presentment_currency="EUR")
    payload["subtotal_price_set"] = builders.money("135.00", "USD", ("121.50", "EUR"))
    assert lines[0]["price_set"]["presentment_money"]["amount"] == "90.00"  # the buyer paid in EUR

    snapshot = load_order(delivered(payload))
    assert snapshot.currency == "USD"
    assert [(line.gross, line.discount) for line in snapshot.lines] == [
        (Decimal("100.00"), Decimal("0")),
        (Decimal("40.00"), Decimal("5.00")),
    ]
    assert earned(payload) == 135  # 100 + 40 - 5 in USD; presentment would give 121


def test_tip_in_another_currency_is_not_counted_as_shop_money():
    same = builders.order(6002, lines=[builders.line(1, "50.00")], tip="5.00")
    other = builders.order(
        6003, lines=[builders.line(1, "50.00", rate=Decimal("0.9"))], tip="4.50", presentment_currency="EUR"
    )
    settings = ProgramSettings(include_tips=True)
    assert earned(same, settings) == 55
    assert earned(other, settings) == 50


def test_line_taxes_shipping_and_gift_cards_come_from_shop_money():
    lines = [builders.line(1, "55.00", discount="5.00", tax="4.55"), builders.line(2, "25.00", gift_card=True)]
    payload = builders.order(6004, lines=lines, shipping="12.00", shipping_tax="2.00", taxes_included=True)
    snapshot = load_order(delivered(payload))
    assert snapshot.taxes_included is True
    assert snapshot.lines[0].tax == Decimal("4.55")
    assert snapshot.lines[1].gift_card is True
    assert (snapshot.shipping, snapshot.shipping_tax) == (Decimal("12.00"), Decimal("2.00"))
    assert earned(payload) == 45  # 55 - 5 - 4.55 = 45.45; gift card and shipping excluded
    assert earned(payload, ProgramSettings(include_shipping=True)) == 55  # + 12 - 2


def test_shipping_uses_the_discounted_price_and_skips_removed_lines():
    payload = builders.order(6005, lines=[builders.line(1, "50.00")], shipping="10.00")
    payload["shipping_lines"][0]["discounted_price_set"] = builders.money("6.00")
    removed = {**payload["shipping_lines"][0], "is_removed": True, "price_set": builders.money("99.00")}
    removed["discounted_price_set"] = builders.money("99.00")
    payload["shipping_lines"].append(removed)
    assert load_order(delivered(payload)).shipping == Decimal("6.00")
    assert earned(payload, ProgramSettings(include_shipping=True)) == 56


def test_older_payload_without_money_bags_uses_the_plain_shop_currency_fields():
    line = builders.line(1, "12.50", 2, discount="2.50", tax="1.25")
    for key in ("price_set", "total_discount_set"):
        del line[key]
    for nested in (*line["discount_allocations"], *line["tax_lines"]):
        del nested["amount_set" if "amount_set" in nested else "price_set"]
    payload = builders.order(6007, lines=[line], shipping="4.00")
    del payload["shipping_lines"][0]["price_set"], payload["shipping_lines"][0]["discounted_price_set"]
    [parsed] = load_order(delivered(payload)).lines
    assert (parsed.gross, parsed.discount, parsed.tax) == (Decimal("25.00"), Decimal("2.50"), Decimal("1.25"))
    assert load_order(delivered(payload)).shipping == Decimal("4.00")
    assert earned(payload, ProgramSettings(include_shipping=True)) == 26  # 25.00 - 2.50 + 4.00


def test_unallocated_discount_is_spread_to_the_cent():
    lines = [builders.line(1, "10.00"), builders.line(2, "10.00"), builders.line(3, "10.00")]
    payload = builders.order(6006, lines=lines)
    payload["subtotal_price_set"] = builders.money("20.00")  # 10.00 of discount not allocated to lines
    snapshot = load_order(delivered(payload))
    discounts = [line.discount for line in snapshot.lines]
    assert sum(discounts) == Decimal("10.00")
    assert sorted(discounts) == [Decimal("3.33"), Decimal("3.33"), Decimal("3.34")]
    assert all(d == d.quantize(Decimal("0.01")) for d in discounts)
    assert earned(payload) == 20


# --- malformed payloads -------------------------------------------------------------------------------------------


def _without_line_items() -> dict[str, Any]:
    payload = builders.order(7001)
    del payload["line_items"]
    return payload


def _without_line_price() -> dict[str, Any]:
    payload = builders.order(7005)
    payload["line_items"][0]["price_set"] = None
    del payload["line_items"][0]["price"]
    return payload


def _with(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    payload = builders.order(7002)
    target: Any = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("orders/paid", _without_line_items()),
        ("orders/paid", _with(("id",), "7002")),
        ("orders/paid", _with(("line_items", 0, "id"), "70021")),
        ("orders/paid", _with(("line_items", 0, "quantity"), "1")),
        ("orders/paid", _without_line_price()),
        ("orders/paid", _with(("customer", "id"), "7001")),
        ("orders/paid", [builders.order(7003)]),
        ("orders/paid", "not an object"),
        ("orders/paid", None),
        ("orders/create", 42),
        ("orders/cancelled", []),
        ("refunds/create", {**builders.refund(1, 2), "id": "1"}),
        ("refunds/create", ["refund"]),
        ("customers/create", {"email": "no-id@example.com"}),
        ("customers/create", "customer"),
    ],
    ids=[
        "missing_line_items",
        "string_order_id",
        "string_line_id",
        "string_quantity",
        "line_without_any_price",
        "string_customer_id",
        "list_body",
        "string_body",
        "null_body",
        "number_body",
        "empty_list_body",
        "string_refund_id",
        "list_refund_body",
        "customer_without_id",
        "string_customer_body",
    ],
)
def test_malformed_payload_raises_validation_error(topic, payload):
    with pytest.raises(ValidationError):
        parse_event(topic, delivered(payload), TRIGGERED_AT)


def test_non_object_body_is_refused_by_each_loader():
    for loader in (load_order, load_refund, load_customer):
        with pytest.raises(ValidationError):
            loader(["not", "an", "object"])


@pytest.mark.parametrize("topic", ["orders/updated", "orders/fulfilled", "collections/create", ""])
def test_unused_topic_gives_no_event(topic):
    assert parse_event(topic, fixture_body("orders.paid.json"), TRIGGERED_AT) is None


@pytest.mark.parametrize(
    ("topic", "event_type"),
    [
        ("orders/create", events.OrderCreated),
        ("orders/paid", events.OrderPaid),
        ("orders/cancelled", events.OrderCancelled),
    ],
)
def test_order_topics_give_their_events(topic, event_type):
    event = parse_event(topic, delivered(builders.order(7004)), TRIGGERED_AT)
    assert type(event) is event_type
    assert event.order.order_id == 7004


# --- refunds inside orders and older refund shapes ----------------------------------------------------------------


def test_refunds_embedded_in_an_order_come_through_on_the_snapshot():
    refunds = [builders.refund(9001, 8001, {80011: 1}), builders.refund(9002, 8001, {80011: 1}, shipping="4.00")]
    payload = builders.order(8001, lines=[builders.line(80011, "10.00", 3)], shipping="10.00", refunds=refunds)
    snapshot = load_order(delivered(payload))
    created = datetime(2026, 11, 21, 17, 0, tzinfo=UTC)
    assert snapshot.refunds == (
        RefundFacts(9001, 8001, {80011: 1}, Decimal("0"), created),
        RefundFacts(9002, 8001, {80011: 1}, Decimal("4.00"), created),
    )
    lot = build_lot(snapshot, ProgramSettings(include_shipping=True), TRIGGERED_AT, has_member=True)
    assert lot.points == 40
    assert points_to_hold(lot, snapshot.refunds, cancelled=False) == 16  # one unit (10) + shipping 6


def _with_adjustments(adjustments: list[dict[str, Any]]) -> dict[str, Any]:
    return {**builders.refund(9101, 8101, {81011: 1}), "order_adjustments": adjustments}


@pytest.mark.parametrize(
    ("adjustments", "expected_shipping"),
    [
        ([{"kind": "shipping_refund", "amount": "-7.50", "amount_set": builders.money("-7.50")}], Decimal("7.50")),
        ([{"kind": "shipping_refund", "amount": "-7.50"}], Decimal("7.50")),  # older shape: no amount_set
        ([{"kind": "shipping_refund", "amount": -7.5}], Decimal("7.5")),  # a JSON number, parsed as Decimal
        (
            [
                {"kind": "shipping_refund", "amount": "-2.00", "amount_set": builders.money("-2.00")},
                {"kind": "shipping_refund", "amount": "-3.00", "amount_set": builders.money("-3.00")},
            ],
            Decimal("5.00"),
        ),
        ([{"kind": "refund_discrepancy", "amount": "-7.50", "amount_set": builders.money("-7.50")}], Decimal(0)),
    ],
    ids=["with_amount_set", "amount_only", "numeric_amount", "two_adjustments", "discrepancy_is_not_shipping"],
)
def test_order_adjustment_shipping_refund_counts_as_shipping_refunded(adjustments, expected_shipping):
    refund = load_refund(delivered(_with_adjustments(adjustments)))
    assert refund.shipping == expected_shipping
    assert refund.line_quantities == {81011: 1}


def test_adjustment_shipping_refund_reduces_points_when_shipping_earned():
    payload = builders.order(8101, lines=[builders.line(81011, "10.00", 2)], shipping="10.00")
    lot = build_lot(
        load_order(delivered(payload)), ProgramSettings(include_shipping=True), TRIGGERED_AT, has_member=True
    )
    assert lot.points == 30
    refund = load_refund(delivered(_with_adjustments([{"kind": "shipping_refund", "amount": "-7.50"}])))
    assert points_to_hold(lot, [refund], cancelled=False) == 12  # 10.00 line + 2.50 shipping kept


def test_refund_line_quantities_for_the_same_line_are_added():
    payload = builders.refund(9201, 8201)
    payload["refund_line_items"] = [
        {"line_item_id": 82011, "quantity": 1},
        {"line_item_id": 82011, "quantity": 2},
        {"line_item_id": 82012, "quantity": 1},
    ]
    assert load_refund(delivered(payload)).line_quantities == {82011: 3, 82012: 1}


# --- webhook signatures -------------------------------------------------------------------------------------------

BODY = json.dumps(fixture("orders.paid.json")["body"]).encode()


def sign(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.mark.parametrize(
    ("signature", "secrets", "accepted"),
    [
        (sign(BODY, "current"), ["current"], True),
        (sign(BODY, "previous"), ["current", "previous"], True),
        (sign(BODY, "current"), ["current", "previous"], True),
        (sign(BODY, "previous"), ["current"], False),
        (sign(BODY, "wrong"), ["current", "previous"], False),
        (sign(BODY + b" ", "current"), ["current"], False),
        (sign(BODY, "current")[:-2], ["current"], False),
        (None, ["current"], False),
        ("", ["current"], False),
        (sign(BODY, "current"), [], False),
    ],
    ids=[
        "right_signature",
        "previous_secret_during_rotation",
        "current_secret_during_rotation",
        "previous_secret_after_rotation",
        "wrong_secret",
        "body_changed",
        "truncated_signature",
        "missing_signature",
        "empty_signature",
        "no_secrets",
    ],
)
def test_verify_webhook(signature, secrets, accepted):
    assert verify_webhook(BODY, signature, secrets) is accepted


# --- shop domains -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("my-shop-1.myshopify.com", True),
        ("shop.myshopify.com", True),
        ("shop.myshopify.com.attacker.net", False),
        ("https://shop.myshopify.com", False),
        ("shop.myshopify.com/", False),
        ("SHOP.myshopify.com", False),  # the pattern is lowercase only; Shopify sends lowercase
        ("-shop.myshopify.com", False),
        ("attacker.net/shop.myshopify.com", False),
        ("shop.myshopify.com\n", False),
        ("myshopify.com", False),
        ("shop.myshopifyxcom", False),
        ("sub.shop.myshopify.com", False),
        ("", False),
        (None, False),
    ],
)
def test_is_valid_shop_domain(domain, valid):
    assert is_valid_shop_domain(domain) is valid


# --- delivery timestamps ------------------------------------------------------------------------------------------

FALLBACK = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2026-11-20T10:00:00.123456789Z", datetime(2026, 11, 20, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-08-07T22:58:21.978733396Z", datetime(2024, 8, 7, 22, 58, 21, 978733, tzinfo=UTC)),
        ("2026-11-20T10:00:00Z", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
        ("2026-11-20T10:00:00.5Z", datetime(2026, 11, 20, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-20T12:00:00.25+02:00", datetime(2026, 11, 20, 10, 0, 0, 250000, tzinfo=UTC)),
        ("  2026-11-20T10:00:00Z  ", datetime(2026, 11, 20, 10, 0, tzinfo=UTC)),
    ],
    ids=["nanoseconds_z", "captured_header", "no_fraction", "short_fraction", "offset", "padded"],
)
def test_parse_triggered_at_reads_shopify_timestamps(header, expected):
    parsed = parse_triggered_at(header, FALLBACK)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        "2026-11-20",
        "2026-11-20T10:00:00",  # no zone: refusing to guess
        "2026-11-20 10:00:00Z",
        "1732096800",
        "2026-13-45T10:00:00Z",  # shaped like a timestamp, but no such date
        "2026-11-20T25:00:00Z",
        "2026-11-20T10:00:00+25:00",
    ],
    ids=[
        "none",
        "empty",
        "garbage",
        "date_only",
        "no_zone",
        "space_separator",
        "epoch_seconds",
        "impossible_date",
        "impossible_hour",
        "impossible_offset",
    ],
)
def test_parse_triggered_at_falls_back_on_garbage(header):
    try:
        parsed = parse_triggered_at(header, FALLBACK)
    except ValueError as error:
        pytest.fail(f"parse_triggered_at({header!r}) raised {error!r} instead of returning the fallback")
    assert parsed == FALLBACK


def test_unallocated_discount_is_not_spread_onto_gift_cards():
    lines = [builders.line(1, "100.00"), builders.line(2, "100.00", gift_card=True)]
    payload = builders.order(6100, lines=lines)
    payload["subtotal_price_set"] = builders.money("190.00")
    snapshot = load_order(delivered(payload))
    assert [line.discount for line in snapshot.lines] == [Decimal("10.00"), Decimal("0")]
    assert earned(payload) == 90
