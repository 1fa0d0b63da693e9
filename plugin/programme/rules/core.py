"""The rule engine's vocabulary: order facts, member context, the evaluation state and contributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Any, ClassVar, Protocol

from plugin.programme import explanations

# The stages in which rules run, in this order: which lines earn and at what rate, then the base award,
# then multipliers of it, then fixed bonuses, then caps. Within a stage, rules run in the rule set's order.
STAGES = ("eligibility", "base", "multiplier", "bonus", "cap")


@dataclass(frozen=True)
class Product:
    """What the product cache knows about one product; collections None when not looked up yet."""

    product_id: int
    product_type: str = ""
    vendor: str = ""
    tags: frozenset[str] = frozenset()
    collections: frozenset[str] | None = None

    @cached_property
    def match_keys(self) -> tuple[str, str, frozenset[str]]:
        """Type, vendor and tags casefolded, worked out once per product rather than once per order line."""
        return self.product_type.casefold(), self.vendor.casefold(), frozenset(t.casefold() for t in self.tags)


@dataclass(frozen=True)
class LineFacts:
    """One order line as the rules see it: its eligible money and, when cached, its product's facts."""

    line_id: int
    quantity: int
    eligible: Decimal
    product_id: int | None = None
    variant_id: int | None = None
    product: Product | None = None


@dataclass(frozen=True)
class OrderFacts:
    lines: tuple[LineFacts, ...]
    shipping: Decimal
    tip: Decimal
    paid_at: datetime
    label: str  # the order's name, for explanations

    @property
    def subtotal(self) -> Decimal:
        return sum((line.eligible for line in self.lines), Decimal(0))


@dataclass(frozen=True)
class MemberTier:
    """The member's tier when the order was paid: its earn multiplier, under the tier programme's version."""

    tier_id: str
    name: str
    multiplier: Decimal
    version: int


@dataclass(frozen=True)
class MemberContext:
    tags: frozenset[str] = frozenset()
    tier: MemberTier | None = None  # when the shop has tiers and the member holds one


@dataclass(frozen=True)
class Contribution:
    """What one rule added to (or took from) an order, with what it needs to be reversed exactly.

    A rate contribution holds `rate` x what remains of its lines' eligible money (plus shipping and tip),
    rounded toward zero and never beyond `points`. A fixed contribution (rate None) holds `points` x the share
    of its eligible money that remains, rounded toward zero.
    """

    rule_id: str
    rule_version: int
    kind: str
    points: int
    detail: dict[str, Any]  # the explanation as data: a catalogue key and parameters (programme/explanations.py)
    lines: tuple[tuple[int, int, Decimal], ...]  # (line id, quantity, eligible money)
    rate: Fraction | None = None
    shipping: Decimal = Decimal(0)
    tip: Decimal = Decimal(0)

    @property
    def explanation(self) -> str:
        """The explanation in English (the shop's language is chosen where it is read)."""
        return explanations.render(self.detail) or ""

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "kind": self.kind,
            "points": self.points,
            "detail": self.detail,
            "lines": [[line_id, quantity, str(eligible)] for line_id, quantity, eligible in self.lines],
            "rate": None if self.rate is None else str(self.rate),
            "shipping": str(self.shipping),
            "tip": str(self.tip),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Contribution:
        return cls(
            rule_id=data["rule_id"],
            rule_version=int(data["rule_version"]),
            kind=data["kind"],
            points=int(data["points"]),
            # Lots stored before explanations were structured keep their English text.
            detail=data.get("detail") or explanations.plain(data.get("explanation", "")),
            lines=tuple((int(a), int(b), Decimal(c)) for a, b, c in data["lines"]),
            rate=None if data["rate"] is None else Fraction(data["rate"]),
            shipping=Decimal(data["shipping"]),
            tip=Decimal(data["tip"]),
        )


@dataclass
class Evaluation:
    """The state rules read and change as they run, stage by stage, for one order."""

    facts: OrderFacts
    member: MemberContext
    version: int
    base_rate: Fraction
    base_rate_detail: dict[str, Any]  # how the rate reads in an explanation ("1 per 1.00", "5 per 100 (vip rate)")
    shipping: Decimal
    tip: Decimal
    eligible: list[LineFacts]
    excluded: list[int] = field(default_factory=list)
    contributions: list[Contribution] = field(default_factory=list)
    base_rule_id: str = "base"  # "base" until a segment or a base_rate rule sets the rate
    base_fired: bool = False
    campaign_headroom: Fraction | None = None  # how much campaign multiplier may still stack; None: no limit
    order_cap: int | None = None
    notes: list[dict[str, Any]] = field(default_factory=list)  # why something did not fire, as explanation details

    @property
    def points(self) -> int:
        return sum(c.points for c in self.contributions)

    @property
    def subtotal(self) -> Decimal:
        return sum((line.eligible for line in self.eligible), Decimal(0))

    def cap(self, max_points: int) -> None:
        self.order_cap = max_points if self.order_cap is None else min(self.order_cap, max_points)

    def multiply(self, rule_id: str, version: int, kind: str, factor: Decimal, match, label: dict[str, Any]) -> None:
        """Add (factor - 1) x the base rate on the matching eligible lines, as the rule's own contribution.

        `label` is the explanation's details without the factor and the amount, which this adds."""
        if not self.base_fired:
            return  # multipliers multiply the base award; with none, there is nothing to multiply
        lines = [line for line in self.eligible if match.matches(line)]
        if not lines:
            return
        rate = _extra_rate(self.base_rate, factor)
        amount = sum((line.eligible for line in lines), Decimal(0))
        points = points_at(rate, amount)
        if points == 0:
            return
        on = None if len(lines) == len(self.eligible) else money(amount)
        detail = {**label, "factor": plain_number(factor), **({"on": on} if on else {})}
        self.contributions.append(Contribution(rule_id, version, kind, points, detail, line_tuples(lines), rate))

    def bonus(self, rule_id: str, version: int, points: int, match, label: dict[str, Any], kind: str = "bonus") -> None:
        """Fixed points, held in proportion to what remains of the matching lines' eligible money."""
        lines = [line for line in self.eligible if match.matches(line)]
        if not lines:
            return  # no eligible line to hold it by: a refund of everything could never take it back

        self.contributions.append(Contribution(rule_id, version, kind, points, label, line_tuples(lines)))

    def apply_cap(self, version: int) -> None:
        if self.order_cap is None or self.points <= self.order_cap:
            return
        self.contributions.append(
            Contribution(
                "cap", version, "cap", self.order_cap - self.points, explanations.detail("cap", points=self.order_cap),
                line_tuples(self.eligible), None, self.shipping, self.tip,
            )
        )  # fmt: skip


class Rule(Protocol):
    """A rule: a stage, an id, and a pure function of the evaluation state that appends contributions."""

    stage: ClassVar[str]
    rule_id: str

    def apply(self, evaluation: Evaluation) -> None: ...


@lru_cache(maxsize=1024)
def _extra_rate(base_rate: Fraction, factor: Decimal) -> Fraction:
    """What a multiplier adds per unit of money: (factor - 1) x the base rate (few distinct pairs per shop)."""
    return base_rate * (Fraction(factor) - 1)


def points_at(rate: Fraction, amount: Fraction | Decimal) -> int:
    """The one rounding in the engine: points are rounded toward zero, computed exactly (no floats).

    In integers rather than Fraction arithmetic, which cost most of a preview's time.
    """
    numerator, denominator = amount.as_integer_ratio()
    numerator *= rate.numerator
    denominator *= rate.denominator
    points = abs(numerator) // denominator
    return points if numerator >= 0 else -points


def line_tuples(lines: list[LineFacts]) -> tuple[tuple[int, int, Decimal], ...]:
    return tuple((line.line_id, line.quantity, line.eligible) for line in lines)


def money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}"


def plain_number(value: Decimal) -> str:
    """A factor as its shortest exact decimal ("2", "1.5"), never in exponent form ("1E+1")."""
    return f"{value.normalize():f}"
