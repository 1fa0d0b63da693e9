"""Points cap: an order earns at most this many points in all (the lowest cap set by any rule applies)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Evaluation


@dataclass(frozen=True)
class PointsCap:
    stage = "cap"

    rule_id: str
    version: int
    max_points: int

    class Schema(rule_fields.RuleSchema):
        max_points = rule_fields.cap_field(required=True)

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> PointsCap:
        return cls(data["id"], version, int(data["max_points"]))

    def apply(self, evaluation: Evaluation) -> None:
        evaluation.cap(self.max_points)
