"""Validation of a shop's tier programme (stored as JSON), with a per-field message for every refusal."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from plugin.programme.rules import fields as rule_fields
from plugin.programme.text import no_control
from plugin.programme.tiers import METRICS, PAID_MODES, PERIODS, SUPPORTED_PERIODS

MAX_TIERS = 20
MAX_POINTS = 1_000_000_000
TIER_ID = r"^[a-z0-9][a-z0-9-]{0,39}$"


FREE_SHIPPING_ON_LEAVE = ("deactivate", "keep")


class Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt key is refused, never ignored


class TierSchema(Strict):
    id = fields.String(
        required=True, validate=validate.Regexp(TIER_ID, error="lower-case letters, digits and '-', at most 40")
    )
    name = fields.String(required=True, validate=[validate.Length(1, 60), no_control])
    threshold = fields.Decimal(
        required=True,
        as_string=True,
        allow_nan=False,
        validate=validate.Range(min=Decimal(0), max=rule_fields.MAX_MONEY, error="must be between {min} and {max}"),
    )
    multiplier = rule_fields.multiplier_field(required=False)
    entry_reward = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, MAX_POINTS))
    birthday_reward = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, MAX_POINTS))
    free_shipping = fields.Boolean(load_default=False)
    perks = fields.List(
        fields.String(validate=[validate.Length(1, 120), no_control]),
        load_default=list,
        validate=validate.Length(max=10),
    )
    tag = fields.String(load_default=None, validate=[validate.Length(1, 80), no_control])


class PaidSchema(Strict):
    tier = fields.String(required=True)
    skus = fields.List(fields.String(validate=[validate.Length(1, 255), no_control]), load_default=list)
    product_tags = fields.List(fields.String(validate=[validate.Length(1, 255), no_control]), load_default=list)
    months = fields.Integer(strict=True, load_default=12, validate=validate.Range(1, 120))
    mode = fields.String(load_default="stack", validate=validate.OneOf(PAID_MODES))

    @validates_schema
    def _some_marker(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("skus") and not data.get("product_tags"):
            raise ValidationError("name at least one SKU or product tag that marks the membership", "skus")


class TierProgrammeSchema(Strict):
    metric = fields.String(required=True, validate=validate.OneOf(METRICS))
    period = fields.String(required=True, validate=validate.OneOf(PERIODS))
    grace_days = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 365))
    tiers = fields.List(fields.Nested(TierSchema), required=True, validate=validate.Length(0, MAX_TIERS))
    paid = fields.Nested(PaidSchema, load_default=None, allow_none=True)
    # What a tier's free-shipping code does when the member leaves the tier: deactivated (the default) or kept
    # until it ends (the end of the tier's kept-until date when it was issued).
    free_shipping_on_leave = fields.String(load_default="deactivate", validate=validate.OneOf(FREE_SHIPPING_ON_LEAVE))


def validate_tiers(data: Any) -> dict[str, Any]:
    """The clean, JSON-ready programme, or ValidationError with per-field messages (tiers.1.threshold, ...)."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["send a JSON object: metric, period, tiers"]})
    clean = TierProgrammeSchema().load(data)
    errors: dict[str, Any] = {}
    metric, period = clean["metric"], clean["period"]
    if period not in SUPPORTED_PERIODS[metric]:
        errors["period"] = [f"the {metric} metric supports {', '.join(SUPPORTED_PERIODS[metric])}, not {period}"]
    tier_errors: dict[int, dict[str, list[str]]] = {}
    seen_names: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    for index, tier in enumerate(clean["tiers"]):
        problems: dict[str, list[str]] = {}
        name = tier["name"].strip().casefold()
        if name in seen_names:
            problems.setdefault("name", []).append(f"duplicates the name of tier {seen_names[name]}")
        seen_names.setdefault(name, index)
        if tier["id"] in seen_ids:
            problems.setdefault("id", []).append(f"duplicates the id of tier {seen_ids[tier['id']]}")
        seen_ids.setdefault(tier["id"], index)
        if metric != "spend" and tier["threshold"] != tier["threshold"].to_integral_value():
            problems.setdefault("threshold", []).append(f"a whole number of {metric}")
        if metric == "spend" and tier["threshold"].as_tuple().exponent < -2:  # type: ignore[operator]
            problems.setdefault("threshold", []).append("money with at most two decimals")
        if index and tier["threshold"] <= clean["tiers"][index - 1]["threshold"]:
            problems.setdefault("threshold", []).append(
                f"thresholds must rise: {tier['threshold']} is not above tier {index - 1}'s "
                f"{clean['tiers'][index - 1]['threshold']}"
            )
        if problems:
            tier_errors[index] = problems
    if tier_errors:
        errors["tiers"] = tier_errors
    paid = clean.get("paid")
    if paid and paid["tier"] not in seen_ids:
        errors["paid"] = {"tier": [f"no tier has the id {paid['tier']!r}"]}
    if errors:
        raise ValidationError(errors)
    return _json_ready(clean)


def _json_ready(clean: dict[str, Any]) -> dict[str, Any]:
    tiers = []
    for tier in clean["tiers"]:
        threshold = tier["threshold"]
        tiers.append(
            {
                **tier,
                "threshold": str(threshold if clean["metric"] == "spend" else int(threshold)),
                "multiplier": str(tier.get("multiplier") or Decimal(1)),
                **({"tag": tier["tag"]} if tier.get("tag") else {"tag": None}),
            }
        )
    paid = clean.get("paid")
    return {**clean, "tiers": tiers, "paid": paid}
