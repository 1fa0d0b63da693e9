"""A lean reader of order payloads: the plain shape read without marshmallow, anything else left to the schema.

Loading the ~11 kB orders/paid body through `payloads.OrderSchema` (27 nested schema loads per order) was the
largest part of the drain's Python time once its writes were set-based (decision 0043). This reader checks the
same fields with the same bounds, builds the loaded values in the schema's shapes and hands them to the schema's
own constructors (`payloads.line_of`, `customer_of`, `snapshot_of`), so it returns the same snapshot. It accepts
only the plain JSON shapes (a bool where a bool is expected, an int where an id is): at the first thing it would
have to think about (a wrong type, a missing or null required field, a value out of bounds, a refund to read) it
declines, and `load_order` asks the schema, which either reads it as before or words the same refusal as before.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from plugin.platforms.shopify import payloads
from plugin.platforms.shopify.payloads import MAX_AMOUNT, MAX_ID, MAX_LINES, MAX_NUMBER_CHARACTERS, MAX_QUANTITY
from plugin.programme import events

_PLACES = Decimal(1).scaleb(-payloads.MAX_DECIMAL_PLACES)
_PLAIN_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")  # below MAX_AMOUNT, at most 6 places, not negative
_CURRENCY = re.compile(r"^[A-Z]{3}$")  # OrderSchema's validate.Regexp: re.match, so "USD\n" passes there too
_PROCESSED_AT = payloads.OrderSchema().fields["processed_at"]  # dates are rare and subtle: the schema's field
_CANCELLED_AT = payloads.OrderSchema().fields["cancelled_at"]


class _Declined(Exception):
    """Not the plain shape: the schema reads this payload."""


def load_order(payload: Any) -> events.OrderSnapshot:
    """`payloads.load_order(payload)`: the same snapshot, or the same ValidationError."""
    snapshot = read(payload)
    return snapshot if snapshot is not None else payloads.load_order(payload)


def read(payload: Any) -> events.OrderSnapshot | None:
    """The snapshot of a payload in the plain shape; None for anything else (the schema then reads it)."""
    if type(payload) is not dict:
        return None
    try:
        return _order(payload)
    except Exception:  # _Declined, or whatever an odd value raises: the schema decides, and words any error
        return None


def _order(data: dict) -> events.OrderSnapshot:
    refunds = _list(data.get("refunds", []))
    if refunds:
        raise _Declined  # refunds carry dates and adjustments: rare in a paid order, read by the schema
    return payloads.snapshot_of(
        {
            "id": _id(data.get("id")),
            "name": _text(data.get("name"), 64),
            "email": _text(data.get("email"), 320),
            "currency": _currency(data.get("currency")),
            "presentment_currency": _string_or_none(data.get("presentment_currency")),
            "test": _flag(data.get("test", False)),
            "taxes_included": _flag(data.get("taxes_included", False)),
            "customer": _customer(data.get("customer")),
            "line_items": [_line(item) for item in _list(data.get("line_items"))],
            "shipping_lines": [_shipping_line(item) for item in _list(data.get("shipping_lines", []))],
            "total_tip_received": _tip(data),
            "processed_at": _date(_PROCESSED_AT, data.get("processed_at")),
            "cancelled_at": _date(_CANCELLED_AT, data.get("cancelled_at")),
            "refunds": [],
            "subtotal_price_set": _bag(data.get("subtotal_price_set")),
            "discount_codes": [_code(d) for d in _list(data.get("discount_codes", []))],
            "note_attributes": [_attribute(a) for a in _list(data.get("note_attributes", []))],
            "phone": _text(data.get("phone"), 64),
            "shipping_address": _address(data.get("shipping_address")),
        }
    )


def _line(item: Any) -> events.OrderLine:
    data = _object(item)
    return payloads.line_of(
        {
            "id": _id(data.get("id")),
            "quantity": _count(data.get("quantity")),
            "price_set": _bag(data.get("price_set")),
            "price": _amount_or_none(data.get("price")),
            "total_discount_set": _bag(data.get("total_discount_set")),
            "discount_allocations": [
                _allocated(a, "amount_set", "amount") for a in _list(data.get("discount_allocations", []))
            ],
            "tax_lines": [_allocated(t, "price_set", "price") for t in _list(data.get("tax_lines", []))],
            "gift_card": _flag(data.get("gift_card", False)),
            "product_id": _id_or_none(data.get("product_id")),
            "variant_id": _id_or_none(data.get("variant_id")),
            "sku": data.get("sku"),  # fields.Raw: anything, and line_of keeps only a string
        }
    )


def _shipping_line(item: Any) -> dict:
    data = _object(item)
    return {
        "discounted_price_set": _bag(data.get("discounted_price_set")),
        "discounted_price": _amount_or_none(data.get("discounted_price")),
        "price_set": _bag(data.get("price_set")),
        "price": _amount_or_none(data.get("price")),
        "is_removed": _flag(data.get("is_removed", False)),
        "tax_lines": [_allocated(t, "price_set", "price") for t in _list(data.get("tax_lines", []))],
    }


def _customer(value: Any) -> events.Customer | None:
    if value is None:
        return None
    data = _object(value)
    return payloads.customer_of(
        {
            "id": _id(data.get("id")),
            "email": _text(data.get("email"), 320),
            "first_name": _text(data.get("first_name"), 255),
            "last_name": _text(data.get("last_name"), 255),
            "tags": _string_or_none(data.get("tags")),
            "metafields": data.get("metafields"),  # fields.Raw; customer_of skips odd entries
        }
    )


def _address(value: Any) -> events.Address | None:
    if value is None:
        return None
    data = _object(value)
    return events.Address(
        _text(data.get("address1"), 255), _text(data.get("zip"), 32), _text(data.get("country_code"), 8),
        _text(data.get("phone"), 64),
    )  # fmt: skip


def _code(value: Any) -> dict:
    return {"code": _text(_object(value).get("code"), 255)}


def _attribute(value: Any) -> dict:
    data = _object(value)
    return {"name": _text(data.get("name"), 255), "value": data.get("value")}


def _allocated(value: Any, bag_field: str, plain_field: str) -> Decimal:
    """An allocation or a tax line (payloads._Amount): the bag's shop amount, else the plain amount; both checked."""
    data = _object(value)
    bag = _bag(data.get(bag_field))
    plain = _amount_or_none(data.get(plain_field))
    if bag is not None:
        return payloads.shop_amount(bag)
    if plain is not None:
        return plain
    raise _Declined


def _bag(value: Any) -> dict | None:
    """A `*_set` money bag in the loaded shape shop_amount reads; its presentment money is checked all the same."""
    if value is None:
        return None
    data = _object(value)
    presentment = data.get("presentment_money")
    if presentment is not None:
        _money(presentment)
    return {"shop_money": _money(data.get("shop_money"))}


def _money(value: Any) -> dict:
    data = _object(value)
    if type(data.get("currency_code")) is not str:
        raise _Declined
    return {"amount": _amount(data.get("amount"))}


def _amount(value: Any) -> Decimal:
    """payloads.BoundedDecimal: at most MAX_NUMBER_CHARACTERS, finite, at most MAX_AMOUNT, not negative, 6 places."""
    kind = type(value)
    if kind is str and _PLAIN_AMOUNT.fullmatch(value):
        return Decimal(value)  # how Shopify writes amounts ("199.00"): within every bound by its form
    if kind is not str and kind is not Decimal and kind is not int:  # a bool, a float, None, a list: the schema
        raise _Declined
    if kind is not int and len(str(value)) > MAX_NUMBER_CHARACTERS:
        raise _Declined
    number = Decimal(str(value))  # as fields.Decimal converts; a bad string raises, and the schema words it
    if not number.is_finite() or abs(number) > MAX_AMOUNT or number < 0 or number != number.quantize(_PLACES):
        raise _Declined
    return number


def _amount_or_none(value: Any) -> Decimal | None:
    return None if value is None else _amount(value)


def _tip(data: dict) -> Decimal | None:
    """total_tip_received: Decimal(0) when absent (the schema's load_default), None when null."""
    if "total_tip_received" not in data:
        return Decimal(0)
    return _amount_or_none(data["total_tip_received"])


def _id(value: Any) -> int:
    if type(value) is not int or not 1 <= value <= MAX_ID:
        raise _Declined
    return value


def _id_or_none(value: Any) -> int | None:
    return None if value is None else _id(value)


def _count(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= MAX_QUANTITY:
        raise _Declined
    return value


def _flag(value: Any) -> bool:
    if value is not True and value is not False:  # fields.Boolean also takes "yes", 1, "on": the schema
        raise _Declined
    return value


def _text(value: Any, max_length: int) -> str | None:
    """payloads.StoredText: None, or the string made storable."""
    if value is None:
        return None
    if type(value) is not str:
        raise _Declined
    return payloads.storable(value, max_length)


def _string_or_none(value: Any) -> str | None:
    if value is not None and type(value) is not str:
        raise _Declined
    return value


def _currency(value: Any) -> str:
    if type(value) is not str or _CURRENCY.match(value) is None:
        raise _Declined
    return value


def _date(field: Any, value: Any):
    return None if value is None else field.deserialize(value)


def _list(value: Any) -> list:
    if type(value) is not list or len(value) > MAX_LINES:
        raise _Declined
    return value


def _object(value: Any) -> dict:
    if type(value) is not dict:
        raise _Declined
    return value
