"""Shared marshmallow pieces for rule schemas: money, multipliers and product matches, with per-field messages."""

from __future__ import annotations

from decimal import Decimal

from marshmallow import RAISE, Schema, fields, validate

MAX_MONEY = Decimal("1000000000")


class Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt setting is refused, not silently ignored


def _optional(required: bool) -> dict:
    return {"required": True} if required else {"load_default": None}


def money_field(*, required: bool = False, minimum: str = "0") -> fields.Decimal:
    return fields.Decimal(
        **_optional(required),
        allow_nan=False,
        as_string=True,
        validate=validate.Range(min=Decimal(minimum), max=MAX_MONEY, error="must be between {min} and {max}"),
    )


def multiplier_field(*, required: bool = True) -> fields.Decimal:
    return fields.Decimal(
        **_optional(required),
        allow_nan=False,
        as_string=True,
        validate=validate.Range(
            min=Decimal(0), min_inclusive=False, max=Decimal(100), error="must be above 0, at most 100"
        ),
    )


def cap_field(*, required: bool = False) -> fields.Integer:
    return fields.Integer(
        **_optional(required),
        strict=True,
        validate=validate.Range(min=0, max=10**9, error="must be between 0 and {max}"),
    )


class MatchSchema(Strict):
    product_ids = fields.List(fields.Integer(strict=True), load_default=list, validate=validate.Length(max=1000))
    variant_ids = fields.List(fields.Integer(strict=True), load_default=list, validate=validate.Length(max=1000))
    product_types = fields.List(fields.String(validate=validate.Length(1, 255)), load_default=list)
    vendors = fields.List(fields.String(validate=validate.Length(1, 255)), load_default=list)
    tags = fields.List(fields.String(validate=validate.Length(1, 255)), load_default=list)
    collections = fields.List(fields.String(validate=validate.Length(1, 255)), load_default=list)


class RuleSchema(Strict):
    """Fields every rule has."""

    type = fields.String(required=True)
    id = fields.String(load_default=None, validate=validate.Length(1, 40))
    name = fields.String(load_default=None, validate=validate.Length(1, 120))
