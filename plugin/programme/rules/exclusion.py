"""Exclusion: matching lines earn nothing from any rule (base, multipliers, campaigns, fixed bonuses)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import fields

from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation
from plugin.programme.rules.matching import Match


@dataclass(frozen=True)
class Exclusion:
    stage = "eligibility"

    rule_id: str
    version: int
    match: Match

    class Schema(rule_fields.RuleSchema):
        match = fields.Nested(rule_fields.MatchSchema, required=True)

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> Exclusion:
        return cls(data["id"], version, Match.from_json(data["match"]))

    def apply(self, evaluation: Evaluation) -> None:
        if self.match.everything:
            return  # an empty match would exclude the whole shop; the schema refuses it, this never guesses
        kept = []
        for line in evaluation.eligible:
            if self.match.matches(line):
                evaluation.excluded.append(line.line_id)
            else:
                kept.append(line)
        evaluation.eligible = kept
