"""A shop's versioned rule set: validation with per-field messages, parsing (cached per version), evaluation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cached_property, lru_cache
from typing import Any
from zoneinfo import available_timezones

from marshmallow import ValidationError, fields, validate

from plugin.programme.rules import fields as rule_fields
from plugin.programme.rules import tier_multiplier
from plugin.programme.rules.base_rate import BaseRate, earn_base
from plugin.programme.rules.campaign import Campaign
from plugin.programme.rules.core import STAGES, Evaluation, LineFacts, MemberContext, OrderFacts, Rule
from plugin.programme.rules.matching import Match
from plugin.programme.rules.points_cap import PointsCap
from plugin.programme.rules.registry import RULE_TYPES

MAX_RULES = 200
DEFAULT_STACK_CAP = Decimal(3)  # overlapping campaigns multiply the base by at most 3 unless the merchant says


class RuleSetSchema(rule_fields.Strict):
    time_zone = fields.String(load_default="UTC")
    campaign_stack_cap = fields.Decimal(
        load_default=DEFAULT_STACK_CAP,
        as_string=True,
        allow_nan=False,
        validate=validate.Range(min=Decimal(1), max=Decimal(100), error="must be between {min} and {max}"),
    )
    rules = fields.List(fields.Dict(), load_default=list)


def validate_rule_set(data: Any, known_collections: frozenset[str] | None = None) -> dict[str, Any]:
    """Check a proposed rule set; returns it normalised (ids filled in) or raises ValidationError per field.

    `known_collections`, when given, are the shop's collections: a rule naming another is refused.
    """
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["the rule set must be a JSON object"]})
    loaded = RuleSetSchema().load(data)
    errors: dict[str, Any] = {}
    if loaded["time_zone"] not in _zones():
        errors["time_zone"] = [f"unknown time zone {loaded['time_zone']!r}"]
    if len(loaded["rules"]) > MAX_RULES:
        errors["rules"] = [f"at most {MAX_RULES} rules; {len(loaded['rules'])} given"]
        raise ValidationError(errors)
    rules: list[dict[str, Any]] = []
    rule_errors: dict[int, Any] = {}
    seen: set[str] = set()
    for index, raw in enumerate(loaded["rules"]):
        kind = raw.get("type")
        if kind not in RULE_TYPES:
            rule_errors[index] = {"type": [f"must be one of: {', '.join(sorted(RULE_TYPES))}"]}
            continue
        try:
            rule = RULE_TYPES[kind].Schema().load(raw)
        except ValidationError as error:
            rule_errors[index] = error.messages
            continue
        rule["id"] = rule["id"] or f"{kind}-{index + 1}"
        if rule["id"] in seen:
            rule_errors[index] = {"id": [f"duplicate rule id {rule['id']!r}"]}
            continue
        seen.add(rule["id"])
        unknown = _unknown_collections(rule, known_collections)
        if unknown:
            rule_errors[index] = {"match": {"collections": [f"unknown collection(s): {', '.join(sorted(unknown))}"]}}
            continue
        if kind == "exclusion" and Match.from_json(rule["match"]).everything:
            rule_errors[index] = {"match": ["an exclusion must name what it excludes"]}
            continue
        rules.append(_json_safe(rule))
    if rule_errors:
        errors["rules"] = rule_errors
    if errors:
        raise ValidationError(errors)
    return {"time_zone": loaded["time_zone"], "campaign_stack_cap": str(loaded["campaign_stack_cap"]), "rules": rules}


def _unknown_collections(rule: dict[str, Any], known: frozenset[str] | None) -> set[str]:
    if known is None or not rule.get("match"):
        return set()
    return set(rule["match"].get("collections", ())) - known


def _json_safe(rule: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(rule, default=str))


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]
    time_zone: str = "UTC"
    campaign_stack_cap: Decimal = DEFAULT_STACK_CAP

    @cached_property
    def by_stage(self) -> tuple[tuple[str, tuple[Rule, ...]], ...]:
        """The rules grouped by stage, in stage order (worked out once per rule set, not per order)."""
        return tuple((stage, tuple(rule for rule in self.rules if rule.stage == stage)) for stage in STAGES)

    @cached_property
    def campaign_headroom(self) -> Fraction:
        return Fraction(self.campaign_stack_cap) - 1

    @cached_property
    def has_base(self) -> bool:
        return any(isinstance(rule, BaseRate) for rule in self.rules)

    @cached_property
    def needs_products(self) -> bool:
        """Whether some rule matches lines by facts only the product cache holds."""
        return any(getattr(rule, "match", None) is not None and rule.match.needs_products for rule in self.rules)

    @property
    def needs_member_tags(self) -> bool:
        return any(getattr(rule, "tag", None) or getattr(rule, "customer_tag", None) for rule in self.rules)

    @property
    def needs_collections(self) -> bool:
        return any(getattr(rule, "match", None) is not None and rule.match.needs_collections for rule in self.rules)


DEFAULT_RULE_SET = RuleSet(version=0, rules=())


def rule_set(data: dict[str, Any] | None, version: int) -> RuleSet:
    """The RuleSet for a stored (already validated) JSON; remembered per content and version."""
    if not data or version == 0:
        return DEFAULT_RULE_SET if version == 0 else RuleSet(version, ())
    return _rule_set(json.dumps(data, sort_keys=True), version)


@lru_cache(maxsize=512)
def _rule_set(data_json: str, version: int) -> RuleSet:
    data = json.loads(data_json)
    zone = data.get("time_zone", "UTC")
    rules: list[Rule] = []
    for raw in data.get("rules", ()):
        cls = RULE_TYPES[raw["type"]]
        rules.append(cls.from_json(raw, version, zone) if cls is Campaign else cls.from_json(raw, version))
    return RuleSet(version, tuple(rules), zone, Decimal(data.get("campaign_stack_cap", DEFAULT_STACK_CAP)))


def evaluate(
    rules: RuleSet,
    facts: OrderFacts,
    member: MemberContext,
    base_rate: Fraction,
    base_rate_detail: dict[str, Any],
) -> Evaluation:
    """Run the rules stage by stage (eligibility, base, multiplier, bonus, cap) over one order's facts."""
    evaluation = Evaluation(
        facts=facts,
        member=member,
        version=rules.version,
        base_rate=base_rate,
        base_rate_detail=base_rate_detail,
        shipping=facts.shipping,
        tip=facts.tip,
        eligible=list(facts.lines),
        campaign_headroom=rules.campaign_headroom,
    )
    for stage, staged in rules.by_stage:
        if stage == "base" and not rules.has_base:
            earn_base(evaluation, rules.version)  # no base_rate rule: the shop settings' rate, as before rules
        for rule in staged:
            rule.apply(evaluation)
        if stage == "multiplier":
            tier_multiplier.apply(evaluation)
    evaluation.apply_cap(rules.version)
    return evaluation


def order_cap(rules: RuleSet) -> int | None:
    """The lowest per-order cap the rule set sets (points caps and base rates' caps run for every order)."""
    caps = [rule.max_points for rule in rules.rules if isinstance(rule, PointsCap)]
    caps += [r.cap_per_order for r in rules.rules if isinstance(r, BaseRate) and r.cap_per_order is not None]
    return min(caps, default=None)


def missing_products(rules: RuleSet, lines: tuple[LineFacts, ...]) -> set[int]:
    """Products the rules need facts about that the cache does not have yet: the order waits for them."""
    if not rules.needs_products:
        return set()
    missing = set()
    for line in lines:
        if line.product_id is None:
            continue  # a custom line with no product: no product facts exist, so none can be missing
        if line.product is None or (rules.needs_collections and line.product.collections is None):
            missing.add(line.product_id)
    return missing
