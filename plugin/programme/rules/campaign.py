"""Campaign: a multiplier or a fixed bonus between two instants in the shop's time zone, optionally only for
a customer tag or a product set. Overlapping campaign multipliers stack up to the rule set's cap."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates_schema

from plugin.programme import explanations
from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation
from plugin.programme.rules.matching import Match


@dataclass(frozen=True)
class Campaign:
    rule_id: str
    version: int
    name: str
    starts_at: datetime  # aware, from local wall time in the shop's zone
    ends_at: datetime
    match: Match
    multiplier: Decimal | None = None
    bonus_points: int | None = None
    customer_tag: str | None = None

    class Schema(rule_fields.RuleSchema):
        name = fields.String(required=True, validate=validate.Length(1, 120))
        starts_at = fields.NaiveDateTime(required=True)  # wall time in the rule set's time zone
        ends_at = fields.NaiveDateTime(required=True)
        multiplier = rule_fields.multiplier_field(required=False)
        bonus_points = fields.Integer(strict=True, load_default=None, validate=validate.Range(1, 1_000_000))
        customer_tag = fields.String(load_default=None, validate=validate.Length(1, 255))
        match = fields.Nested(rule_fields.MatchSchema, load_default=None)

        @validates_schema
        def _one_reward_and_a_real_period(self, data: dict[str, Any], **_: Any) -> None:
            if data["ends_at"] <= data["starts_at"]:
                raise ValidationError("must be after starts_at", "ends_at")
            if (data.get("multiplier") is None) == (data.get("bonus_points") is None):
                raise ValidationError("give exactly one of multiplier or bonus_points", "multiplier")

    @cached_property
    def extra(self) -> Fraction:
        return Fraction(self.multiplier) - 1

    @property
    def stage(self) -> str:
        return "multiplier" if self.multiplier is not None else "bonus"

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int, zone: str = "UTC") -> Campaign:
        tz = ZoneInfo(zone)
        multiplier = data.get("multiplier")
        tag = data.get("customer_tag")
        return cls(
            rule_id=data["id"],
            version=version,
            name=data["name"],
            starts_at=datetime.fromisoformat(str(data["starts_at"])).replace(tzinfo=tz),
            ends_at=datetime.fromisoformat(str(data["ends_at"])).replace(tzinfo=tz),
            match=Match.from_json(data.get("match")),
            multiplier=Decimal(multiplier) if multiplier is not None else None,
            bonus_points=data.get("bonus_points"),
            customer_tag=str(tag).casefold() if tag else None,
        )

    @cached_property
    def factor(self) -> Decimal:
        return Decimal(self.multiplier)

    @cached_property
    def period_utc(self) -> tuple[datetime, datetime]:
        """The period in UTC, as order facts carry paid_at: comparing within one zone skips a zone look-up
        per order."""
        return self.starts_at.astimezone(UTC), self.ends_at.astimezone(UTC)

    def apply(self, evaluation: Evaluation) -> None:
        starts, ends = self.period_utc
        if not starts <= evaluation.facts.paid_at < ends:
            return
        if self.customer_tag is not None and self.customer_tag not in evaluation.member.tags:
            return
        if self.bonus_points is not None:
            evaluation.bonus(
                self.rule_id,
                self.version,
                self.bonus_points,
                self.match,
                explanations.detail("campaign_bonus", points=self.bonus_points, name=self.name),
                "campaign",
            )
            return
        extra = self.extra
        headroom = evaluation.campaign_headroom
        if headroom is not None:
            if extra > headroom:
                extra = headroom
            if extra > 0:
                evaluation.campaign_headroom = headroom - extra
        if extra == 0:
            return
        factor = self.factor if extra is self.extra else Decimal(extra.numerator) / Decimal(extra.denominator) + 1
        label = explanations.detail("campaign_multiplier", name=self.name)
        evaluation.multiply(self.rule_id, self.version, "campaign", factor, self.match, label)
