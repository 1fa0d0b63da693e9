"""Platform-neutral events that platform adapters produce and the loyalty core consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class Customer:
    customer_id: int
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    # Shopify customer tags, casefolded; None when the payload had none. Not part of who the customer is.
    tags: frozenset[str] | None = field(default=None, compare=False)
    # Customer metafields the payload carried, "namespace.key" -> value (a subscription's metafieldNamespaces).
    metafields: tuple[tuple[str, str], ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class OrderLine:
    """One line item, money in the shop's currency."""

    line_id: int
    quantity: int
    gross: Decimal  # unit price x quantity
    discount: Decimal = Decimal(0)  # sum of the discount allocations on this line
    tax: Decimal = Decimal(0)  # sum of this line's tax lines
    gift_card: bool = False
    product_id: int | None = None  # None for custom lines
    variant_id: int | None = None
    sku: str | None = field(default=None, compare=False)  # what a paid membership may be marked by


@dataclass(frozen=True)
class RefundFacts:
    refund_id: int
    order_id: int
    line_quantities: dict[int, int] = field(default_factory=dict)  # line_id -> quantity refunded
    shipping: Decimal = Decimal(0)  # shipping money refunded, shop currency
    created_at: datetime | None = None


@dataclass(frozen=True)
class Address:
    """A shipping address, as far as referral guards compare addresses."""

    address1: str | None = None
    zip: str | None = None
    country_code: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class OrderSnapshot:
    """An order as one delivery described it."""

    order_id: int
    name: str | None
    customer: Customer | None
    email: str | None
    currency: str  # the shop's currency: every amount below is shop money
    test: bool
    taxes_included: bool
    lines: tuple[OrderLine, ...]
    shipping: Decimal = Decimal(0)  # shipping after shipping discounts
    shipping_tax: Decimal = Decimal(0)
    tip: Decimal = Decimal(0)
    processed_at: datetime | None = None
    cancelled_at: datetime | None = None
    refunds: tuple[RefundFacts, ...] = ()
    discount_codes: tuple[str, ...] = ()  # the codes applied at checkout, upper-cased
    attributes: tuple[tuple[str, str], ...] = ()  # cart attributes (Shopify's note_attributes), name and value
    phone: str | None = None
    shipping_address: Address | None = None


@dataclass(frozen=True)
class OrderCreated:
    order: OrderSnapshot


@dataclass(frozen=True)
class OrderPaid:
    order: OrderSnapshot
    paid_at: datetime


@dataclass(frozen=True)
class OrderCancelled:
    order: OrderSnapshot


@dataclass(frozen=True)
class OrderRefunded:
    refund: RefundFacts


@dataclass(frozen=True)
class CustomerCreated:
    customer: Customer


@dataclass(frozen=True)
class CustomerUpdated(CustomerCreated):
    """The shop changed a customer (their tags, say): refresh the member."""


@dataclass(frozen=True)
class ProductFacts:
    """What earning rules may match a product by; collections None when the payload does not carry them."""

    product_id: int
    product_type: str = ""
    vendor: str = ""
    tags: frozenset[str] = frozenset()
    variant_ids: tuple[int, ...] = ()
    collections: frozenset[str] | None = None
    skus: frozenset[str] | None = None  # its variants' SKUs (what a paid membership may be marked by); None: unknown


@dataclass(frozen=True)
class ProductUpdated:
    product: ProductFacts


@dataclass(frozen=True)
class ProductDeleted:
    product_id: int


Event = (
    OrderCreated
    | OrderPaid
    | OrderCancelled
    | OrderRefunded
    | CustomerCreated
    | CustomerUpdated
    | ProductUpdated
    | ProductDeleted
)


@dataclass(frozen=True)
class AppUninstalled:
    """The merchant removed the app; the shop's token is already invalid."""

    shop_domain: str | None = None  # as the signed body names it (myshopify_domain)


@dataclass(frozen=True)
class CustomerDataRequested:
    customer_id: int
    request_id: int | None = None
    shop_domain: str | None = None  # as the signed body names it


@dataclass(frozen=True)
class CustomerRedactRequested:
    customer_id: int
    orders_to_redact: tuple[int, ...] = ()
    shop_domain: str | None = None


@dataclass(frozen=True)
class ShopRedactRequested:
    """Sent 48 hours after uninstall: erase everything we hold for the shop."""

    shop_domain: str | None = None


Lifecycle = AppUninstalled | CustomerDataRequested | CustomerRedactRequested | ShopRedactRequested
