"""The rewards catalogue: what points can be spent on, validated from a shop's settings JSON."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

log = logging.getLogger(__name__)

KINDS = ("fixed_amount", "percentage", "free_shipping", "free_product", "store_credit", "cash_back")
# Kinds that become money in the customer's store-credit account instead of a discount code (docs/store-credit.md).
STORE_CREDIT_KINDS = frozenset({"store_credit", "cash_back"})
CODE_ONLY_FIELDS = ("min_subtotal",)  # a discount code's conditions: store credit has no checkout conditions
DEFAULT_CATALOGUE = [{"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00"}]


@dataclass(frozen=True)
class Reward:
    id: str
    kind: str
    points: int
    title: str
    amount: Decimal | None = None  # fixed_amount: money off; store_credit: credit; cash_back: credit per step
    percent: Decimal | None = None  # percentage: 0 < percent <= 100
    min_subtotal: Decimal | None = None
    lifetime_days: int = 30
    customer_only: bool = True
    single_use: bool = True
    # Limits (None: unlimited). A customer may redeem it per_customer_limit times per per_customer_period;
    # total_available redemptions in all; only from available_from until available_until (aware datetimes).
    # What an amount or a percentage comes off (nothing given: the whole order). Shopify takes either
    # collections or products and variants, never both, as global ids (gid://shopify/Collection/1).
    variant_id: str | None = None  # free_product: the one variant given at no cost (gid://shopify/ProductVariant/1)
    collection_ids: tuple[str, ...] = ()
    product_ids: tuple[str, ...] = ()
    variant_ids: tuple[str, ...] = ()
    per_customer_limit: int | None = None
    per_customer_period: str = "lifetime"
    total_available: int | None = None
    available_from: datetime | None = None
    available_until: datetime | None = None
    # cash_back: the shopper chooses how many points, a multiple of `points` (one step, worth `amount`), from
    # min_points (default: one step) to max_points.
    min_points: int | None = None
    max_points: int | None = None

    @property
    def is_store_credit(self) -> bool:
        """Whether it becomes money in the customer's store-credit account rather than a discount code."""
        return self.kind in STORE_CREDIT_KINDS

    def points_range(self) -> tuple[int, int, int]:
        """(fewest, most, step) points a shopper may spend on it; a fixed reward has one choice."""
        if self.kind != "cash_back":
            return self.points, self.points, self.points
        return self.min_points or self.points, self.max_points or self.points, self.points

    def credit_for(self, points: int) -> Decimal:
        """The store credit `points` buy: exact, since points are a whole number of steps (checked by the caller)."""
        if self.kind == "cash_back":
            return self.amount * (points // self.points)
        return self.amount

    def refusal_for_points(self, points: int | None) -> str | None:
        """Why a shopper cannot spend `points` on it (None: they can); None points means the reward's own price."""
        if points is None or self.kind != "cash_back":
            return None if points in (None, self.points) else f"this reward costs exactly {self.points} points"
        fewest, most, step = self.points_range()
        if points < fewest or points > most:
            return f"choose from {fewest} to {most} points"
        if points % step:
            return f"choose a multiple of {step} points"
        return None

    @property
    def item_ids(self) -> tuple[str, ...]:
        """Every collection, product and variant id it applies to (empty: the whole order)."""
        return (
            ((self.variant_id,) if self.variant_id else ()) + self.collection_ids + self.product_ids + self.variant_ids
        )

    @property
    def limited(self) -> bool:
        """Whether redeeming it needs counting or a clock (an unlimited reward costs the widget no query)."""
        return any(
            value is not None
            for value in (self.per_customer_limit, self.total_available, self.available_from, self.available_until)
        )

    def to_json(self) -> dict[str, Any]:
        # Items and limits appear only when set: a catalogue saved without them reads as it always did.
        optional = {
            "variant_id": self.variant_id,
            "collection_ids": list(self.collection_ids),
            "product_ids": list(self.product_ids),
            "variant_ids": list(self.variant_ids),
            "per_customer_limit": self.per_customer_limit,
            "per_customer_period": self.per_customer_period if self.per_customer_limit is not None else None,
            "total_available": self.total_available,
            "available_from": self.available_from.isoformat() if self.available_from else None,
            "available_until": self.available_until.isoformat() if self.available_until else None,
            "min_points": self.min_points,
            "max_points": self.max_points,
        }
        return {**self._base_json(), **{key: value for key, value in optional.items() if value}}

    def _base_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "points": self.points,
            "title": self.title,
            "amount": str(self.amount) if self.amount is not None else None,
            "percent": str(self.percent) if self.percent is not None else None,
            "min_subtotal": str(self.min_subtotal) if self.min_subtotal is not None else None,
            "lifetime_days": self.lifetime_days,
            "customer_only": self.customer_only,
            "single_use": self.single_use,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Reward:
        def money(key: str) -> Decimal | None:
            return Decimal(data[key]) if data.get(key) is not None else None

        def moment(key: str) -> datetime | None:
            value = data.get(key)
            return value if value is None or isinstance(value, datetime) else datetime.fromisoformat(value)

        def count(key: str) -> int | None:
            return int(data[key]) if data.get(key) is not None else None

        return cls(
            id=data["id"],
            kind=data["kind"],
            points=int(data["points"]),
            title=data["title"],
            amount=money("amount"),
            percent=money("percent"),
            min_subtotal=money("min_subtotal"),
            lifetime_days=int(data["lifetime_days"]),
            customer_only=bool(data["customer_only"]),
            single_use=bool(data["single_use"]),
            # Redemptions stored before items and limits existed hold none of these keys.
            variant_id=data.get("variant_id"),
            collection_ids=tuple(data.get("collection_ids") or ()),
            product_ids=tuple(data.get("product_ids") or ()),
            variant_ids=tuple(data.get("variant_ids") or ()),
            per_customer_limit=count("per_customer_limit"),
            per_customer_period=data.get("per_customer_period") or "lifetime",
            total_available=count("total_available"),
            available_from=moment("available_from"),
            available_until=moment("available_until"),
            min_points=count("min_points"),
            max_points=count("max_points"),
        )


# Bounds on what staff may type. Every stored number must stay readable and fit the database with room to spare.
MAX_MONEY = Decimal("1000000000")  # major units: room for any currency (VND, IDR), far inside BIGINT minor units
MAX_MONEY_PLACES = 3  # the most minor-unit decimals any currency Shopify sells in has (BHD, JOD, KWD, OMR, TND)
MAX_REWARD_POINTS = 10_000_000  # a BIGINT holds 9.2e18; a balance can never near it through rewards
MAX_TITLE_LENGTH = 120
MAX_REWARDS = 50  # a catalogue longer than this is no longer a menu a shopper can read
MAX_LIMIT = 10_000_000  # a per-customer or total limit past this is no limit at all
MAX_ITEMS = 100  # ids per list: Shopify's own discount editor lists about this many before it pages
ITEM_PATTERNS = {
    "collection_ids": r"^gid://shopify/Collection/[1-9][0-9]{0,18}$",
    "product_ids": r"^gid://shopify/Product/[1-9][0-9]{0,18}$",
    "variant_ids": r"^gid://shopify/ProductVariant/[1-9][0-9]{0,18}$",
}
PERIODS = ("day", "week", "month", "year", "lifetime")
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})


def to_milli(amount: Decimal) -> int:
    """Money as integer thousandths of the major unit: exact for every currency (none has more than three places)."""
    return int(amount * 1000)


def from_milli(milli: int | None) -> Decimal | None:
    """Thousandths back to money, with two places unless the third is needed (as Shopify writes amounts)."""
    if milli is None:
        return None
    return (Decimal(milli) / 1000).quantize(Decimal("0.01") if milli % 10 == 0 else Decimal("0.001"))


def money_places(currency: str | None) -> int:
    """How many decimals an amount in this currency may have (2 unless the currency has three)."""
    return 3 if (currency or "").upper() in THREE_DECIMAL_CURRENCIES else 2


class _BoundedDecimal(fields.Decimal):
    """A decimal checked for magnitude and places before any arithmetic, so 1e30 or 1e-999999 is a clean refusal."""

    places_allowed = 2
    minimum = Decimal("0")
    maximum = MAX_MONEY
    json_schema: ClassVar[dict[str, Any]] = {}

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {**self.json_schema, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str) and len(value) > 40:
            raise ValidationError("too long for an amount")
        number = super()._deserialize(value, attr, data, **kwargs)
        if number is None:
            return None
        # Compare before quantize: quantizing 1e30 to cents overflows the decimal context and raised a 500.
        if number < self.minimum or number > self.maximum:
            raise ValidationError(f"must be between {self.minimum} and {self.maximum}")
        cents = number.quantize(Decimal("0.01"))
        if number == cents:
            return cents
        if self.places_allowed > 2 and number == number.quantize(Decimal("0.001")):
            return number.quantize(Decimal("0.001"))
        raise ValidationError(f"use at most {'two' if self.places_allowed == 2 else 'three'} decimals")


class Money(_BoundedDecimal):
    """A money amount in major units, 0 to MAX_MONEY, with at most three decimals ("7.5555" is refused, never
    rounded). The shop's currency narrows it to two decimals in validate_settings; most currencies have two."""

    places_allowed = MAX_MONEY_PLACES

    def __init__(self, *, minimum: Decimal = Decimal("0"), maximum: Decimal = MAX_MONEY, **kwargs: Any) -> None:
        self.minimum, self.maximum = minimum, maximum
        # The document says exactly what is accepted, so a request valid by it is never refused (JSON Schema has
        # no bounds on strings). Two decimals: a shop whose currency has three may send three, as the text says.
        whole = len(str(int(maximum))) - 1  # a power of ten: anything with fewer whole digits is below it
        above_zero = "0\\.(0[1-9]|[1-9][0-9]?)|" if minimum > 0 else "0(\\.[0-9]{1,2})?|"
        pattern = f"^({above_zero}[1-9][0-9]{{0,{whole - 1}}}(\\.[0-9]{{1,2}})?)$"
        description = (
            f"money in major units, {minimum} to {maximum}, as a string; at most two decimals "
            f"(three in {', '.join(sorted(THREE_DECIMAL_CURRENCIES))})"
        )
        kwargs["metadata"] = {"type": "string", "pattern": pattern, "example": "5.00", "description": description}
        super().__init__(**kwargs)


class Percent(_BoundedDecimal):
    """A percentage from 1 to 100 with at most two decimals."""

    minimum = Decimal("1")
    maximum = Decimal("100")
    json_schema: ClassVar[dict[str, Any]] = {
        "type": "string",
        "pattern": r"^(100(\.00?)?|[1-9][0-9]?(\.[0-9]{1,2})?)$",
        "example": "10",
        "description": "a percentage from 1 to 100, at most two decimals, as a string",
    }

    def _deserialize(self, value, attr, data, **kwargs):
        number = super()._deserialize(value, attr, data, **kwargs)
        if number is None:
            return None
        # Kept as short as it was typed ("10", "12.5"): it becomes the reward's default title.
        return next(q for q in (number.quantize(Decimal(e)) for e in ("1", "0.1", "0.01")) if q == number)


def _plain_title(title: str) -> None:
    # PostgreSQL's jsonb refuses NUL, and control characters have no place in a storefront title.
    if any(ord(character) < 32 or ord(character) == 127 for character in title):
        raise ValidationError("no control characters")
    if not title.strip():
        raise ValidationError("must not be blank")


class RewardSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,39}$"))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    points = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=MAX_REWARD_POINTS))
    title = fields.String(load_default=None, validate=[validate.Length(min=1, max=MAX_TITLE_LENGTH), _plain_title])
    amount = Money(load_default=None, minimum=Decimal("0.01"))
    percent = Percent(load_default=None)
    min_subtotal = Money(load_default=None)
    lifetime_days = fields.Integer(strict=True, load_default=30, validate=validate.Range(min=1, max=3650))
    customer_only = fields.Boolean(load_default=True)
    single_use = fields.Boolean(load_default=True)
    variant_id = fields.String(
        load_default=None, validate=validate.Regexp(ITEM_PATTERNS["variant_ids"], error="not a product variant id")
    )
    collection_ids = fields.List(
        fields.String(validate=validate.Regexp(ITEM_PATTERNS["collection_ids"], error="not a collection id")),
        load_default=list,
        validate=validate.Length(max=MAX_ITEMS),
    )
    product_ids = fields.List(
        fields.String(validate=validate.Regexp(ITEM_PATTERNS["product_ids"], error="not a product id")),
        load_default=list,
        validate=validate.Length(max=MAX_ITEMS),
    )
    variant_ids = fields.List(
        fields.String(validate=validate.Regexp(ITEM_PATTERNS["variant_ids"], error="not a product variant id")),
        load_default=list,
        validate=validate.Length(max=MAX_ITEMS),
    )
    per_customer_limit = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_LIMIT))
    per_customer_period = fields.String(load_default="lifetime", validate=validate.OneOf(PERIODS))
    total_available = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_LIMIT))
    available_from = fields.AwareDateTime(load_default=None)
    available_until = fields.AwareDateTime(load_default=None)
    min_points = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_REWARD_POINTS))
    max_points = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_REWARD_POINTS))

    @validates_schema
    def store_credit_is_consistent(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("kind")
        if kind in STORE_CREDIT_KINDS:
            if data.get("amount") is None:
                what = "a credit amount" if kind == "store_credit" else "an amount of credit per step of points"
                raise ValidationError(f"a {kind} reward needs {what} above 0", "amount")
            if data.get("min_subtotal") is not None:
                raise ValidationError("store credit has no minimum subtotal: it is spent like money", "min_subtotal")
        for name in ("min_points", "max_points"):
            if data.get(name) is not None and kind != "cash_back":
                raise ValidationError(f"only a cash_back reward has {name}", name)
        if kind != "cash_back":
            return
        step, fewest, most = data.get("points"), data.get("min_points"), data.get("max_points")
        if most is None:
            raise ValidationError("a cash_back reward needs max_points, the most spent at once", "max_points")
        if step is None:
            return  # points itself is refused
        fewest = step if fewest is None else fewest
        for name, value in (("min_points", fewest), ("max_points", most)):
            if value % step:
                raise ValidationError(f"must be a multiple of points ({step}), one step", name)
        if most < fewest:
            raise ValidationError(f"must be at least min_points ({fewest})", "max_points")

    @validates_schema
    def items_fit_the_kind(self, data: dict[str, Any], **_: Any) -> None:
        given = [name for name in ITEM_PATTERNS if data.get(name)]
        if given and data.get("kind") not in ("fixed_amount", "percentage"):
            raise ValidationError("only an amount or a percentage off can apply to chosen items", given[0])
        if data.get("collection_ids") and (data.get("product_ids") or data.get("variant_ids")):
            # Shopify's DiscountItemsInput takes collections or products, not both.
            raise ValidationError("choose collections or products, not both", "collection_ids")
        for name in given:
            if len(set(data[name])) != len(data[name]):
                raise ValidationError("an id is listed twice", name)

    @validates_schema
    def window_is_not_empty(self, data: dict[str, Any], **_: Any) -> None:
        start, end = data.get("available_from"), data.get("available_until")
        if start is not None and end is not None and end <= start:
            raise ValidationError("must be after available_from", "available_until")

    @validates_schema
    def value_matches_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("kind")
        if kind == "fixed_amount" and data.get("amount") is None:
            raise ValidationError("a fixed_amount reward needs an amount", "amount")
        if kind == "percentage" and data.get("percent") is None:
            raise ValidationError("a percentage reward needs a percent", "percent")
        if kind == "free_product" and data.get("variant_id") is None:
            raise ValidationError("a free_product reward needs a variant_id", "variant_id")
        if kind != "free_product" and data.get("variant_id") is not None:
            raise ValidationError("only a free_product reward has a variant_id", "variant_id")
        for field, wanted in (("amount", "fixed_amount"), ("percent", "percentage")):
            if field == "amount" and kind in STORE_CREDIT_KINDS:
                continue
            if data.get(field) is not None and kind != wanted:
                raise ValidationError(f"only a {wanted} reward has {'an' if field == 'amount' else 'a'} {field}", field)


_CATALOGUE = RewardSchema(many=True)  # made once: schemas hold no per-load state


def validate_catalogue(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a catalogue; returns it as JSON-safe dicts with defaults filled, or raises ValidationError."""
    # Items may come already loaded (Decimals, None for absent fields): drop the Nones and load again.
    loaded = _CATALOGUE.load([{k: v for k, v in item.items() if v is not None} for item in items])
    if len(loaded) > MAX_REWARDS:
        raise ValidationError([f"at most {MAX_REWARDS} rewards"])
    ids = [item["id"] for item in loaded]
    if len(ids) != len(set(ids)):
        raise ValidationError(["reward ids must be unique"])
    return [Reward.from_json({**item, "title": item["title"] or _default_title(item)}).to_json() for item in loaded]


def catalogue(settings_json: dict[str, Any] | None) -> list[Reward]:
    """The shop's rewards (the default catalogue for a shop that never set one)."""
    items = settings_json.get("rewards") if isinstance(settings_json, dict) else None
    return list(_catalogue(json.dumps(DEFAULT_CATALOGUE if items is None else items, sort_keys=True, default=str)))


@lru_cache(maxsize=256)
def _catalogue(items_json: str) -> tuple[Reward, ...]:
    # A pure function of the stored JSON, remembered: every widget read needs it, and validating is slow.
    return tuple(Reward.from_json(item) for item in readable_catalogue(json.loads(items_json)))


def readable_catalogue(items: Any) -> list[dict[str, Any]]:
    """A stored catalogue made safe to read: never raises; an invalid reward is left out and logged.

    Rows are validated when saved, but one saved before a rule was tightened must not stop every widget read,
    order and redemption of the shop: only the bad reward goes, and the log says which and why."""
    if not isinstance(items, list):
        log.warning("stored rewards are not a list; using the default catalogue")
        return validate_catalogue(DEFAULT_CATALOGUE)
    readable: list[dict[str, Any]] = []
    for position, item in enumerate(items[:MAX_REWARDS]):
        try:
            if not isinstance(item, dict):
                raise ValidationError("not an object")
            (reward,) = validate_catalogue([item])
        except ValidationError as error:
            log.warning("stored reward %s left out of the catalogue: %s", position, error.messages)
            continue
        if any(kept["id"] == reward["id"] for kept in readable):
            log.warning("stored reward %s left out of the catalogue: its id %r is used twice", position, reward["id"])
            continue
        readable.append(reward)
    if len(items) > MAX_REWARDS:
        log.warning("stored catalogue has %s rewards; only the first %s are offered", len(items), MAX_REWARDS)
    return readable


def _default_title(item: dict[str, Any]) -> str:
    on = " selected items" if any(item.get(name) for name in ITEM_PATTERNS) else ""
    if item["kind"] == "fixed_amount":
        return f"{item['amount']} off{on}"
    if item["kind"] == "percentage":
        return f"{item['percent']:f}% off{on}"
    if item["kind"] == "free_product":
        return "Free product"
    if item["kind"] == "store_credit":
        return f"{item['amount']} store credit"
    if item["kind"] == "cash_back":
        return f"{item['amount']} store credit per {item['points']} points"
    return "Free shipping"


# Why a reward cannot be redeemed now; the widget shows the reason and redeeming answers 409.
NOT_YET, ENDED, SOLD_OUT, LIMIT_REACHED = "not_yet_available", "ended", "sold_out", "limit_reached"


@dataclass(frozen=True)
class Unavailable:
    reason: str  # one of NOT_YET, ENDED, SOLD_OUT, LIMIT_REACHED
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.reason, "message": self.message}


def period_start(period: str, now: datetime) -> datetime | None:
    """Where the per-customer period containing `now` began (calendar periods in UTC); None for lifetime."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())  # weeks start on Monday (ISO 8601)
    if period == "month":
        return day.replace(day=1)
    if period == "year":
        return day.replace(month=1, day=1)
    return None


def unavailable(reward: Reward, now: datetime, redeemed_in_total: int, redeemed_by_customer: int) -> Unavailable | None:
    """Why `reward` cannot be redeemed at `now`, or None when it can.

    redeemed_in_total counts the shop's live redemptions of it (pending or issued: failed and cancelled ones gave
    their points back, so they gave the reward back too); redeemed_by_customer counts this customer's live ones
    since period_start(reward.per_customer_period, now)."""
    if reward.available_from is not None and now < reward.available_from:
        return Unavailable(NOT_YET, f"available from {reward.available_from.isoformat()}")
    if reward.available_until is not None and now >= reward.available_until:
        return Unavailable(ENDED, f"ended on {reward.available_until.isoformat()}")
    if reward.total_available is not None and redeemed_in_total >= reward.total_available:
        return Unavailable(SOLD_OUT, f"all {reward.total_available} have been redeemed")
    if reward.per_customer_limit is not None and redeemed_by_customer >= reward.per_customer_limit:
        times = "once" if reward.per_customer_limit == 1 else f"{reward.per_customer_limit} times"
        per = "" if reward.per_customer_period == "lifetime" else f" per {reward.per_customer_period}"
        return Unavailable(LIMIT_REACHED, f"can be redeemed {times}{per}; you have reached that")
    return None
