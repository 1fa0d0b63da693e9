"""Validation of a shop's programme settings (stored as JSON) into ProgramSettings."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from functools import lru_cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from plugin.programme.earning import ProgramSettings
from plugin.programme.rewards import (
    DEFAULT_CATALOGUE,
    MAX_REWARDS,
    Money,
    RewardSchema,
    money_places,
    readable_catalogue,
    validate_catalogue,
)

log = logging.getLogger(__name__)

DEFAULTS = ProgramSettings()
MAX_EARN_POINTS = 1_000_000  # per earn step: a 1,000,000-unit order then earns 1e12, far inside BIGINT


class EarnRateSchema(Schema):
    class Meta:
        unknown = RAISE

    points = fields.Integer(strict=True, required=True, validate=validate.Range(min=0, max=MAX_EARN_POINTS))
    per_amount = Money(required=True, minimum=Decimal("0.01"), maximum=Decimal("1000000"))


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
    rewards = fields.List(
        fields.Nested(RewardSchema), load_default=None, allow_none=False, validate=validate.Length(max=MAX_REWARDS)
    )


_SCHEMA = ProgramSettingsSchema()  # made once: schemas hold no per-load state


def validate_settings(data: dict[str, Any], currency: str | None = None) -> dict[str, Any]:
    """Check settings JSON; returns it normalised to JSON-safe values, or raises ValidationError.

    `currency` is the shop's: amounts get at most as many decimals as it has (two when unknown)."""
    loaded = _SCHEMA.load(data)
    earn = loaded.pop("earn") or {"points": DEFAULTS.earn_points, "per_amount": DEFAULTS.earn_per_amount}
    rewards = loaded.pop("rewards")
    try:
        loaded["rewards"] = validate_catalogue(DEFAULT_CATALOGUE if rewards is None else rewards)
    except ValidationError as error:
        raise ValidationError({"rewards": error.messages}) from None
    clean = {"earn": {"points": earn["points"], "per_amount": str(earn["per_amount"])}, **loaded}
    _check_places(clean, money_places(currency))
    return clean


def _check_places(clean: dict[str, Any], places: int) -> None:
    # The fields accept the most decimals any currency has; the shop's own currency decides here.
    exponent = Decimal(1).scaleb(-places)
    errors: dict[str, Any] = {}
    message = [f"use at most {'two' if places == 2 else 'three'} decimals"]
    if Decimal(clean["earn"]["per_amount"]).quantize(exponent) != Decimal(clean["earn"]["per_amount"]):
        errors["earn"] = {"per_amount": message}
    for position, reward in enumerate(clean["rewards"]):
        for key in ("amount", "min_subtotal"):
            value = reward.get(key)
            if value is not None and Decimal(value).quantize(exponent) != Decimal(value):
                errors.setdefault("rewards", {}).setdefault(position, {})[key] = message
    if errors:
        raise ValidationError(errors)


def stored_settings(data: Any) -> dict[str, Any]:
    """A shop's stored settings made safe to read: never raises, whatever the row holds.

    Each part that no longer validates (a row saved before a rule was tightened, or edited by hand) falls back
    to its default and is logged, so one bad value cannot stop the settings page, the widget and every order."""
    if not isinstance(data, dict):
        log.warning("stored settings are not an object; using the defaults")
        data = {}
    parts = {key: value for key, value in data.items() if key != "rewards"}
    while True:
        try:
            clean = validate_settings(parts, currency="KWD")  # the most decimals any currency allows
            break
        except ValidationError as error:
            bad = set(error.messages) if isinstance(error.messages, dict) else set(parts)
            bad &= set(parts)
            if not bad:  # cannot happen: every error names a part; the guard keeps the loop finite regardless
                parts = {}
                continue
            log.warning("stored settings: %s fell back to the default: %s", sorted(bad), error.messages)
            parts = {key: value for key, value in parts.items() if key not in bad}
    rewards = data.get("rewards")
    clean["rewards"] = readable_catalogue(DEFAULT_CATALOGUE if rewards is None else rewards)
    return clean


def program_settings(data: dict[str, Any] | None, version: int) -> ProgramSettings:
    """The ProgramSettings for a shop's stored JSON; a part that no longer validates reads as its default."""
    # The catalogue is read by plugin.programme.rewards, not by the earning rules: left out of the key and the check.
    rules = {key: value for key, value in data.items() if key != "rewards"} if isinstance(data, dict) else {}
    return _program_settings(json.dumps(rules, sort_keys=True, default=str), version)


@lru_cache(maxsize=256)
def _program_settings(data_json: str, version: int) -> ProgramSettings:
    # A pure function of the stored JSON, remembered (ProgramSettings is frozen): every order and widget read
    # needs it, and validating is slow. Logged once per process and stored row, not once per order.
    clean = stored_settings(json.loads(data_json))
    earn = clean.pop("earn")
    clean.pop("rewards")
    return ProgramSettings(
        earn_points=earn["points"], earn_per_amount=Decimal(earn["per_amount"]), version=version, **clean
    )
