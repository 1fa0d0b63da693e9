"""The programme's rules as pure functions: what an order earns, and what it still holds after refunds.

No Flask, no database. Money is Decimal in the shop's currency; points are integers; the one rounding
rule (round down) lives in `_points_for`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

from plugin.programme import explanations
from plugin.programme import rules as earning_rules
from plugin.programme.events import OrderSnapshot, RefundFacts
from plugin.programme.rules import Contribution, LineFacts, MemberContext, OrderFacts, Product, RuleSet, tally
from plugin.programme.rules.core import MemberTier, plain_number, points_at

RULES_VERSION = "earn-1"  # bump when the meaning of these functions changes


@dataclass(frozen=True)
class ProgramSettings:
    """A shop's earning programme. Defaults are the programme every new shop starts with."""

    earn_points: int = 1
    earn_per_amount: Decimal = Decimal("1.00")
    include_shipping: bool = False
    include_taxes: bool = False
    include_tips: bool = False
    include_gift_cards: bool = False
    earn_on_test_orders: bool = False
    guest_orders_earn_by_email: bool = False
    pending_days: int = 0
    spent_points_policy: str = "allow_negative"  # or "stop_at_zero", "claw_back"
    version: int = 1

    @property
    def rule_version(self) -> str:
        return f"{RULES_VERSION}+settings-{self.version}"


@dataclass(frozen=True)
class LotLine:
    line_id: int
    quantity: int
    eligible: Decimal  # money this line contributes to earning, after discounts


@dataclass(frozen=True)
class Lot:
    """What one paid order earned, with everything needed to reverse it later without today's settings."""

    earn_points: int
    earn_per_amount: Decimal
    lines: tuple[LotLine, ...]
    shipping: Decimal
    tip: Decimal
    points: int
    rule_version: str
    available_at: datetime | None = None
    reason: str | None = None  # why nothing was earned, when nothing was
    excluded_lines: tuple[int, ...] = field(default_factory=tuple)
    # Lots made by the rule engine keep one contribution per rule that fired, and are reversed per
    # contribution; older lots (none) are reversed from earn_points / earn_per_amount as before.
    contributions: tuple[Contribution, ...] = ()
    # The explanation as data (programme/explanations.py), rendered in the shop's language where it is read.
    details: dict[str, Any] | None = None
    # The lowest per-order cap the rules set (None: none): kept so the tier's share can be changed later
    # (retier) and left out (points_without) exactly as the engine would have capped the order.
    order_cap: int | None = None

    @property
    def explanation(self) -> str | None:
        """The explanation in English ("74 points: 37.42 eligible x 1 per 1.00, ... (rules v5)")."""
        return explanations.render(self.details)

    def to_json(self) -> dict[str, Any]:
        return {
            "earn_points": self.earn_points,
            "earn_per_amount": str(self.earn_per_amount),
            "lines": [
                {"line_id": ln.line_id, "quantity": ln.quantity, "eligible": str(ln.eligible)} for ln in self.lines
            ],
            "shipping": str(self.shipping),
            "tip": str(self.tip),
            "points": self.points,
            "rule_version": self.rule_version,
            "available_at": self.available_at.isoformat() if self.available_at else None,
            "reason": self.reason,
            "excluded_lines": list(self.excluded_lines),
            **(
                {
                    "contributions": [c.to_json() for c in self.contributions],
                    "details": self.details,
                    "explanation": self.explanation,  # for people reading the database; never read back
                }
                if self.contributions
                else {}
            ),
            **({"order_cap": self.order_cap} if self.order_cap is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Lot:
        return cls(
            earn_points=int(data["earn_points"]),
            earn_per_amount=Decimal(data["earn_per_amount"]),
            lines=tuple(
                LotLine(int(ln["line_id"]), int(ln["quantity"]), Decimal(ln["eligible"])) for ln in data["lines"]
            ),
            shipping=Decimal(data["shipping"]),
            tip=Decimal(data["tip"]),
            points=int(data["points"]),
            rule_version=data["rule_version"],
            available_at=datetime.fromisoformat(data["available_at"]) if data.get("available_at") else None,
            reason=data.get("reason"),
            excluded_lines=tuple(data.get("excluded_lines", ())),
            contributions=tuple(Contribution.from_json(c) for c in data.get("contributions", ())),
            details=data.get("details")
            or (explanations.plain(data["explanation"]) if data.get("explanation") else None),
            order_cap=data.get("order_cap"),
        )


def build_lot(
    order: OrderSnapshot,
    settings: ProgramSettings,
    paid_at: datetime,
    *,
    has_member: bool,
    rules: RuleSet | None = None,
    products: dict[int, Product] | None = None,
    member_tags: frozenset[str] = frozenset(),
    member_tier: MemberTier | None = None,
) -> Lot:
    """How many points a paid order earns, and the eligible amounts that produced them.

    With a rule set, the rules (see plugin.programme.rules) turn the eligible lines into contributions;
    without one, the shop's rate applies to every eligible line, as the rule set version 0 does.
    """
    reason = None
    if order.test and not settings.earn_on_test_orders:
        reason = "test order"
    elif not has_member:
        reason = "no customer on the order"

    lines: list[LotLine] = []
    excluded: list[int] = []
    for line in order.lines:
        if line.quantity <= 0:
            continue
        if line.gift_card and not settings.include_gift_cards:
            excluded.append(line.line_id)
            continue
        eligible = line.gross - line.discount
        if order.taxes_included and not settings.include_taxes:
            eligible -= line.tax
        elif settings.include_taxes and not order.taxes_included:
            eligible += line.tax
        lines.append(LotLine(line.line_id, line.quantity, max(eligible, Decimal(0))))

    shipping = Decimal(0)
    if settings.include_shipping:
        shipping = order.shipping
        if order.taxes_included and not settings.include_taxes:
            shipping -= order.shipping_tax
        elif settings.include_taxes and not order.taxes_included:
            shipping += order.shipping_tax
        shipping = max(shipping, Decimal(0))
    tip = order.tip if settings.include_tips else Decimal(0)

    available_at = paid_at + timedelta(days=settings.pending_days) if settings.pending_days else None
    lot = Lot(
        earn_points=settings.earn_points,
        earn_per_amount=settings.earn_per_amount,
        lines=tuple(lines),
        shipping=shipping,
        tip=tip,
        points=0,
        rule_version=settings.rule_version,
        available_at=available_at,
        reason=reason,
        excluded_lines=tuple(excluded),
    )
    if reason is not None:
        return lot
    if rules is None:
        return _with_points(lot, _points_for(lot, _remaining_amount(lot, ())))
    return _with_rules(lot, order, settings, paid_at, rules, products or {}, member_tags, member_tier)


def tallied_points(
    points: Callable[..., int],
    settings: ProgramSettings,
    lines: list[list[Any]],
    taxes_included: bool,
    test: bool,
    money: tuple[str, str, str],
    paid_at: datetime,
    member_tags: frozenset[str],
) -> int:
    """build_lot(...).points for a member's order, from its stored facts (`lines` and the shipping, shipping tax and
    tip strings as order_facts stores them), by a rule set compiled with tally.compile_points."""
    if test and not settings.earn_on_test_orders:
        return 0
    eligible = tally.eligible_lines(lines, taxes_included, settings.include_taxes, settings.include_gift_cards)
    shipping, shipping_tax, tip = money
    counted_shipping = tally.shipping_counted(
        Decimal(shipping), Decimal(shipping_tax), taxes_included, settings.include_shipping, settings.include_taxes
    )
    counted_tip = Decimal(tip) if settings.include_tips else tally.ZERO
    return points(eligible, counted_shipping, counted_tip, paid_at, member_tags)


def line_facts(
    order: OrderSnapshot, lot_lines: tuple[LotLine, ...], products: dict[int, Product]
) -> tuple[LineFacts, ...]:
    """The lot's eligible lines with their product and variant ids and, when cached, their product's facts."""
    by_id = {line.line_id: line for line in order.lines}
    facts = []
    for lot_line in lot_lines:
        line = by_id[lot_line.line_id]
        product = products.get(line.product_id) if line.product_id is not None else None
        facts.append(
            LineFacts(lot_line.line_id, lot_line.quantity, lot_line.eligible, line.product_id, line.variant_id, product)
        )
    return tuple(facts)


def settings_rate(settings: ProgramSettings) -> Fraction:
    """The shop settings' points per unit of money: the base rate when no rule sets one."""
    return _settings_rate(settings.earn_points, settings.earn_per_amount)[0]


@lru_cache(maxsize=256)
def _settings_rate(points: int, per_amount: Decimal) -> tuple[Fraction, dict[str, Any]]:
    return Fraction(points) / Fraction(per_amount), explanations.detail(
        "rate", points=points, per_amount=str(per_amount)
    )


def _with_rules(
    lot: Lot,
    order: OrderSnapshot,
    settings: ProgramSettings,
    paid_at: datetime,
    rules: RuleSet,
    products: dict[int, Product],
    member_tags: frozenset[str],
    member_tier: MemberTier | None = None,
) -> Lot:
    facts = OrderFacts(
        lines=line_facts(order, lot.lines, products),
        shipping=lot.shipping,
        tip=lot.tip,
        paid_at=paid_at,
        label=order.name or f"order {order.order_id}",
    )
    rate, rate_detail = _settings_rate(settings.earn_points, settings.earn_per_amount)
    evaluation = earning_rules.evaluate(rules, facts, MemberContext(member_tags, member_tier), rate, rate_detail)
    contributions = tuple(c for c in evaluation.contributions if c.points != 0)
    points = max(sum(c.points for c in contributions), 0)
    parts = [c.detail for c in contributions] or evaluation.notes or [explanations.detail("nothing_eligible")]
    return Lot(
        **{
            **lot.__dict__,
            "points": points,
            # Before a shop's first rule set (version 0) the name stays what it always was.
            "rule_version": f"{lot.rule_version}+rules-{rules.version}" if rules.version else lot.rule_version,
            "excluded_lines": (*lot.excluded_lines, *evaluation.excluded),
            "contributions": contributions,
            "details": explanations.detail("lot", points=points, parts=parts, version=rules.version),
            "order_cap": evaluation.order_cap,
        }
    )


def points_to_hold(lot: Lot | None, refunds: Iterable[RefundFacts], cancelled: bool) -> int:
    """The points an order should hold given every fact known about it, in whatever order they came.

    Refunds take back each refunded line's share of that line's eligible amount (by quantity), so several
    partial refunds that together refund everything take back exactly the award, and never more.
    """
    if lot is None or cancelled or lot.points == 0:
        return 0
    if lot.contributions:
        refunds = tuple(refunds)
        if not refunds:
            return lot.points  # every contribution holds all it earned: the sum the lot already has
        refunded_quantity, refunded_shipping = _refunded(refunds)
        held = sum(_held(c, refunded_quantity, refunded_shipping) for c in lot.contributions)
        return min(max(held, 0), lot.points)
    return min(_points_for(lot, _remaining_amount(lot, refunds)), lot.points)


def points_without(lot: Lot | None, refunds: Iterable[RefundFacts], cancelled: bool, kind: str) -> int:
    """What the order holds now, leaving out contributions of one kind (a tier's own multiplier, for tiers).

    The order's cap is applied again to what is left, as the engine would have without that kind: otherwise a
    capped order's other contributions would shrink as the tier's share grew, and a tier would feed itself."""
    if lot is None or cancelled or lot.points == 0:
        return 0
    if not lot.contributions:
        return points_to_hold(lot, refunds, cancelled)
    if not any(c.kind == kind for c in lot.contributions):
        return points_to_hold(lot, refunds, cancelled)
    return points_to_hold(_recapped(lot, [c for c in lot.contributions if c.kind != kind]), refunds, cancelled)


def contribution_points_without(contributions: list[dict[str, Any]], kind: str, order_cap: int | None) -> int:
    """points_without for an order with no refund, read straight from its lot's JSON (what the tier preview and
    the tier recompute do for every order): the other contributions' sum, under the order's cap."""
    kept = sum(c["points"] for c in contributions if c["kind"] not in (kind, CAP_KIND))
    cap = _known_cap(order_cap, [(c["kind"], c["points"]) for c in contributions])
    return max(kept if cap is None else min(kept, cap), 0)


CAP_KIND = "cap"


def _known_cap(order_cap: int | None, kinds_points: list[tuple[str, int]]) -> int | None:
    """The order's cap: as the lot recorded it, or (lots made before it was recorded) read off its cap
    contribution, which brought the uncapped sum down to the cap."""
    if order_cap is not None:
        return order_cap
    capped = [points for kind, points in kinds_points if kind == CAP_KIND]
    if not capped:
        return None
    return sum(points for kind, points in kinds_points if kind != CAP_KIND) + sum(capped)


def _recapped(lot: Lot, kept: list[Contribution]) -> Lot:
    """The lot with these contributions, its cap contribution made again over them as the engine makes it."""
    cap = _known_cap(lot.order_cap, [(c.kind, c.points) for c in lot.contributions])
    uncapped = [c for c in kept if c.kind != CAP_KIND]
    total = sum(c.points for c in uncapped)
    old_cap = next((c for c in lot.contributions if c.kind == CAP_KIND), None)
    if cap is not None and total > cap:
        base = next((c for c in lot.contributions if c.kind == "base"), None)
        lines = old_cap.lines if old_cap else (base.lines if base else ())
        shipping = old_cap.shipping if old_cap else (base.shipping if base else lot.shipping)
        tip = old_cap.tip if old_cap else (base.tip if base else lot.tip)
        version = old_cap.rule_version if old_cap else (base.rule_version if base else 0)
        uncapped.append(
            Contribution(
                CAP_KIND, version, CAP_KIND, cap - total, explanations.detail("cap", points=cap), lines, None,
                shipping, tip,
            )
        )  # fmt: skip
    return Lot(**{**lot.__dict__, "contributions": tuple(uncapped), "points": max(sum(c.points for c in uncapped), 0)})


def retier(lot: Lot, tier: MemberTier | None, rules_version: int, order_cap: int | None = None) -> Lot:
    """The lot the engine would have made had the member held `tier` when the order was paid.

    Only the tier's own contribution and the cap change: the tier multiplier adds (multiplier - 1) x the base
    rate on the base award's lines (rules/tier_multiplier.py), and the cap comes last. So an order's points follow
    a correction of the tier it was paid under without re-running rules over today's products or settings.
    `order_cap` is the rule set's cap, for lots made before the lot recorded its own."""
    if not lot.contributions:
        return lot  # made before the rule engine: no tier share to change
    base = [c for c in lot.contributions if c.kind == "base"]
    kept = [c for c in lot.contributions if c.kind not in (TIER_KIND, CAP_KIND)]
    if tier is not None and tier.multiplier != 1 and base and base[-1].rate is not None:
        award = base[-1]
        amount = sum((eligible for _line, _qty, eligible in award.lines), Decimal(0))
        rate = award.rate * (Fraction(tier.multiplier) - 1)
        points = points_at(rate, amount)
        if points != 0:
            detail = explanations.detail("tier_multiplier", name=tier.name, factor=plain_number(tier.multiplier))
            share = Contribution(f"tier:{tier.tier_id}", tier.version, TIER_KIND, points, detail, award.lines, rate)
            kept.insert(_after_multipliers(kept), share)
    cap = lot.order_cap if lot.order_cap is not None else order_cap
    made = _recapped(Lot(**{**lot.__dict__, "order_cap": cap}), kept)
    parts = [c.detail for c in made.contributions] or [explanations.detail("nothing_eligible")]
    details = explanations.detail("lot", points=made.points, parts=parts, version=rules_version)
    return Lot(**{**made.__dict__, "details": details, "order_cap": lot.order_cap})


TIER_KIND = "tier"  # rules/tier_multiplier.KIND
MULTIPLIER_KINDS = ("base", "multiplier", "campaign")


def _after_multipliers(contributions: list[Contribution]) -> int:
    """Where the engine puts the tier's share: after the base award and the merchant's multipliers."""
    index = 0
    for position, contribution in enumerate(contributions):
        if contribution.kind in MULTIPLIER_KINDS:
            index = position + 1
    return index


def money_kept(lot: Lot | None, refunds: Iterable[RefundFacts], cancelled: bool) -> Decimal:
    """The eligible money an order still keeps after its refunds (0 when cancelled): what tiers call spend."""
    if lot is None or cancelled:
        return Decimal(0)
    remaining = _remaining_amount(lot, refunds)
    return (Decimal(remaining.numerator) / Decimal(remaining.denominator)).quantize(Decimal("0.01"))


def _refunded(refunds: Iterable[RefundFacts]) -> tuple[Counter[int], Decimal]:
    quantities: Counter[int] = Counter()
    shipping = Decimal(0)
    for refund in refunds:
        quantities.update(refund.line_quantities)
        shipping += refund.shipping
    return quantities, shipping


def _held(contribution: Contribution, refunded_quantity: Counter[int], refunded_shipping: Decimal) -> int:
    """What one contribution still holds: its share of what remains of its own eligible money.

    A rate contribution holds rate x remaining money; a fixed one holds points x remaining / original money
    (by quantity when its lines had no money). Both round toward zero and never exceed the points earned, so
    refunds of everything take back exactly the contribution, whatever order they come in.
    """
    # Exact sums as (numerator, denominator) pairs of integers: the same values Fraction would give, at a
    # fraction of its cost (a preview runs this for every refunded order twice).
    remaining_n, remaining_d = 0, 1
    original_n, original_d = 0, 1
    kept_units = total_units = 0
    for line_id, quantity, eligible in contribution.lines:
        kept = max(quantity - refunded_quantity[line_id], 0)
        n, d = eligible.as_integer_ratio()
        remaining_n, remaining_d = remaining_n * d * quantity + n * kept * remaining_d, remaining_d * d * quantity
        original_n, original_d = original_n * d + n * original_d, original_d * d
        kept_units += kept
        total_units += quantity
    kept_shipping = max(contribution.shipping - refunded_shipping, Decimal(0))
    extra_n, extra_d = (kept_shipping + contribution.tip).as_integer_ratio()
    remaining_n, remaining_d = remaining_n * extra_d + extra_n * remaining_d, remaining_d * extra_d
    extra_n, extra_d = (contribution.shipping + contribution.tip).as_integer_ratio()
    original_n, original_d = original_n * extra_d + extra_n * original_d, original_d * extra_d
    if contribution.rate is not None:
        held = _toward_zero(remaining_n * contribution.rate.numerator, remaining_d * contribution.rate.denominator)
    elif original_n > 0:
        held = _toward_zero(contribution.points * remaining_n * original_d, remaining_d * original_n)
    elif total_units > 0:
        held = _toward_zero(contribution.points * kept_units, total_units)
    else:
        held = contribution.points  # an order-level contribution with no lines: only cancellation takes it back
    return max(min(held, contribution.points), 0) if contribution.points > 0 else min(max(held, contribution.points), 0)


def _toward_zero(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded toward zero, as int(Fraction(...)) does; denominator > 0."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


def _remaining_amount(lot: Lot, refunds: Iterable[RefundFacts]) -> Fraction:
    refunded_quantity: Counter[int] = Counter()
    refunded_shipping = Decimal(0)
    for refund in refunds:
        refunded_quantity.update(refund.line_quantities)
        refunded_shipping += refund.shipping
    remaining = Fraction(0)
    for line in lot.lines:
        kept = max(line.quantity - refunded_quantity[line.line_id], 0)
        remaining += Fraction(line.eligible) * kept / line.quantity
    remaining += Fraction(max(lot.shipping - refunded_shipping, Decimal(0)))
    remaining += Fraction(lot.tip)
    return remaining


def _points_for(lot: Lot, amount: Fraction) -> int:
    # The only rounding in the programme: points are rounded down, computed exactly (no floats).
    return int(amount * lot.earn_points / Fraction(lot.earn_per_amount)) if amount > 0 else 0


def _with_points(lot: Lot, points: int) -> Lot:
    return Lot(**{**lot.__dict__, "points": points})
