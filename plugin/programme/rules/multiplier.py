"""Multiplier: matching lines earn their base points times N (the extra is its own contribution)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from marshmallow import fields

from plugin.programme import explanations
from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation
from plugin.programme.rules.matching import Match


@dataclass(frozen=True)
class Multiplier:
    stage = "multiplier"

    rule_id: str
    version: int
    multiplier: Decimal
    match: Match
    name: str | None = None

    class Schema(rule_fields.RuleSchema):
        multiplier = rule_fields.multiplier_field()
        match = fields.Nested(rule_fields.MatchSchema, required=True)

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> Multiplier:
        return cls(data["id"], version, Decimal(data["multiplier"]), Match.from_json(data["match"]), data.get("name"))

    def apply(self, evaluation: Evaluation) -> None:
        label = explanations.detail("multiplier", label=self.name or self.match.description)
        evaluation.multiply(self.rule_id, self.version, "multiplier", self.multiplier, self.match, label)
