"""Customer segment: members with a Shopify customer tag earn at their own base rate (the highest applies)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

from marshmallow import fields, validate

from plugin.programme import explanations
from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation


@dataclass(frozen=True)
class CustomerSegment:
    stage = "eligibility"

    rule_id: str
    version: int
    tag: str
    points: int
    per_amount: Decimal

    class Schema(rule_fields.RuleSchema):
        tag = fields.String(required=True, validate=validate.Length(1, 255))
        points = fields.Integer(strict=True, required=True, validate=validate.Range(0, 1_000_000))
        per_amount = rule_fields.money_field(required=True, minimum="0.01")

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> CustomerSegment:
        return cls(data["id"], version, str(data["tag"]).casefold(), int(data["points"]), Decimal(data["per_amount"]))

    @cached_property
    def rate(self) -> Fraction:
        return Fraction(self.points) / Fraction(self.per_amount)

    @cached_property
    def rate_detail(self) -> dict[str, Any]:
        return explanations.detail("segment_rate", points=self.points, per_amount=str(self.per_amount), tag=self.tag)

    def apply(self, evaluation: Evaluation) -> None:
        if self.tag not in evaluation.member.tags:
            return
        rate = self.rate
        if evaluation.base_rule_id != "base" and rate <= evaluation.base_rate:
            return  # another segment of this member's already gives a better rate
        evaluation.base_rate = rate
        evaluation.base_rate_detail = self.rate_detail
        evaluation.base_rule_id = self.rule_id
