"""Preview a proposed rule set: replay the shop's stored order facts of the last N days under it and under the
current rules, and compare. Read-only, and bounded in time: a replay past its deadline says it is partial.

The current side reuses each order's stored lot when the lot was made under the current rules and settings
(the usual case): what it holds is the lot's points, or, after refunds, what the lot's contributions keep.
Only orders whose lot is missing or older than the current rules are evaluated twice. That halves the work of
a preview, which is what keeps a 100,000-order shop under 10 s (docs/benchmarks.md, `bench/preview.py`).

Both sides evaluate an order with the tier its facts record (`member_tier`, the one its lot was made or
corrected with, decision 0032): a stored lot holds the tier's share, so leaving the tier out of either side would
show that share as a change under any proposal (decision 0036)."""

from __future__ import annotations

import heapq
import json
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import Member, Order, Product, Refund, Shop, utcnow
from plugin.programme import earning as program
from plugin.programme import events, order_facts
from plugin.programme import rules as earning_rules
from plugin.programme.earning import ProgramSettings
from plugin.programme.rewards import catalogue
from plugin.programme.rules import tally
from plugin.programme.rules.core import MemberTier
from plugin.programme.settings import program_settings
from plugin.services import rule_sets

MAX_DAYS = 366
NO_TAGS: frozenset[str] = frozenset()
DEFAULT_SECONDS = 9.0


def preview(
    session: Session,
    shop: Shop,
    proposed: Any,
    days: int = 30,
    *,
    seconds: float = DEFAULT_SECONDS,
    confirmed: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Points the last `days` of paid orders hold under the current rules and under `proposed`.

    Raises marshmallow.ValidationError (per field) when `proposed` is not a valid rule set.
    """
    clean = rule_sets.validate(session, shop.id, proposed, confirmed)  # confirmed: rule_sets.confirm_collections
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}")
    deadline = time.monotonic() + seconds
    current = earning_rules.rule_set(shop.rules, shop.rules_version)
    candidate = earning_rules.rule_set(clean, shop.rules_version + 1)
    settings = program_settings(shop.settings, shop.settings_version)
    since = utcnow() - timedelta(days=days)
    products = _products(session, shop.id) if current.needs_products or candidate.needs_products else {}
    refunds, stored_lots = _refunds(session, shop.id, since)

    current_lot_version = _lot_version(settings, current)
    base_rate = program.settings_rate(settings)
    current_points = _compiled_per_tier(current, base_rate, products)
    candidate_points = _compiled_per_tier(candidate, base_rate, products)
    tier_of = _tier_reader()
    totals = {"current": 0, "proposed": 0}
    by_member: dict[int, int] = defaultdict(int)
    changes: list[tuple[int, int, int, int, int | None]] = []  # (|change|, order id, current, proposed, member)
    replayed = 0
    complete = True
    no_refunds: tuple[events.RefundFacts, ...] = ()
    tallied = program.tallied_points
    facts = Order.facts
    rows = session.execute(
        select(
            Order.order_id,
            Order.member_id,
            Order.cancelled_at.is_not(None),  # a flag: no timestamp decoded per row
            Order.lot["rule_version"].as_string(),
            Order.lot["points"].as_integer(),
            # Only what the rules read, not the whole facts document (its contact keys, codes, names); the lines and
            # tags as JSON text, decoded here (most orders' tags are "[]", which needs no decoding).
            facts["lines"].as_string(),
            facts["paid_at"].as_string(),
            facts["member_tags"].as_string(),
            facts["taxes_included"].as_boolean(),
            facts["test"].as_boolean(),
            facts["shipping"].as_string(),
            facts["shipping_tax"].as_string(),
            facts["tip"].as_string(),
            facts["member_tier"].as_string(),  # JSON text or None: the tier the order's lot was made with
        )
        .where(Order.shop_id == shop.id, Order.paid_at >= since, Order.facts.is_not(None))
        .order_by(Order.paid_at.desc())
        .execution_options(yield_per=2000)
    )
    for row in rows:
        if replayed % 256 == 0 and time.monotonic() > deadline:
            complete = False
            rows.close()  # the server-side cursor, left open by a loop that stops early
            break
        replayed += 1
        order_id, member_id, cancelled, lot_version, lot_points, lines_json, paid_text, tags_json = row[:8]
        if cancelled or member_id is None:
            continue  # holds nothing under any rules
        taxes_included, test, shipping, shipping_tax, tip, tier_json = row[8:]
        tier = tier_of(tier_json)
        raw_lines = json.loads(lines_json)
        paid_at = datetime.fromisoformat(paid_text)
        tags = NO_TAGS if tags_json is None or tags_json == "[]" else frozenset(json.loads(tags_json))
        money = (shipping, shipping_tax, tip)
        order_refunds = refunds.get(order_id, no_refunds)
        if order_refunds:
            # A refund needs each contribution's share: the engine's lot, as the webhooks make it.
            stored = (lot_version, lot_points, current_lot_version)
            facts_read = (raw_lines, paid_at, tags, tier, bool(taxes_included), bool(test), money)
            was, now = _held_after_refunds(
                order_id, facts_read, stored, order_refunds, stored_lots, settings, current, candidate, products
            )
        else:
            if lot_version == current_lot_version and lot_points is not None:
                was = max(lot_points, 0)
            else:
                was = tallied(
                    current_points(tier), settings, raw_lines, bool(taxes_included), test, money, paid_at, tags
                )
            now = tallied(candidate_points(tier), settings, raw_lines, bool(taxes_included), test, money, paid_at, tags)
        totals["current"] += was
        totals["proposed"] += now
        change = now - was
        if change:
            by_member[member_id] += change
            entry = (abs(change), order_id, was, now, member_id)
            if len(changes) < 10:
                heapq.heappush(changes, entry)
            elif entry > changes[0]:
                heapq.heapreplace(changes, entry)
    largest = sorted(changes, reverse=True)
    customers = _customers(session, shop.id, {member for *_, member in largest if member is not None})
    rate = cheapest_rate(shop.settings)
    return {
        "days": days,
        "complete": complete,
        "orders_replayed": replayed,
        "current_version": current.version,
        "proposed_version": candidate.version,
        "points_issued": {**totals, "change": totals["proposed"] - totals["current"]},
        "money_value": {
            "currency": shop.currency,
            "per_point": None if rate is None else str(rate),
            **{key: _value(points, rate) for key, points in totals.items()},
            "change": _value(totals["proposed"] - totals["current"], rate),
        },
        "members_affected": sum(1 for change in by_member.values() if change),
        "largest_changes": [
            {
                "order_id": order_id,
                "customer_id": customers.get(member),
                "current": was,
                "proposed": now,
                "change": now - was,
            }
            for _, order_id, was, now, member in largest
        ],
    }


def cheapest_rate(settings_json: dict[str, Any] | None) -> Decimal | None:
    """Money per point at the catalogue's cheapest fixed-amount reward (percentage rewards have no fixed value)."""
    rates = [reward.amount / reward.points for reward in catalogue(settings_json) if reward.amount is not None]
    return min(rates) if rates else None


def _value(points: int, rate: Decimal | None) -> str | None:
    if rate is None:
        return None
    return str((rate * points).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN))


def _products(session: Session, shop_id: int) -> dict[int, earning_rules.Product]:
    rows = session.execute(
        select(Product.product_id, Product.product_type, Product.vendor, Product.tags, Product.collections).where(
            Product.shop_id == shop_id
        )
    )
    return {
        pid: earning_rules.Product(pid, ptype, vendor, frozenset(tags or ()), None if cols is None else frozenset(cols))
        for pid, ptype, vendor, tags, cols in rows
    }


def _compiled_per_tier(
    rules: earning_rules.RuleSet, base_rate: Fraction, products: dict[int, earning_rules.Product]
) -> Callable[[MemberTier | None], Callable[..., int]]:
    """The rule set's tally for a tier, compiled the first time an order with that tier is met: the tier's
    multiplier is one of the tally's stages, and a shop has only a handful of tiers."""
    compiled: dict[MemberTier | None, Callable[..., int]] = {}

    def for_tier(tier: MemberTier | None) -> Callable[..., int]:
        if tier not in compiled:
            compiled[tier] = tally.compile_points(rules, base_rate, products, tier)
        return compiled[tier]

    return for_tier


def _tier_reader() -> Callable[[str | None], MemberTier | None]:
    """An order's recorded tier from its facts' JSON text, decoded once per distinct text."""
    seen: dict[str | None, MemberTier | None] = {None: None}

    def tier_of(text: str | None) -> MemberTier | None:
        if text not in seen:
            seen[text] = order_facts.member_tier({"member_tier": json.loads(text)})
        return seen[text]

    return tier_of


def _lot_version(settings: ProgramSettings, rules: earning_rules.RuleSet) -> str:
    """The rule_version a lot made now under these settings and rules carries (see earning._with_rules)."""
    return f"{settings.rule_version}+rules-{rules.version}" if rules.version else settings.rule_version


def _held_after_refunds(
    order_id: int,
    facts_read: tuple,
    stored: tuple[str | None, int | None, str],
    refunds: tuple[events.RefundFacts, ...] | list[events.RefundFacts],
    stored_lots: dict,
    settings: ProgramSettings,
    current: earning_rules.RuleSet,
    candidate: earning_rules.RuleSet,
    products: dict[int, earning_rules.Product],
) -> tuple[int, int]:
    """A refunded order's points under the current and the proposed rules, each contribution reversed by its share."""
    raw_lines, paid_at, tags, tier, taxes_included, test, (shipping, shipping_tax, tip) = facts_read
    lot_version, lot_points, current_lot_version = stored
    snapshot = order_facts.snapshot_from_json(
        order_id,
        {
            "currency": "", "test": test, "taxes_included": taxes_included, "lines": raw_lines,
            "shipping": shipping, "shipping_tax": shipping_tax, "tip": tip,
        },
    )  # fmt: skip

    def held(rules: earning_rules.RuleSet) -> int:
        lot = program.build_lot(
            snapshot, settings, paid_at, has_member=True, rules=rules, products=products, member_tags=tags,
            member_tier=tier,
        )  # fmt: skip
        return program.points_to_hold(lot, refunds, False)

    if lot_version == current_lot_version and lot_points is not None:
        was = _held_by_stored_lot(order_id, lot_points, refunds, stored_lots)
    else:
        was = held(current)
    return was, held(candidate)


def _held_by_stored_lot(
    order_id: int, points: int, refunds: tuple[events.RefundFacts, ...] | list[events.RefundFacts], lots: dict
) -> int:
    """What an order's stored lot holds after its refunds: its points, or its contributions' remaining share."""
    if not refunds:
        return max(points, 0)
    return program.points_to_hold(program.Lot.from_json(lots[order_id]), refunds, False)


def _refunds(
    session: Session, shop_id: int, since
) -> tuple[dict[int, list[events.RefundFacts]], dict[int, dict[str, Any]]]:
    """Every refund of the window's orders, and the stored lots of the orders refunded, in one query."""
    rows = session.execute(
        select(Refund.order_id, Refund.refund_id, Refund.facts, Order.lot)
        .join(Order, (Order.shop_id == Refund.shop_id) & (Order.order_id == Refund.order_id))
        .where(Refund.shop_id == shop_id, Order.paid_at >= since)
    )
    found: dict[int, list[events.RefundFacts]] = defaultdict(list)
    lots: dict[int, dict[str, Any]] = {}
    for order_id, refund_id, facts, lot in rows:
        if lot is not None:
            lots[order_id] = lot
        found[order_id].append(
            events.RefundFacts(
                refund_id,
                order_id,
                {int(k): int(v) for k, v in facts["line_quantities"].items()},
                Decimal(facts["shipping"]),
            )
        )
    return found, lots


def _customers(session: Session, shop_id: int, member_ids: set[int]) -> dict[int, int]:
    if not member_ids:
        return {}
    rows = session.execute(
        select(Member.id, Member.customer_id).where(Member.shop_id == shop_id, Member.id.in_(member_ids))
    )
    return dict(rows.all())
