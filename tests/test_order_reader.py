"""The lean order reader against the marshmallow schema: the same snapshot, or the same refusal, for any payload."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from marshmallow import ValidationError

from plugin.platforms.shopify import order_reader, payloads
from tests.conftest import fixture
from tests.fuzzing import fuzz_settings


def delivered(payload: Any) -> Any:
    """The payload as the inbox sees it: JSON text parsed with Decimal floats."""
    return json.loads(json.dumps(payload), parse_float=Decimal)


def bag(amount: Any) -> dict:
    return {"shop_money": {"amount": amount, "currency_code": "USD"},
            "presentment_money": {"amount": amount, "currency_code": "USD"}}  # fmt: skip


def rich_order() -> dict:
    """The captured orders/paid, with every shape the reader reads filled in (the capture leaves most empty)."""
    order = delivered(fixture("orders.paid.json")["body"])
    first, second = order["line_items"]
    first["discount_allocations"] = [{"amount": "5.00", "amount_set": bag("5.00")}, {"amount": "1.50"}]
    first["tax_lines"] = [{"price": "3.10", "price_set": bag("3.10"), "rate": 0.06, "title": "State"}]
    second.pop("price_set")  # an older payload: the plain price only
    second["sku"] = "MEMBER\x00SHIP"
    order["shipping_lines"].append(
        {"price": "4.00", "price_set": bag("4.00"), "is_removed": True, "tax_lines": [{"price": "0.40"}]}
    )
    order["shipping_lines"][0]["tax_lines"] = [{"price_set": bag("0.60")}]
    order["discount_codes"] = [{"code": " spring10 ", "amount": "10.00"}, {"code": ""}]
    order["note_attributes"] = [{"name": "gift", "value": "yes"}, {"name": "n", "value": 7}, {"name": "x"}]
    order["customer"]["tags"] = "VIP, wholesale ,"
    order["customer"]["metafields"] = [{"namespace": "facts", "key": "birthday", "value": "1990-04-01"}, 5]
    order["subtotal_price_set"] = bag("300.00")  # below the lines: an unallocated discount to spread
    order["total_tip_received"] = "2.50"
    order["name"] = "#" + "9" * 80  # cut to its column
    return order


BASES = [delivered(fixture("orders.paid.json")["body"]), delivered(fixture("orders.create.json")["body"]), rich_order()]


def outcome(load, payload: Any) -> tuple[str, Any]:
    try:
        return "read", repr(load(payload))  # repr: Decimal('1.0') and Decimal('1.00') are == but not the same
    except ValidationError as error:
        return "refused", error.messages


@pytest.mark.parametrize("base", BASES, ids=["paid", "create", "rich"])
def test_the_plain_payloads_are_read_without_the_schema_and_alike(base):
    # The lean path must be the one taken for real payloads, or the equivalence below proves nothing useful.
    lean = order_reader.read(copy.deepcopy(base))
    assert lean is not None
    assert repr(lean) == repr(payloads.load_order(copy.deepcopy(base)))


def test_the_rich_order_exercises_what_it_should():
    snapshot = order_reader.read(rich_order())
    assert snapshot.lines[0].discount > Decimal("6.50")  # allocations plus a share of the unallocated discount
    assert snapshot.lines[0].tax == Decimal("3.10")
    assert snapshot.lines[1].sku == "MEMBERSHIP"
    assert snapshot.shipping_tax == Decimal("0.60")  # the removed line's tax not counted
    assert snapshot.discount_codes == ("SPRING10",)
    assert snapshot.attributes == (("gift", "yes"), ("n", "7"))
    assert snapshot.customer.tags == frozenset({"vip", "wholesale"})
    assert snapshot.customer.metafields == (("facts.birthday", "1990-04-01"),)
    assert snapshot.tip == Decimal("2.50")
    assert len(snapshot.name) == 64


def test_a_payload_with_refunds_is_left_to_the_schema():
    order = rich_order()
    order["refunds"] = [delivered(fixture("refunds.create.json")["body"])]
    assert order_reader.read(copy.deepcopy(order)) is None
    assert outcome(order_reader.load_order, order) == outcome(payloads.load_order, order)
    assert outcome(order_reader.load_order, order)[0] == "read"


def paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and index inside the payload, plus the keys the schema reads that it may lack."""
    found = []
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((*prefix, key))
            found.extend(paths(inner, (*prefix, key)))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(inner, (*prefix, index)))
    return found


ABSENT = [("refunds",), ("total_tip_received",), ("customer", "tags"), ("customer", "metafields"),
          ("line_items", 0, "sku"), ("shipping_lines", 0, "is_removed"), ("discount_codes",), ("note_attributes",),
          ("line_items", 0, "gift_card"), ("presentment_currency",), ("test",), ("taxes_included",)]  # fmt: skip
PATHS = sorted({p for base in BASES for p in paths(base)} | set(ABSENT), key=repr)

DELETE = object()
ODD_TEXTS = ["", " ", "abc", "10.00", "199.00", " 1.5 ", "1_000", "NaN", "-Infinity", "sNaN", "-0", "-1.00", "1e3",
             "1E+13", "0.0000001", "1.0000000", "999999999999.999999", "1000000000000", "1000000000000.5", "٣",
             "USD", "usd", "USD\n", "2021-12-31T19:00:00-05:00", "2021-12-31T19:00:00", "not a date", "yes", "true",
             "0", "1", "\x00a", "a\ud800b", "x" * 300, "1" * 41]  # fmt: skip
ODD_NUMBERS = [0, 1, -1, 2, 10**6, 10**6 + 1, 2**63 - 1, 2**63, Decimal("1.5"), Decimal("12.30"),
               Decimal("-0.00"), Decimal("1.1234567"), Decimal("1.0000000"), Decimal("1E+20"), Decimal("1E+12"),
               Decimal("0E-30")]  # fmt: skip
ODD_CONTAINERS = [[], [1], [{}], [None], {}, {"amount": "1.00", "currency_code": "USD"}, bag("5.00"), bag("-5"),
                  {"shop_money": {"amount": "5.00"}}, {"shop_money": None}, {"id": 5}, ["a"] * 1001,
                  [{"code": "A", "name": "n", "value": "v", "amount": "1.00", "price": "1.00"}] * 1001]  # fmt: skip
VALUES = st.one_of(
    st.just(DELETE), st.none(), st.booleans(), st.sampled_from(ODD_TEXTS), st.sampled_from(ODD_NUMBERS),
    st.sampled_from(ODD_CONTAINERS), st.integers(-(2**64), 2**64),
    st.decimals(min_value=-(10**13), max_value=10**13, allow_nan=False, allow_infinity=False),
)  # fmt: skip


def mutated(base: dict, changes: list[tuple[tuple, Any]]) -> dict:
    payload = copy.deepcopy(base)
    for path, value in changes:
        parent = payload
        for step in path[:-1]:
            try:
                parent = parent[step]
            except (KeyError, IndexError, TypeError):
                break
        else:
            last = path[-1]
            if isinstance(parent, dict) and isinstance(last, str):
                if value is DELETE:
                    parent.pop(last, None)
                else:
                    parent[last] = copy.deepcopy(value)
            elif isinstance(parent, list) and isinstance(last, int) and last < len(parent):
                if value is DELETE:
                    del parent[last]
                else:
                    parent[last] = copy.deepcopy(value)
    return payload


@fuzz_settings(600)
@given(
    base=st.sampled_from(BASES),
    changes=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=3),
)
def test_any_payload_reads_as_the_schema_reads_it(base, changes):
    payload = mutated(base, changes)
    assert outcome(order_reader.load_order, copy.deepcopy(payload)) == outcome(payloads.load_order, payload)


@pytest.mark.parametrize(
    "path",
    [("discount_codes",), ("note_attributes",), ("line_items", 0, "tax_lines"),
     ("line_items", 0, "discount_allocations"), ("shipping_lines", 0, "tax_lines")],
)  # fmt: skip
@pytest.mark.parametrize("count", [1000, 1001])
def test_lists_are_bounded_alike(path, count):
    entry = {"code": "A", "name": "n", "value": "v", "amount": "1.00", "price": "1.00"}  # valid in each of them
    payload = mutated(rich_order(), [(path, [entry] * count)])
    lean, schema = outcome(order_reader.load_order, copy.deepcopy(payload)), outcome(payloads.load_order, payload)
    assert lean == schema
    assert schema[0] == ("read" if count == 1000 else "refused")
