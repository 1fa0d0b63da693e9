"""Validation of a shop's milestone programme: thresholds, punch cards, signup, birthday, custom actions, surveys."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from plugin.programme.rewards import Money
from plugin.programme.text import no_control

MAX_POINTS = 1_000_000
MAX_RULES = 20
IDENTIFIER = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,39}$", error="lowercase letters, digits, - and _ (1 to 40)")
ACTION_KINDS = ("server", "follow", "visit", "survey")
PERIODS = ("day", "week", "month", "year", "lifetime")
QUESTION_TYPES = ("nps", "text")
NETWORKS = ("instagram", "tiktok", "facebook", "x", "youtube", "pinterest")


def _points(minimum: int = 1) -> fields.Integer:
    return fields.Integer(strict=True, required=True, validate=validate.Range(minimum, MAX_POINTS))


def _grant_points() -> fields.Integer:
    """A threshold's or a card's points: 0 when it grants a reward alone."""
    return fields.Integer(strict=True, load_default=0, validate=validate.Range(0, MAX_POINTS))


def _grant_reward() -> fields.String:
    """The catalogue reward a grant issues at no point cost (its id); the service checks the catalogue has it."""
    return fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))


class _Grant(Schema):
    """What a threshold or a punch card grants: points above 0, a catalogue reward, or both."""

    @validates_schema
    def _grants_something(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("points", 0) <= 0 and not data.get("reward"):
            raise ValidationError({"points": ["give points above 0, a reward from the catalogue, or both"]})


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class SpendThresholdSchema(_Strict, _Grant):
    id = fields.String(required=True, validate=IDENTIFIER)
    title = fields.String(load_default="", validate=[validate.Length(max=120), no_control])
    amount = Money(required=True, minimum=Decimal("0.01"), metadata={"description": "spend to cross; above 0"})
    period = fields.String(load_default="lifetime", validate=validate.OneOf(("lifetime", "calendar_year")))
    points = _grant_points()
    reward = _grant_reward()
    repeat = fields.Boolean(load_default=True, metadata={"description": "grant at every multiple of the amount"})


class PunchCardSchema(_Strict, _Grant):
    id = fields.String(required=True, validate=IDENTIFIER)
    title = fields.String(load_default="", validate=[validate.Length(max=120), no_control])
    every = fields.Integer(
        strict=True, required=True, validate=validate.Range(2, 1000, error="N must be 2 to 1000 orders")
    )
    min_subtotal = Money(load_default=None, allow_none=True)
    points = _grant_points()
    reward = _grant_reward()


class SignupBonusSchema(_Strict):
    points = _points(0)  # 0: no signup bonus
    # Set by the service when the bonus is turned on: members enrolled before it never get it (sent back as read).
    since = fields.String(load_default=None, allow_none=True, metadata={"readOnly": True})


class BirthdayBonusSchema(_Strict):
    points = _points(0)  # 0: no birthday bonus
    when = fields.String(load_default="day", validate=validate.OneOf(("day", "month")))
    # A customer metafield ("facts.birth_date", a date) the merchant maps; the widget's form is offered as well.
    metafield = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(r"^[A-Za-z0-9_-]{2,64}\.[A-Za-z0-9_-]{2,64}$", error="namespace.key"),
    )


class ActionCapSchema(_Strict):
    count = fields.Integer(strict=True, required=True, validate=validate.Range(1, 10_000))
    period = fields.String(required=True, validate=validate.OneOf(PERIODS))


class SurveyQuestionSchema(_Strict):
    key = fields.String(required=True, validate=IDENTIFIER)
    text = fields.String(required=True, validate=[validate.Length(1, 300), no_control])
    type = fields.String(load_default="nps", validate=validate.OneOf(QUESTION_TYPES))


class MilestoneActionSchema(_Strict):
    id = fields.String(required=True, validate=IDENTIFIER)
    title = fields.String(required=True, validate=[validate.Length(1, 120), no_control])
    kind = fields.String(required=True, validate=validate.OneOf(ACTION_KINDS))
    points = _points()
    cap = fields.Nested(ActionCapSchema, load_default=None, allow_none=True)
    cooldown_minutes = fields.Integer(strict=True, load_default=0, validate=validate.Range(0, 525_600))
    url = fields.Url(load_default=None, allow_none=True, schemes={"https"})
    network = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(NETWORKS))
    questions = fields.List(fields.Nested(SurveyQuestionSchema), load_default=list, validate=validate.Length(max=20))

    @validates_schema
    def _fits_its_kind(self, data: dict[str, Any], **_: Any) -> None:
        if data["kind"] in ("follow", "visit") and not data.get("url"):
            raise ValidationError({"url": ["a follow or visit action needs the https address to open"]})
        if data["kind"] == "follow" and not data.get("network"):
            raise ValidationError({"network": [f"one of {', '.join(NETWORKS)}"]})
        if data["kind"] == "survey" and not data.get("questions"):
            raise ValidationError({"questions": ["a survey needs at least one question"]})
        keys = [q["key"] for q in data.get("questions", ())]
        if len(keys) != len(set(keys)):
            raise ValidationError({"questions": ["question keys must be unique"]})


class MilestoneSettingsSchema(_Strict):
    thresholds = fields.List(
        fields.Nested(SpendThresholdSchema), load_default=list, validate=validate.Length(max=MAX_RULES)
    )
    punch_cards = fields.List(
        fields.Nested(PunchCardSchema), load_default=list, validate=validate.Length(max=MAX_RULES)
    )
    signup = fields.Nested(SignupBonusSchema, load_default=lambda: {"points": 0, "since": None})
    birthday = fields.Nested(BirthdayBonusSchema, load_default=lambda: {"points": 0, "when": "day", "metafield": None})
    actions = fields.List(
        fields.Nested(MilestoneActionSchema), load_default=list, validate=validate.Length(max=MAX_RULES)
    )

    @validates_schema
    def _unique_ids(self, data: dict[str, Any], **_: Any) -> None:
        for name in ("thresholds", "punch_cards", "actions"):
            ids = [item["id"] for item in data.get(name, ())]
            if len(ids) != len(set(ids)):
                raise ValidationError({name: ["ids must be unique"]})


_SCHEMA = MilestoneSettingsSchema()


def validate_milestones(data: Any) -> dict[str, Any]:
    """Check a milestone programme; returns it as JSON-safe values (money as strings), or raises ValidationError."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["send a JSON object"]})
    loaded = _SCHEMA.load(data)
    for item in loaded["thresholds"]:
        item["amount"] = str(item["amount"])
    for item in loaded["punch_cards"]:
        if item["min_subtotal"] is not None:
            item["min_subtotal"] = str(item["min_subtotal"])
    return loaded


EMPTY: dict[str, Any] = validate_milestones({})
