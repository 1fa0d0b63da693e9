"""Points only: a rule set compiled once into a function of one order's lines, equal to what build_lot's lot holds.

A preview asks one question of 100,000 orders: how many points would this order earn? The engine
(`ruleset.evaluate` through `earning.build_lot`) answers it with contributions, explanations and the facts a refund
needs, which an unrefunded order never uses. `compile_points` runs the same stages in the same order with the same
exact arithmetic (`core.points_at`, `core._extra_rate`, Decimal sums) but keeps only the running total; product
matches are worked out once per product instead of once per line. Refunded orders still go through the engine.
`tests/test_rules_tally.py` compares both on random rule sets, products and orders.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

from plugin.programme.rules.base_rate import BaseRate
from plugin.programme.rules.campaign import Campaign
from plugin.programme.rules.core import MemberTier, Product, _extra_rate
from plugin.programme.rules.customer_segment import CustomerSegment
from plugin.programme.rules.exclusion import Exclusion
from plugin.programme.rules.fixed_points import FixedPoints
from plugin.programme.rules.matching import Match
from plugin.programme.rules.multiplier import Multiplier
from plugin.programme.rules.points_cap import PointsCap
from plugin.programme.rules.ruleset import RuleSet

# One eligible line: (line id, quantity, eligible money, product id, variant id).
Line = tuple[int, int, Decimal, "int | None", "int | None"]
ZERO = Decimal(0)
# Rates as (numerator, denominator) of the exact Fraction: points_at's arithmetic without Fraction objects, whose
# every comparison, hash and subtraction costs a microsecond (a preview makes millions of them).
Rate = tuple[int, int]
Headroom = tuple[int, int] | None  # campaign multiplier still allowed to stack, as a Fraction's (num, den)


def _pair(value: Fraction) -> Rate:
    return value.numerator, value.denominator


def _points(rate: Rate, amount: Decimal) -> int:
    """core.points_at on a (numerator, denominator) rate: toward zero, exact."""
    numerator, denominator = amount.as_integer_ratio()
    numerator *= rate[0]
    denominator *= rate[1]
    return numerator // denominator if numerator >= 0 else -(-numerator // denominator)


class _Rates:
    """The base rates a rule set can give an order, numbered at compile time (the settings' rate is 0)."""

    def __init__(self, settings_rate: Fraction) -> None:
        self.values: list[Fraction] = [settings_rate]

    def index(self, rate: Fraction) -> int:
        if rate not in self.values:
            self.values.append(rate)
        return self.values.index(rate)


class _State:
    """What the rules change while one order is tallied (the points-only part of core.Evaluation)."""

    __slots__ = ("base", "base_fired", "base_rule_id", "cap", "eligible", "headroom", "subtotal_", "total")

    def __init__(self, eligible: list[Line], headroom: Headroom) -> None:
        self.eligible = eligible
        self.base = 0  # index into _Rates.values: the settings' rate until a segment or base_rate rule sets one
        self.base_rule_id = "base"
        self.base_fired = False
        self.headroom = headroom
        self.cap: int | None = None
        self.total = 0
        self.subtotal_: Decimal | None = None

    def subtotal(self) -> Decimal:
        if self.subtotal_ is None:
            self.subtotal_ = sum((line[2] for line in self.eligible), ZERO)
        return self.subtotal_

    def capped(self, max_points: int) -> None:
        self.cap = max_points if self.cap is None else min(self.cap, max_points)


Matcher = Callable[[Line], bool] | None  # None: every line


def matcher(match: Match, products: dict[int, Product]) -> Matcher:
    """Match.matches as a set look-up: the cached products it matches are found once, here."""
    if match.everything:
        return None
    product_ids = set(match.product_ids)
    for product_id, product in products.items():
        product_type, vendor, tags = product.match_keys
        if (
            product_type in match.product_types
            or vendor in match.vendors
            or not match.tags.isdisjoint(tags)
            or (product.collections is not None and not match.collections.isdisjoint(product.collections))
        ):
            product_ids.add(product_id)
    variant_ids = match.variant_ids
    if not variant_ids:
        return lambda line: line[3] in product_ids
    return lambda line: line[3] in product_ids or line[4] in variant_ids


def _matching(lines: list[Line], test: Matcher) -> list[Line]:
    return lines if test is None else [line for line in lines if test(line)]


def _extra_rates(rates: _Rates, factor: Decimal) -> list[Rate]:
    """(factor - 1) x each base rate, as core._extra_rate gives it, indexed like the rates."""
    return [_pair(_extra_rate(rate, factor)) for rate in rates.values]


def _multiply(state: _State, extra: list[Rate], test: Matcher) -> None:
    """core.Evaluation.multiply without its contribution: (factor - 1) x the base rate on the matching lines."""
    if not state.base_fired:
        return
    lines = _matching(state.eligible, test)
    if not lines:
        return
    state.total += _points(extra[state.base], sum((line[2] for line in lines), ZERO))


def _earn_base(state: _State, rates: list[Rate], shipping: Decimal, tip: Decimal) -> None:
    state.base_fired = True
    state.total += _points(rates[state.base], state.subtotal() + shipping + tip)


Step = Callable[[_State, Decimal, Decimal, datetime, frozenset[str]], None]
Compiler = Callable[[Any, dict[int, Product], _Rates], Callable[[list[Rate]], Step | None]]


# Each compiler runs in two phases: first it registers the base rates its rule can set (so every rate is numbered
# before any multiplier's table is built), then it returns the step, given every base rate as a (num, den) pair.


def _exclusion(rule: Exclusion, products: dict[int, Product], rates: _Rates):
    test = matcher(rule.match, products)

    def step(state: _State, shipping, tip, paid_at, tags) -> None:
        state.eligible = [line for line in state.eligible if not test(line)]
        state.subtotal_ = None

    return lambda pairs: None if test is None else step  # Exclusion.apply refuses to exclude everything


def _segment(rule: CustomerSegment, products: dict[int, Product], rates: _Rates):
    tag, rule_id, own = rule.tag, rule.rule_id, rates.index(rule.rate)

    def build(pairs: list[Rate]) -> Step:
        at_most = [rule.rate <= rate for rate in rates.values]  # CustomerSegment.apply's comparison, per base rate

        def step(state: _State, shipping, tip, paid_at, tags) -> None:
            if tag not in tags:
                return
            if state.base_rule_id != "base" and at_most[state.base]:
                return
            state.base, state.base_rule_id = own, rule_id

        return step

    return build


def _base_rate(rule: BaseRate, products: dict[int, Product], rates: _Rates):
    sets_rate = rule.points is not None and rule.per_amount is not None
    own = rates.index(rule.rate) if sets_rate else 0
    rule_id, cap, minimum = rule.rule_id, rule.cap_per_order, rule.min_subtotal

    def build(pairs: list[Rate]) -> Step:
        def step(state: _State, shipping, tip, paid_at, tags) -> None:
            if cap is not None:
                state.capped(cap)
            if sets_rate and state.base_rule_id == "base":
                state.base, state.base_rule_id = own, rule_id
            if minimum is not None and state.subtotal() < minimum:
                return
            _earn_base(state, pairs, shipping, tip)

        return step

    return build


def _multiplier(rule: Multiplier, products: dict[int, Product], rates: _Rates):
    test = matcher(rule.match, products)

    def build(pairs: list[Rate]) -> Step:
        extra = _extra_rates(rates, rule.multiplier)

        def step(state: _State, shipping, tip, paid_at, tags) -> None:
            _multiply(state, extra, test)

        return step

    return build


def _stacked(own_extra: Fraction, own_factor: Decimal, headroom: Headroom) -> tuple[Headroom, Decimal | None]:
    """Campaign.apply's stacking: the headroom left after this campaign, and the factor it applies (None: none)."""
    extra = own_extra
    left = None if headroom is None else Fraction(*headroom)
    if left is not None:
        if extra > left:
            extra = left
        if extra > 0:
            left = left - extra
    if extra == 0:
        return headroom if left is None else _pair(left), None
    factor = own_factor if extra is own_extra else Decimal(extra.numerator) / Decimal(extra.denominator) + 1
    return None if left is None else _pair(left), factor


def _campaign(rule: Campaign, products: dict[int, Product], rates: _Rates):
    starts, ends = rule.period_utc
    tag, test, bonus = rule.customer_tag, matcher(rule.match, products), rule.bonus_points

    def bonus_step(state: _State, shipping, tip, paid_at, tags) -> None:
        if not starts <= paid_at < ends or (tag is not None and tag not in tags):
            return
        if _matching(state.eligible, test):
            state.total += bonus

    def build(pairs: list[Rate]) -> Step:
        if bonus is not None:
            return bonus_step
        # The headroom an order reaches this campaign with takes few values (it depends on which campaigns
        # before it fired): each is worked out once, in Fractions, then looked up.
        outcomes: dict[Headroom, tuple[Headroom, list[Rate] | None]] = {}

        def multiplier_step(state: _State, shipping, tip, paid_at, tags) -> None:
            if not starts <= paid_at < ends or (tag is not None and tag not in tags):
                return
            outcome = outcomes.get(state.headroom)
            if outcome is None:
                left, factor = _stacked(rule.extra, rule.factor, state.headroom)
                outcome = outcomes[state.headroom] = (left, None if factor is None else _extra_rates(rates, factor))
            state.headroom, extra = outcome
            if extra is not None:
                _multiply(state, extra, test)

        return multiplier_step

    return build


def _fixed_points(rule: FixedPoints, products: dict[int, Product], rates: _Rates):
    points, minimum = rule.points, rule.min_subtotal

    def step(state: _State, shipping, tip, paid_at, tags) -> None:
        if minimum is not None and state.subtotal() < minimum:
            return
        if state.eligible:
            state.total += points

    return lambda pairs: step


def _points_cap(rule: PointsCap, products: dict[int, Product], rates: _Rates):
    max_points = rule.max_points

    def step(state: _State, shipping, tip, paid_at, tags) -> None:
        state.capped(max_points)

    return lambda pairs: step


COMPILERS: dict[type, Compiler] = {
    Exclusion: _exclusion,
    CustomerSegment: _segment,
    BaseRate: _base_rate,
    Multiplier: _multiplier,
    Campaign: _campaign,
    FixedPoints: _fixed_points,
    PointsCap: _points_cap,
}


def compile_points(
    rules: RuleSet, base_rate: Fraction, products: dict[int, Product], member_tier: MemberTier | None = None
) -> Callable[[list[Line], Decimal, Decimal, datetime, frozenset[str]], int]:
    """points(eligible lines, shipping, tip, paid_at, member tags): the points `evaluate` gives the order in all.

    `base_rate` is the shop settings' rate; `member_tier` the tier every tallied order is evaluated with (the
    preview evaluates none). A rule type missing from COMPILERS raises KeyError here, never a wrong total later.
    """
    rates = _Rates(base_rate)
    staged_builds = [
        (stage, [COMPILERS[type(rule)](rule, products, rates) for rule in staged]) for stage, staged in rules.by_stage
    ]
    pairs = [_pair(rate) for rate in rates.values]
    steps: list[Step] = []
    for stage, builds in staged_builds:
        if stage == "base" and not rules.has_base:
            steps.append(lambda state, shipping, tip, paid_at, tags: _earn_base(state, pairs, shipping, tip))
        steps.extend(step for build in builds if (step := build(pairs)) is not None)
        if stage == "multiplier" and member_tier is not None and member_tier.multiplier != 1:
            steps.append(_tier_step(_extra_rates(rates, member_tier.multiplier)))
    headroom = None if rules.campaign_headroom is None else _pair(rules.campaign_headroom)

    def points(lines: list[Line], shipping: Decimal, tip: Decimal, paid_at: datetime, tags: frozenset[str]) -> int:
        state = _State(lines, headroom)
        for step in steps:
            step(state, shipping, tip, paid_at, tags)
        total = state.total
        if state.cap is not None and total > state.cap:
            total = state.cap  # apply_cap's contribution brings the sum down to the cap
        return max(total, 0)

    return points


def _tier_step(extra: list[Rate]) -> Step:
    def step(state: _State, shipping, tip, paid_at, tags) -> None:
        _multiply(state, extra, None)  # tier_multiplier.apply: every eligible line

    return step


def eligible_lines(
    raw_lines: Iterable[list[Any]], taxes_included: bool, include_taxes: bool, include_gift_cards: bool
) -> list[Line]:
    """build_lot's eligible lines, from the compact lines stored in an order's facts (order_facts.to_json)."""
    lines: list[Line] = []
    for line_id, quantity, gross, discount, tax, gift_card, product_id, variant_id in raw_lines:
        quantity = int(quantity)
        if quantity <= 0 or (gift_card and not include_gift_cards):
            continue
        eligible = Decimal(gross) - Decimal(discount)
        if taxes_included and not include_taxes:
            eligible -= Decimal(tax)
        elif include_taxes and not taxes_included:
            eligible += Decimal(tax)
        lines.append((int(line_id), quantity, max(eligible, ZERO), product_id, variant_id))
    return lines


def shipping_counted(
    shipping: Decimal, shipping_tax: Decimal, taxes_included: bool, include_shipping: bool, include_taxes: bool
) -> Decimal:
    """build_lot's shipping: what of the order's shipping earns under the shop's settings."""
    if not include_shipping:
        return ZERO
    if taxes_included and not include_taxes:
        shipping -= shipping_tax
    elif include_taxes and not taxes_included:
        shipping += shipping_tax
    return max(shipping, ZERO)
