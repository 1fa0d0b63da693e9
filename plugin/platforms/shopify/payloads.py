"""marshmallow schemas for Shopify order, refund and customer payloads, loaded into neutral events."""

from __future__ import annotations

import dataclasses
import decimal
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate

from plugin.programme import events
from plugin.programme.events import Customer, OrderLine, OrderSnapshot, RefundFacts

# Bounds on every number a payload carries (docs/decisions/0013-app-proxy-parameters-and-number-bounds.md).
# A signed payload outside them cannot come from a real sale: it is parked with the reason, never applied.
MAX_AMOUNT = Decimal(10) ** 12  # shop-currency units: above any sale, even in currencies of tiny units
MAX_DECIMAL_PLACES = 6  # currencies use at most 3; Shopify's rates and splits stay well inside 6
MAX_NUMBER_CHARACTERS = 40  # an amount's text: enough for MAX_AMOUNT with MAX_DECIMAL_PLACES, sign and zeros
MAX_QUANTITY = 1_000_000  # units on one line
MAX_LINES = 1_000  # Shopify orders hold at most 499/500 lines (draft orders, carts); edits may add more
MAX_ID = 2**63 - 1  # Shopify ids are positive and fit a signed 64-bit column


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # Shopify adds fields over time; we read only what we need


class BoundedDecimal(fields.Decimal):
    """A money amount: finite, at most MAX_AMOUNT in size and MAX_DECIMAL_PLACES places, not negative unless signed."""

    def __init__(self, *, signed: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.signed = signed

    def _validated(self, value: Any) -> Decimal:
        if isinstance(value, str | Decimal) and len(str(value)) > MAX_NUMBER_CHARACTERS:
            raise ValidationError(f"has more than {MAX_NUMBER_CHARACTERS} characters")
        try:
            number = super()._validated(value)
            if abs(number) > MAX_AMOUNT:  # compared before any arithmetic, which a vast exponent makes slow
                raise ValidationError(f"must be at most {MAX_AMOUNT} in size")
            if number < 0 and not self.signed:
                raise ValidationError("must not be negative")
            if number != number.quantize(Decimal(1).scaleb(-MAX_DECIMAL_PLACES)):
                raise ValidationError(f"has more than {MAX_DECIMAL_PLACES} decimal places")
        except decimal.DecimalException as error:
            raise ValidationError(f"is not a usable number ({type(error).__name__})") from None
        return number


def _count(maximum: int = MAX_QUANTITY) -> fields.Integer:
    return fields.Integer(required=True, strict=True, validate=validate.Range(0, maximum))


def _id(**kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **({"required": True} | kwargs))


def _list(item: fields.Field, **kwargs: Any) -> fields.List:
    return fields.List(item, validate=validate.Length(max=MAX_LINES), **kwargs)


class MoneySchema(_Lenient):
    amount = BoundedDecimal(required=True)
    currency_code = fields.String(required=True)


class SignedMoneySchema(MoneySchema):
    amount = BoundedDecimal(required=True, signed=True)


class MoneyBagSchema(_Lenient):
    shop_money = fields.Nested(MoneySchema, required=True)
    presentment_money = fields.Nested(MoneySchema, load_default=None)


class SignedMoneyBagSchema(_Lenient):
    shop_money = fields.Nested(SignedMoneySchema, required=True)
    presentment_money = fields.Nested(SignedMoneySchema, load_default=None)


def shop_amount(bag: dict[str, Any] | None) -> Decimal:
    """The shop-currency amount of a `*_set` money bag (zero when absent)."""
    return bag["shop_money"]["amount"] if bag else Decimal(0)


def _bag(required: bool = False, signed: bool = False) -> fields.Nested:
    schema = SignedMoneyBagSchema if signed else MoneyBagSchema
    if required:
        return fields.Nested(schema, required=True)
    return fields.Nested(schema, load_default=None, allow_none=True)


def _amount(signed: bool = False) -> BoundedDecimal:
    return BoundedDecimal(load_default=None, allow_none=True, signed=signed)


class _Amount(_Lenient):
    """An amount given as a `*_set` bag, or (older payloads) only as the plain shop-currency field."""

    bag_field = ""
    plain_field = ""

    @post_load
    def to_amount(self, data: dict[str, Any], **_: Any) -> Decimal:
        return _shop_or_plain(data, self.bag_field, self.plain_field)


class AllocationSchema(_Amount):
    bag_field, plain_field = "amount_set", "amount"
    amount_set = _bag()
    amount = _amount()


class TaxLineSchema(_Amount):
    bag_field, plain_field = "price_set", "price"
    price_set = _bag()
    price = _amount()


def _shop_or_plain(data: dict[str, Any], bag_field: str, plain_field: str) -> Decimal:
    if data.get(bag_field):
        return shop_amount(data[bag_field])
    if data.get(plain_field) is not None:
        return data[plain_field]  # Shopify documents the plain money fields as shop currency too
    raise ValidationError({bag_field: ["missing: neither a shop-money set nor a plain amount was given"]})


class LineItemSchema(_Lenient):
    id = _id()
    quantity = _count()
    price_set = _bag()
    price = _amount()
    total_discount_set = _bag()
    discount_allocations = _list(fields.Nested(AllocationSchema), load_default=list)
    tax_lines = _list(fields.Nested(TaxLineSchema), load_default=list)
    gift_card = fields.Boolean(load_default=False)
    product_id = _id(required=False, load_default=None, allow_none=True)
    variant_id = _id(required=False, load_default=None, allow_none=True)
    sku = fields.Raw(load_default=None, allow_none=True)  # only ever matched, so anything odd is simply no SKU

    @post_load
    def to_line(self, data: dict[str, Any], **_: Any) -> OrderLine:
        return line_of(data)


def line_of(data: dict[str, Any]) -> OrderLine:
    """The order line of a loaded line item (LineItemSchema, or order_reader's lean read of one)."""
    allocated = sum(data["discount_allocations"], Decimal(0))
    # Allocations are the precise per-line discounts; total_discount is the older, coarser field.
    discount = allocated if data["discount_allocations"] else shop_amount(data["total_discount_set"])
    gross = _shop_or_plain(data, "price_set", "price") * data["quantity"]
    if gross > MAX_AMOUNT:
        raise ValidationError({"quantity": [f"price times quantity is over {MAX_AMOUNT}"]})
    return OrderLine(
        line_id=data["id"],
        quantity=data["quantity"],
        gross=gross,
        discount=discount,
        tax=sum(data["tax_lines"], Decimal(0)),
        gift_card=data["gift_card"],
        product_id=data["product_id"],
        variant_id=data["variant_id"],
        sku=data["sku"].replace("\x00", "")[:255] or None if isinstance(data["sku"], str) else None,
    )


class ShippingLineSchema(_Lenient):
    discounted_price_set = _bag()
    discounted_price = _amount()
    price_set = _bag()
    price = _amount()
    is_removed = fields.Boolean(load_default=False)
    tax_lines = _list(fields.Nested(TaxLineSchema), load_default=list)


class StoredText(fields.String):
    """Text kept as sent but made storable: NUL dropped, lone surrogates replaced, cut to its column.

    PostgreSQL refuses NUL and unpaired surrogates, and a value longer than its column: a real order carrying one
    (a long order-name prefix) must still earn, not be parked as an internal error.
    """

    def __init__(self, max_length: int, **kwargs: Any):
        super().__init__(load_default=None, allow_none=True, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        return storable(super()._deserialize(value, attr, data, **kwargs), self.max_length)


def storable(text: str, max_length: int) -> str:
    """The text with NUL dropped, lone surrogates replaced and cut to `max_length`: what PostgreSQL can keep."""
    text = text.replace("\x00", "")
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")[:max_length]


class CustomerSchema(_Lenient):
    id = _id()
    email = StoredText(320)
    first_name = StoredText(255)
    last_name = StoredText(255)
    tags = fields.String(load_default=None, allow_none=True)  # comma-separated, as Shopify sends them
    # Present when the subscription names metafieldNamespaces (a mapped birthday, say); odd entries are skipped.
    metafields = fields.Raw(load_default=None, allow_none=True)

    @post_load
    def to_customer(self, data: dict[str, Any], **_: Any) -> Customer:
        return customer_of(data)


def customer_of(data: dict[str, Any]) -> Customer:
    """The customer of a loaded customer object (CustomerSchema, or order_reader's lean read of one)."""
    return Customer(
        data["id"], data["email"], data["first_name"], data["last_name"], split_tags(data["tags"]),
        metafields=_metafields(data["metafields"]),
    )  # fmt: skip


def _metafields(raw: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, list):
        return ()
    found = []
    for item in raw[:50]:
        if isinstance(item, dict) and all(isinstance(item.get(k), str) for k in ("namespace", "key", "value")):
            found.append((f"{item['namespace']}.{item['key']}"[:130], item["value"][:200]))
    return tuple(found)


def split_tags(tags: str | None) -> frozenset[str] | None:
    """Shopify's comma-separated tags as a casefolded set; None when the payload did not say."""
    if tags is None:
        return None
    return frozenset(tag.strip().casefold() for tag in tags.split(",") if tag.strip())


class VariantSchema(_Lenient):
    id = _id()
    sku = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=255))


class ProductSchema(_Lenient):
    """products/create and products/update: the facts earning rules match lines by (no collections here)."""

    id = _id()
    # Shopify caps a product type and a vendor at 255 characters, and a product's tags at 250 of up to 255 each.
    product_type = fields.String(load_default="", allow_none=True, validate=validate.Length(max=255))
    vendor = fields.String(load_default="", allow_none=True, validate=validate.Length(max=255))
    tags = fields.String(load_default="", allow_none=True, validate=validate.Length(max=250 * 257))
    variants = _list(fields.Nested(VariantSchema), load_default=list)

    @post_load
    def to_product(self, data: dict[str, Any], **_: Any) -> events.ProductFacts:
        return events.ProductFacts(
            product_id=data["id"],
            product_type=data["product_type"] or "",
            vendor=data["vendor"] or "",
            tags=split_tags(data["tags"]) or frozenset(),
            variant_ids=tuple(v["id"] for v in data["variants"]),
            skus=frozenset(v["sku"] for v in data["variants"] if v.get("sku")),
        )


class DeletedProductSchema(_Lenient):
    id = _id()


class RefundLineSchema(_Lenient):
    line_item_id = _id()
    quantity = _count()


class OrderAdjustmentSchema(_Lenient):
    kind = fields.String(load_default="")
    # Signed: older API versions record shipping refunds as negative adjustments.
    amount = _amount(signed=True)
    amount_set = _bag(signed=True)


class RefundShippingLineSchema(_Lenient):
    subtotal_amount_set = _bag(required=True)


class RefundSchema(_Lenient):
    id = _id()
    order_id = _id()
    created_at = fields.AwareDateTime(load_default=None, allow_none=True)
    refund_line_items = _list(fields.Nested(RefundLineSchema), load_default=list)
    refund_shipping_lines = _list(fields.Nested(RefundShippingLineSchema), load_default=list)
    order_adjustments = _list(fields.Nested(OrderAdjustmentSchema), load_default=list)

    @post_load
    def to_refund(self, data: dict[str, Any], **_: Any) -> RefundFacts:
        quantities: dict[int, int] = {}
        for line in data["refund_line_items"]:
            quantities[line["line_item_id"]] = quantities.get(line["line_item_id"], 0) + line["quantity"]
        shipping = sum((shop_amount(s["subtotal_amount_set"]) for s in data["refund_shipping_lines"]), Decimal(0))
        for adjustment in data["order_adjustments"]:
            if adjustment["kind"] == "shipping_refund":
                # Older API versions record shipping refunds as negative order adjustments.
                amount = shop_amount(adjustment["amount_set"]) if adjustment["amount_set"] else adjustment["amount"]
                shipping += abs(amount or Decimal(0))
        return RefundFacts(data["id"], data["order_id"], quantities, shipping, data["created_at"])


class DiscountCodeSchema(_Lenient):
    code = StoredText(255)


class NoteAttributeSchema(_Lenient):
    name = StoredText(255)
    value = fields.Raw(load_default=None, allow_none=True)  # a string, but older carts stored numbers too


class AddressSchema(_Lenient):
    address1 = StoredText(255)
    zip = StoredText(32)
    country_code = StoredText(8)
    phone = StoredText(64)

    @post_load
    def to_address(self, data: dict[str, Any], **_: Any) -> events.Address:
        return events.Address(data["address1"], data["zip"], data["country_code"], data["phone"])


class OrderSchema(_Lenient):
    id = _id()
    name = StoredText(64)
    email = StoredText(320)
    currency = fields.String(required=True, validate=validate.Regexp(r"^[A-Z]{3}$", error="not an ISO 4217 code"))
    presentment_currency = fields.String(load_default=None, allow_none=True)
    test = fields.Boolean(load_default=False)
    taxes_included = fields.Boolean(load_default=False)
    customer = fields.Nested(CustomerSchema, load_default=None, allow_none=True)
    line_items = _list(fields.Nested(LineItemSchema), required=True)
    shipping_lines = _list(fields.Nested(ShippingLineSchema), load_default=list)
    total_tip_received = BoundedDecimal(load_default=Decimal(0), allow_none=True)
    processed_at = fields.AwareDateTime(load_default=None, allow_none=True)
    cancelled_at = fields.AwareDateTime(load_default=None, allow_none=True)
    refunds = _list(fields.Nested(RefundSchema), load_default=list)
    subtotal_price_set = _bag()
    discount_codes = _list(fields.Nested(DiscountCodeSchema), load_default=list)
    note_attributes = _list(fields.Nested(NoteAttributeSchema), load_default=list)
    phone = StoredText(64)
    shipping_address = fields.Nested(AddressSchema, load_default=None, allow_none=True)

    @post_load
    def to_snapshot(self, data: dict[str, Any], **_: Any) -> OrderSnapshot:
        return snapshot_of(data)


def snapshot_of(data: dict[str, Any]) -> OrderSnapshot:
    """The snapshot of a loaded order (OrderSchema, or order_reader's lean read of one)."""
    shipping = Decimal(0)
    shipping_tax = Decimal(0)
    for line in data["shipping_lines"]:
        if line["is_removed"]:
            continue
        if line["discounted_price_set"] or line["discounted_price"] is not None:
            shipping += _shop_or_plain(line, "discounted_price_set", "discounted_price")
        else:
            shipping += _shop_or_plain(line, "price_set", "price")
        shipping_tax += sum(line["tax_lines"], Decimal(0))
    # total_tip_received has no shop-money twin; it is only shop money when the buyer paid in it.
    same_currency = data["presentment_currency"] in (None, data["currency"])
    tip = (data["total_tip_received"] or Decimal(0)) if same_currency else Decimal(0)
    return OrderSnapshot(
        order_id=data["id"],
        name=data["name"],
        customer=data["customer"],
        email=data["email"],
        currency=data["currency"],
        test=data["test"],
        taxes_included=data["taxes_included"],
        lines=spread_unallocated_discount(tuple(data["line_items"]), data["subtotal_price_set"]),
        shipping=shipping,
        shipping_tax=shipping_tax,
        tip=tip,
        processed_at=data["processed_at"],
        cancelled_at=data["cancelled_at"],
        refunds=tuple(data["refunds"]),
        discount_codes=tuple(d["code"].strip().upper() for d in data["discount_codes"] if d["code"]),
        attributes=tuple(
            (a["name"], storable(str(a["value"]), 255))  # a cart attribute with NUL parked the order
            for a in data["note_attributes"]
            if a["name"] and a["value"] is not None
        ),
        phone=data["phone"],
        shipping_address=data["shipping_address"],
    )


def spread_unallocated_discount(lines: tuple[OrderLine, ...], subtotal_bag: dict | None) -> tuple[OrderLine, ...]:
    """Give each line its share, to the cent, of any order discount the payload did not allocate to lines.

    Shopify normally allocates every discount to lines; when it does not, `subtotal_price` (after discounts)
    is the authority, so the lines never earn on more than it.
    """
    if subtotal_bag is None or not lines:
        return lines
    # Gift cards cannot be discounted, so their lines take no share (but count in the subtotal).
    nets = [Decimal(0) if line.gift_card else line.gross - line.discount for line in lines]
    gift_cards = sum((line.gross - line.discount for line in lines if line.gift_card), Decimal(0))
    unallocated = sum(nets, Decimal(0)) + gift_cards - shop_amount(subtotal_bag)
    total = sum(nets, Decimal(0))
    if unallocated <= 0 or total <= 0:
        return lines
    cents = int(unallocated * 100)
    shares = [cents * net / total for net in nets]  # Decimal division is exact enough to rank remainders
    floors = [int(share) for share in shares]
    by_remainder = sorted(range(len(lines)), key=lambda i: shares[i] - floors[i], reverse=True)
    for i in by_remainder[: cents - sum(floors)]:
        floors[i] += 1
    return tuple(
        dataclasses.replace(ln, discount=ln.discount + Decimal(extra) / 100)
        for ln, extra in zip(lines, floors, strict=True)
    )


# One instance of each schema, made once: building a schema (and its nested ones) cost more than loading a
# payload with it. Instances hold no per-load state, so every load may share them.
_ORDER = OrderSchema()
_REFUND = RefundSchema()
_CUSTOMER = CustomerSchema()
_PRODUCT = ProductSchema()
_DELETED_PRODUCT = DeletedProductSchema()


def load_order(payload: Any) -> OrderSnapshot:
    return _ORDER.load(_object(payload))


def load_refund(payload: Any) -> RefundFacts:
    return _REFUND.load(_object(payload))


def load_customer(payload: Any) -> Customer:
    return _CUSTOMER.load(_object(payload))


def load_product(payload: Any) -> events.ProductFacts:
    return _PRODUCT.load(_object(payload))


def load_deleted_product(payload: Any) -> events.ProductDeleted:
    return events.ProductDeleted(_DELETED_PRODUCT.load(_object(payload))["id"])


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise ValidationError({"_schema": ["payload must be a JSON object"]})
    return payload


class PrivacyCustomerSchema(_Lenient):
    id = _id()


class UninstalledShopSchema(_Lenient):
    """app/uninstalled: the shop object, which names its own myshopify domain (an order body does not)."""

    id = _id()
    myshopify_domain = fields.String(required=True)


class PrivacyRequestSchema(_Lenient):
    """customers/data_request and customers/redact: the shop's domain, the customer, the request."""

    shop_id = _id()
    shop_domain = fields.String(required=True)
    customer = fields.Nested(PrivacyCustomerSchema, required=True)
    data_request = fields.Dict(load_default=None, allow_none=True)
    orders_to_redact = fields.List(_id(required=False), load_default=list, validate=validate.Length(max=10 * MAX_LINES))


class ShopRedactSchema(_Lenient):
    shop_id = _id()
    shop_domain = fields.String(required=True)


def load_uninstalled(payload: Any) -> events.AppUninstalled:
    return events.AppUninstalled(UninstalledShopSchema().load(_object(payload))["myshopify_domain"])


def load_data_request(payload: Any) -> events.CustomerDataRequested:
    data = PrivacyRequestSchema().load(_object(payload))
    request_id = (data["data_request"] or {}).get("id")
    return events.CustomerDataRequested(
        data["customer"]["id"], request_id if isinstance(request_id, int) else None, data["shop_domain"]
    )


def load_customer_redact(payload: Any) -> events.CustomerRedactRequested:
    data = PrivacyRequestSchema().load(_object(payload))
    return events.CustomerRedactRequested(data["customer"]["id"], tuple(data["orders_to_redact"]), data["shop_domain"])


def load_shop_redact(payload: Any) -> events.ShopRedactRequested:
    return events.ShopRedactRequested(ShopRedactSchema().load(_object(payload))["shop_domain"])
