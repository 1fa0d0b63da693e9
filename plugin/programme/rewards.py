"""The rewards catalogue: what points can be spent on, validated from a shop's settings JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

KINDS = ("fixed_amount", "percentage", "free_shipping")
DEFAULT_CATALOGUE = [{"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00"}]


@dataclass(frozen=True)
class Reward:
    id: str
    kind: str
    points: int
    title: str
    amount: Decimal | None = None  # fixed_amount: money off, shop currency
    percent: Decimal | None = None  # percentage: 0 < percent <= 100
    min_subtotal: Decimal | None = None
    lifetime_days: int = 30
    customer_only: bool = True
    single_use: bool = True

    def to_json(self) -> dict[str, Any]:
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
        )


class Money(fields.Decimal):
    """A money amount in major units with at most two decimals: "7.555" is refused, never rounded."""

    def _deserialize(self, value, attr, data, **kwargs):
        amount = super()._deserialize(value, attr, data, **kwargs)
        if amount is not None and amount != amount.quantize(Decimal("0.01")):
            raise ValidationError("use at most two decimals")
        return amount.quantize(Decimal("0.01")) if amount is not None else None


class RewardSchema(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,39}$"))
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    points = fields.Integer(strict=True, required=True, validate=validate.Range(min=1, max=10_000_000))
    title = fields.String(load_default=None, validate=validate.Length(min=1, max=120))
    amount = Money(load_default=None, validate=validate.Range(min=Decimal("0.01")))
    percent = fields.Decimal(
        load_default=None, validate=validate.Range(min=Decimal("0"), max=Decimal("100"), min_inclusive=False)
    )
    min_subtotal = Money(load_default=None, validate=validate.Range(min=Decimal("0")))
    lifetime_days = fields.Integer(strict=True, load_default=30, validate=validate.Range(min=1, max=3650))
    customer_only = fields.Boolean(load_default=True)
    single_use = fields.Boolean(load_default=True)

    @validates_schema
    def value_matches_kind(self, data: dict[str, Any], **_: Any) -> None:
        kind = data.get("kind")
        if kind == "fixed_amount" and data.get("amount") is None:
            raise ValidationError("a fixed_amount reward needs an amount", "amount")
        if kind == "percentage" and data.get("percent") is None:
            raise ValidationError("a percentage reward needs a percent", "percent")
        for field, wanted in (("amount", "fixed_amount"), ("percent", "percentage")):
            if data.get(field) is not None and kind != wanted:
                raise ValidationError(f"only a {wanted} reward has {'an' if field == 'amount' else 'a'} {field}", field)


_CATALOGUE = RewardSchema(many=True)  # made once: schemas hold no per-load state


def validate_catalogue(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a catalogue; returns it as JSON-safe dicts with defaults filled, or raises ValidationError."""
    # Items may come already loaded (Decimals, None for absent fields): drop the Nones and load again.
    loaded = _CATALOGUE.load([{k: v for k, v in item.items() if v is not None} for item in items])
    ids = [item["id"] for item in loaded]
    if len(ids) != len(set(ids)):
        raise ValidationError(["reward ids must be unique"])
    return [Reward(**{**item, "title": item["title"] or _default_title(item)}).to_json() for item in loaded]


def catalogue(settings_json: dict[str, Any] | None) -> list[Reward]:
    """The shop's rewards (the default catalogue for a shop that never set one)."""
    items = (settings_json or {}).get("rewards")
    return list(_catalogue(json.dumps(DEFAULT_CATALOGUE if items is None else items, sort_keys=True, default=str)))


@lru_cache(maxsize=256)
def _catalogue(items_json: str) -> tuple[Reward, ...]:
    # A pure function of the stored JSON, remembered: every widget read needs it, and validating is slow.
    return tuple(Reward.from_json(item) for item in validate_catalogue(json.loads(items_json)))


def _default_title(item: dict[str, Any]) -> str:
    if item["kind"] == "fixed_amount":
        return f"{item['amount']} off"
    if item["kind"] == "percentage":
        return f"{item['percent'].normalize():f}% off"
    return "Free shipping"
