"""Base rate: N points per amount of eligible money, with an optional minimum subtotal and a cap per order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property
from typing import Any

from marshmallow import fields, validate

from plugin.programme import explanations
from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules.core import Contribution, Evaluation, line_tuples, money, points_at


@dataclass(frozen=True)
class BaseRate:
    stage = "base"

    rule_id: str
    version: int
    points: int | None = None  # None: the shop settings' rate
    per_amount: Decimal | None = None
    min_subtotal: Decimal | None = None
    cap_per_order: int | None = None

    class Schema(rule_fields.RuleSchema):
        points = fields.Integer(strict=True, load_default=None, validate=validate.Range(0, 1_000_000))
        per_amount = rule_fields.money_field(minimum="0.01")
        min_subtotal = rule_fields.money_field()
        cap_per_order = rule_fields.cap_field()

    @classmethod
    def from_json(cls, data: dict[str, Any], version: int) -> BaseRate:
        return cls(
            rule_id=data["id"],
            version=version,
            points=data.get("points"),
            per_amount=Decimal(data["per_amount"]) if data.get("per_amount") is not None else None,
            min_subtotal=Decimal(data["min_subtotal"]) if data.get("min_subtotal") is not None else None,
            cap_per_order=data.get("cap_per_order"),
        )

    @cached_property
    def rate(self) -> Fraction:
        return Fraction(self.points) / Fraction(self.per_amount)

    @cached_property
    def rate_detail(self) -> dict[str, Any]:
        return explanations.detail("rate", points=self.points, per_amount=str(self.per_amount))

    def apply(self, evaluation: Evaluation) -> None:
        if self.cap_per_order is not None:
            evaluation.cap(self.cap_per_order)
        if evaluation.base_rule_id == "base" and self.points is not None and self.per_amount is not None:
            # A customer segment's rate (set earlier, in the eligibility stage) wins over the rule's own.
            evaluation.base_rate = self.rate
            evaluation.base_rate_detail = self.rate_detail
            evaluation.base_rule_id = self.rule_id
        if self.min_subtotal is not None and evaluation.subtotal < self.min_subtotal:
            evaluation.notes.append(
                explanations.detail(
                    "under_minimum", subtotal=money(evaluation.subtotal), minimum=str(self.min_subtotal)
                )
            )
            return
        earn_base(evaluation, self.version)


def earn_base(evaluation: Evaluation, version: int) -> None:
    """The base award on every eligible line (and shipping and tip when the shop counts them)."""
    amount = evaluation.subtotal + evaluation.shipping + evaluation.tip
    evaluation.base_fired = True
    evaluation.contributions.append(
        Contribution(
            rule_id=evaluation.base_rule_id,
            rule_version=version,
            kind="base",
            points=points_at(evaluation.base_rate, amount),
            detail=explanations.detail("base", amount=money(amount), rate=evaluation.base_rate_detail),
            lines=line_tuples(evaluation.eligible),
            rate=evaluation.base_rate,
            shipping=evaluation.shipping,
            tip=evaluation.tip,
        )
    )
