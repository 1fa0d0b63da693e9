"""Validation of a shop's programme settings (stored as JSON) into ProgramSettings."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from plugin.programme.earning import ProgramSettings
from plugin.programme.rewards import DEFAULT_CATALOGUE, Money, RewardSchema, validate_catalogue

DEFAULTS = ProgramSettings()


class EarnRateSchema(Schema):
    class Meta:
        unknown = RAISE

    points = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=1_000_000))
    per_amount = Money(required=True, validate=validate.Range(min=Decimal("0.01"), max=Decimal("1000000")))


class ProgramSettingsSchema(Schema):
    """The JSON a merchant (or the CLI) edits. Unknown keys are refused, so typos are not silently ignored."""

    class Meta:
        unknown = RAISE

    earn = fields.Nested(EarnRateSchema, load_default=None, allow_none=False)  # absent: default; null: refused
    include_shipping = fields.Boolean(load_default=DEFAULTS.include_shipping)
    include_taxes = fields.Boolean(load_default=DEFAULTS.include_taxes)
    include_tips = fields.Boolean(load_default=DEFAULTS.include_tips)
    include_gift_cards = fields.Boolean(load_default=DEFAULTS.include_gift_cards)
    earn_on_test_orders = fields.Boolean(load_default=DEFAULTS.earn_on_test_orders)
    guest_orders_earn_by_email = fields.Boolean(load_default=DEFAULTS.guest_orders_earn_by_email)
    pending_days = fields.Integer(strict=True, load_default=DEFAULTS.pending_days, validate=validate.Range(0, 365))
    spent_points_policy = fields.String(
        load_default=DEFAULTS.spent_points_policy,
        validate=validate.OneOf(("allow_negative", "stop_at_zero", "claw_back")),
    )
    rewards = fields.List(fields.Nested(RewardSchema), load_default=None, allow_none=False)


_SCHEMA = ProgramSettingsSchema()  # made once: schemas hold no per-load state


def validate_settings(data: dict[str, Any]) -> dict[str, Any]:
    """Check settings JSON; returns it normalised to JSON-safe values, or raises ValidationError."""
    loaded = _SCHEMA.load(data)
    earn = loaded.pop("earn") or {"points": DEFAULTS.earn_points, "per_amount": DEFAULTS.earn_per_amount}
    rewards = loaded.pop("rewards")
    try:
        loaded["rewards"] = validate_catalogue(DEFAULT_CATALOGUE if rewards is None else rewards)
    except ValidationError as error:
        raise ValidationError({"rewards": error.messages}) from None
    return {"earn": {"points": earn["points"], "per_amount": str(earn["per_amount"])}, **loaded}


def program_settings(data: dict[str, Any] | None, version: int) -> ProgramSettings:
    """The ProgramSettings for a shop's stored JSON (already validated when it was saved)."""
    return _program_settings(json.dumps(data or {}, sort_keys=True, default=str), version)


@lru_cache(maxsize=256)
def _program_settings(data_json: str, version: int) -> ProgramSettings:
    # A pure function of the stored JSON, remembered (ProgramSettings is frozen): every order and widget read
    # needs it, and validating is slow.
    clean = validate_settings(json.loads(data_json))  # validated on write too; an invalid stored row fails loudly here
    earn = clean.pop("earn")
    clean.pop("rewards")  # the catalogue is read by plugin.rewards, not by the earning rules
    return ProgramSettings(
        earn_points=earn["points"], earn_per_amount=Decimal(earn["per_amount"]), version=version, **clean
    )
