"""marshmallow schemas for Shopify order, refund and customer payloads, loaded into neutral events."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load

from plugin.programme import events
from plugin.programme.events import Customer, OrderLine, OrderSnapshot, RefundFacts


class _Lenient(Schema):
    class Meta:
        unknown = EXCLUDE  # Shopify adds fields over time; we read only what we need


class MoneySchema(_Lenient):
    amount = fields.Decimal(required=True)
    currency_code = fields.String(required=True)


class MoneyBagSchema(_Lenient):
    shop_money = fields.Nested(MoneySchema, required=True)
    presentment_money = fields.Nested(MoneySchema, load_default=None)


def shop_amount(bag: dict[str, Any] | None) -> Decimal:
    """The shop-currency amount of a `*_set` money bag (zero when absent)."""
    return bag["shop_money"]["amount"] if bag else Decimal(0)


def _bag(required: bool = False) -> fields.Nested:
    if required:
        return fields.Nested(MoneyBagSchema, required=True)
    return fields.Nested(MoneyBagSchema, load_default=None, allow_none=True)


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
    amount = fields.Decimal(load_default=None, allow_none=True)


class TaxLineSchema(_Amount):
    bag_field, plain_field = "price_set", "price"
    price_set = _bag()
    price = fields.Decimal(load_default=None, allow_none=True)


def _shop_or_plain(data: dict[str, Any], bag_field: str, plain_field: str) -> Decimal:
    if data.get(bag_field):
        return shop_amount(data[bag_field])
    if data.get(plain_field) is not None:
        return data[plain_field]  # Shopify documents the plain money fields as shop currency too
    raise ValidationError({bag_field: ["missing: neither a shop-money set nor a plain amount was given"]})


class LineItemSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True)
    price_set = _bag()
    price = fields.Decimal(load_default=None, allow_none=True)
    total_discount_set = _bag()
    discount_allocations = fields.List(fields.Nested(AllocationSchema), load_default=list)
    tax_lines = fields.List(fields.Nested(TaxLineSchema), load_default=list)
    gift_card = fields.Boolean(load_default=False)
    product_id = fields.Integer(strict=True, load_default=None, allow_none=True)
    variant_id = fields.Integer(strict=True, load_default=None, allow_none=True)

    @post_load
    def to_line(self, data: dict[str, Any], **_: Any) -> OrderLine:
        allocated = sum(data["discount_allocations"], Decimal(0))
        # Allocations are the precise per-line discounts; total_discount is the older, coarser field.
        discount = allocated if data["discount_allocations"] else shop_amount(data["total_discount_set"])
        return OrderLine(
            line_id=data["id"],
            quantity=data["quantity"],
            gross=_shop_or_plain(data, "price_set", "price") * data["quantity"],
            discount=discount,
            tax=sum(data["tax_lines"], Decimal(0)),
            gift_card=data["gift_card"],
            product_id=data["product_id"],
            variant_id=data["variant_id"],
        )


class ShippingLineSchema(_Lenient):
    discounted_price_set = _bag()
    discounted_price = fields.Decimal(load_default=None, allow_none=True)
    price_set = _bag()
    price = fields.Decimal(load_default=None, allow_none=True)
    is_removed = fields.Boolean(load_default=False)
    tax_lines = fields.List(fields.Nested(TaxLineSchema), load_default=list)


class CustomerSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)
    email = fields.String(load_default=None, allow_none=True)
    first_name = fields.String(load_default=None, allow_none=True)
    last_name = fields.String(load_default=None, allow_none=True)
    tags = fields.String(load_default=None, allow_none=True)  # comma-separated, as Shopify sends them

    @post_load
    def to_customer(self, data: dict[str, Any], **_: Any) -> Customer:
        return Customer(data["id"], data["email"], data["first_name"], data["last_name"], split_tags(data["tags"]))


def split_tags(tags: str | None) -> frozenset[str] | None:
    """Shopify's comma-separated tags as a casefolded set; None when the payload did not say."""
    if tags is None:
        return None
    return frozenset(tag.strip().casefold() for tag in tags.split(",") if tag.strip())


class VariantSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)


class ProductSchema(_Lenient):
    """products/create and products/update: the facts earning rules match lines by (no collections here)."""

    id = fields.Integer(required=True, strict=True)
    product_type = fields.String(load_default="", allow_none=True)
    vendor = fields.String(load_default="", allow_none=True)
    tags = fields.String(load_default="", allow_none=True)
    variants = fields.List(fields.Nested(VariantSchema), load_default=list)

    @post_load
    def to_product(self, data: dict[str, Any], **_: Any) -> events.ProductFacts:
        return events.ProductFacts(
            product_id=data["id"],
            product_type=data["product_type"] or "",
            vendor=data["vendor"] or "",
            tags=split_tags(data["tags"]) or frozenset(),
            variant_ids=tuple(v["id"] for v in data["variants"]),
        )


class DeletedProductSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)


class RefundLineSchema(_Lenient):
    line_item_id = fields.Integer(required=True, strict=True)
    quantity = fields.Integer(required=True, strict=True)


class OrderAdjustmentSchema(_Lenient):
    kind = fields.String(load_default="")
    amount = fields.Decimal(load_default=None, allow_none=True)
    amount_set = _bag()


class RefundShippingLineSchema(_Lenient):
    subtotal_amount_set = _bag(required=True)


class RefundSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)
    order_id = fields.Integer(required=True, strict=True)
    created_at = fields.AwareDateTime(load_default=None, allow_none=True)
    refund_line_items = fields.List(fields.Nested(RefundLineSchema), load_default=list)
    refund_shipping_lines = fields.List(fields.Nested(RefundShippingLineSchema), load_default=list)
    order_adjustments = fields.List(fields.Nested(OrderAdjustmentSchema), load_default=list)

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


class OrderSchema(_Lenient):
    id = fields.Integer(required=True, strict=True)
    name = fields.String(load_default=None, allow_none=True)
    email = fields.String(load_default=None, allow_none=True)
    currency = fields.String(required=True)
    presentment_currency = fields.String(load_default=None, allow_none=True)
    test = fields.Boolean(load_default=False)
    taxes_included = fields.Boolean(load_default=False)
    customer = fields.Nested(CustomerSchema, load_default=None, allow_none=True)
    line_items = fields.List(fields.Nested(LineItemSchema), required=True)
    shipping_lines = fields.List(fields.Nested(ShippingLineSchema), load_default=list)
    total_tip_received = fields.Decimal(load_default=Decimal(0), allow_none=True)
    processed_at = fields.AwareDateTime(load_default=None, allow_none=True)
    cancelled_at = fields.AwareDateTime(load_default=None, allow_none=True)
    refunds = fields.List(fields.Nested(RefundSchema), load_default=list)
    subtotal_price_set = _bag()

    @post_load
    def to_snapshot(self, data: dict[str, Any], **_: Any) -> OrderSnapshot:
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
    id = fields.Integer(required=True, strict=True)


class PrivacyRequestSchema(_Lenient):
    """customers/data_request and customers/redact: the shop's domain, the customer, the request."""

    shop_domain = fields.String(required=True)
    customer = fields.Nested(PrivacyCustomerSchema, required=True)
    data_request = fields.Dict(load_default=None, allow_none=True)
    orders_to_redact = fields.List(fields.Integer(strict=True), load_default=list)


class ShopRedactSchema(_Lenient):
    shop_domain = fields.String(required=True)


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
