"""Fixed points per order (airline style), optionally only from a minimum subtotal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import fields, validate

from plugin.programme import explanations
from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation
from plugin.programme.rules.matching import Match


@dataclass(frozen=True)
class FixedPoints:
    stage = "bonus"

    rule_id: str
    version: int
    points: int
    min_subtotal: Decimal | None = None
    name: str | None = None

    class Schema(rule_fields.RuleSchema):
        points = fields.Integer(strict=True, required=True, validate=validate.Range(1, 1_000_000))
        min_subtotal = rule_fields.money_field()

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> FixedPoints:
        minimum = data.get("min_subtotal")
        return cls(data["id"], version, int(data["points"]), Decimal(minimum) if minimum else None, data.get("name"))

    def apply(self, evaluation: Evaluation) -> None:
        if self.min_subtotal is not None and evaluation.subtotal < self.min_subtotal:
            return
        label = (
            explanations.detail("fixed_points", points=self.points, name=self.name)
            if self.name
            else explanations.detail("per_order", points=self.points)
        )
        evaluation.bonus(self.rule_id, self.version, self.points, Match(), label)
