"""The compiled points-only tally gives exactly the engine's points (build_lot) on random rule sets and orders."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from plugin.programme import earning, order_facts
from plugin.programme import rules as earning_rules
from plugin.programme.earning import ProgramSettings
from plugin.programme.rules import tally
from plugin.programme.rules.core import MemberTier, Product

PAID_AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
TYPES = ("Outerwear", "SHIRTS", "shoes")
VENDORS = ("Acme", "giftco")
TAGS = ("Winter", "sale", "new")
COLLECTIONS = ("c1", "c2")
MEMBER_TAGS = ("card-member", "VIP", "staff")
PRODUCT_IDS = range(500, 508)  # 506 and 507 are never cached
VARIANT_IDS = range(900, 904)


def products(rng: random.Random) -> dict[int, Product]:
    return {
        pid: Product(
            pid,
            rng.choice(TYPES),
            rng.choice(VENDORS),
            frozenset(rng.sample(TAGS, rng.randint(0, 2))),
            None if rng.random() < 0.3 else frozenset(rng.sample(COLLECTIONS, rng.randint(0, 2))),
        )
        for pid in PRODUCT_IDS[:6]
    }


def match(rng: random.Random, everything_allowed: bool = True) -> dict:
    options = {
        "product_ids": lambda: rng.sample(list(PRODUCT_IDS), rng.randint(1, 2)),
        "variant_ids": lambda: rng.sample(list(VARIANT_IDS), 1),
        "product_types": lambda: [rng.choice(TYPES).lower()],
        "vendors": lambda: [rng.choice(VENDORS).upper()],
        "tags": lambda: [rng.choice(TAGS)],
        "collections": lambda: [rng.choice(COLLECTIONS)],
    }
    keys = rng.sample(list(options), rng.randint(0 if everything_allowed else 1, 2))
    return {key: options[key]() for key in keys}


def money(rng: random.Random, *choices: str) -> str:
    return rng.choice(choices)


def rule(rng: random.Random) -> dict:
    kind = rng.choice(
        ["base_rate", "customer_segment", "exclusion", "multiplier", "fixed_points", "campaign", "points_cap"]
    )
    if kind == "base_rate":
        data: dict = {"type": kind}
        if rng.random() < 0.8:
            data.update(points=rng.randint(0, 7), per_amount=money(rng, "1", "0.5", "3", "100", "0.07"))
        if rng.random() < 0.3:
            data["min_subtotal"] = money(rng, "10", "50.00", "120")
        if rng.random() < 0.3:
            data["cap_per_order"] = rng.randint(0, 400)
        return data
    if kind == "customer_segment":
        return {"type": kind, "tag": rng.choice(MEMBER_TAGS).lower(), "points": rng.randint(0, 9),
                "per_amount": money(rng, "1", "2", "100", "0.3")}  # fmt: skip
    if kind == "exclusion":
        return {"type": kind, "match": match(rng, everything_allowed=False)}
    if kind == "multiplier":
        return {"type": kind, "multiplier": money(rng, "0.5", "1", "1.5", "2", "3", "1.25"), "match": match(rng)}
    if kind == "fixed_points":
        return {"type": kind, "points": rng.randint(1, 300), **({"min_subtotal": "40"} if rng.random() < 0.4 else {})}
    if kind == "points_cap":
        return {"type": kind, "max_points": rng.randint(0, 600)}
    start = PAID_AT - timedelta(hours=rng.choice([-30, -5, 2, 10, 40]))  # some campaigns are over or not yet on
    campaign = {
        "type": kind,
        "name": "Sale",
        "starts_at": start.replace(tzinfo=None).isoformat(),
        "ends_at": (start + timedelta(hours=rng.choice([3, 24, 72]))).replace(tzinfo=None).isoformat(),
        "match": match(rng),
    }
    if rng.random() < 0.3:
        campaign["customer_tag"] = rng.choice(MEMBER_TAGS)
    if rng.random() < 0.7:
        campaign["multiplier"] = money(rng, "2", "1.5", "3", "0.5", "1.3333")
    else:
        campaign["bonus_points"] = rng.randint(1, 200)
    return campaign


def rule_set(rng: random.Random, version: int) -> earning_rules.RuleSet:
    data = {
        "time_zone": rng.choice(["UTC", "America/New_York", "Asia/Kolkata"]),
        "campaign_stack_cap": money(rng, "1", "2", "2.5", "4"),
        "rules": [rule(rng) for _ in range(rng.randint(0, 8))],
    }
    return earning_rules.rule_set(earning_rules.validate_rule_set(data), version)


def settings(rng: random.Random) -> ProgramSettings:
    return ProgramSettings(
        earn_points=rng.randint(1, 5),
        earn_per_amount=Decimal(money(rng, "1.00", "0.50", "10", "3")),
        include_shipping=rng.random() < 0.5,
        include_taxes=rng.random() < 0.5,
        include_tips=rng.random() < 0.5,
        include_gift_cards=rng.random() < 0.3,
        earn_on_test_orders=rng.random() < 0.5,
    )


def facts(rng: random.Random) -> dict:
    """An order's stored facts (order_facts.to_json's layout): lines as strings, as the preview reads them."""
    lines = []
    for index in range(rng.randint(0, 4)):
        gross = Decimal(rng.randint(0, 40000)) / 100
        lines.append([
            index + 1, rng.choice([0, 1, 1, 2, 3]), str(gross), str(min(Decimal(rng.randint(0, 3000)) / 100, gross)),
            str(Decimal(rng.randint(0, 900)) / 100), rng.random() < 0.1,
            None if rng.random() < 0.1 else rng.choice(PRODUCT_IDS), rng.choice([None, *VARIANT_IDS]),
        ])  # fmt: skip
    return {
        "name": "#1", "currency": "USD", "test": rng.random() < 0.1, "taxes_included": rng.random() < 0.5,
        "shipping": money(rng, "0", "4.99", "12.50"), "shipping_tax": money(rng, "0", "1.00"),
        "tip": money(rng, "0", "3.00"), "lines": lines,
        "member_tags": rng.sample(MEMBER_TAGS, rng.randint(0, 2)) + (["card-member"] if rng.random() < 0.3 else []),
        "paid_at": (PAID_AT + timedelta(minutes=rng.randint(-3000, 3000))).isoformat(),
    }  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_the_tally_gives_the_engines_points_on_random_rule_sets_and_orders(seed):
    rng = random.Random(seed)
    cached = products(rng)
    shop = settings(rng)
    rules = rule_set(rng, seed + 1)
    tier = rng.choice([None, MemberTier("gold", "Gold", Decimal(money(rng, "1", "1.5", "2")), 3)])
    points = tally.compile_points(rules, earning.settings_rate(shop), cached, tier)
    differences = []
    for order_id in range(150):
        data = facts(rng)
        snapshot = order_facts.snapshot_from_json(order_id, data)
        paid_at, tags = order_facts.paid_at(data), order_facts.member_tags(data)
        lot = earning.build_lot(
            snapshot, shop, paid_at, has_member=True, rules=rules, products=cached, member_tags=tags, member_tier=tier
        )
        money_strings = (data["shipping"], data["shipping_tax"], data["tip"])
        fast = earning.tallied_points(
            points, shop, data["lines"], data["taxes_included"], data["test"], money_strings, paid_at, tags
        )
        expected = earning.points_to_hold(lot, (), False)
        if fast != expected:
            differences.append((order_id, expected, fast))
    assert differences == [], f"seed {seed}: (order, engine, tally) {differences[:5]}"


def test_the_random_orders_reach_every_rule_kind_and_the_cap():
    """The comparison above is only worth something if its rule sets fire: count what the engine's lots hold."""
    kinds = set()
    for seed in range(40):
        rng = random.Random(seed)
        cached, shop, rules = products(rng), settings(rng), rule_set(rng, seed + 1)
        for order_id in range(150):
            data = facts(rng)
            lot = earning.build_lot(
                order_facts.snapshot_from_json(order_id, data), shop, order_facts.paid_at(data), has_member=True,
                rules=rules, products=cached, member_tags=order_facts.member_tags(data),
            )  # fmt: skip
            kinds |= {c.kind for c in lot.contributions}
            kinds |= {c.rule_id.split("-")[0] for c in lot.contributions}
    assert {"base", "multiplier", "bonus", "campaign", "cap", "customer_segment", "fixed_points"} <= kinds
