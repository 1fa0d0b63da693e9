"""Who moves: the per-member sums in PostgreSQL give exactly the tiers the order-by-order replay (tier_at) gives."""

from __future__ import annotations

import random
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from plugin.db import transaction
from plugin.models import utcnow
from plugin.programme import events
from plugin.programme import tiers as tier_rules
from plugin.services import accrual, rule_sets, shops, tier_preview, tier_sets
from plugin.services.shops import zone
from tests.conftest import SHOP

# Amounts that leave fractions of a cent after a partial refund (10.00 / 3, 0.05 / 2), so the half-even rounding
# of each order's spend is compared too.
AMOUNTS = ("10.00", "0.05", "33.33", "120.00", "0.15", "250.50", "99.99")


@pytest.fixture
def history(settings, shop):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the per-member sums are PostgreSQL's; SQLite replays the facts")
    rng = random.Random(16)
    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), {"rules": [
            {"type": "multiplier", "multiplier": "2", "match": {"product_ids": [501]}},
            {"type": "fixed_points", "points": 5}]}, "test")  # fmt: skip
    now = utcnow()
    for order_id in range(1, 91):
        lines = tuple(
            events.OrderLine(order_id * 10 + i, quantity, Decimal(rng.choice(AMOUNTS)) * quantity,
                             product_id=rng.choice([501, 502, None]))
            for i, quantity in enumerate(rng.choices([1, 2, 3], k=rng.randint(1, 3)))
        )  # fmt: skip
        customer = events.Customer(7000 + rng.randint(1, 25))
        snapshot = events.OrderSnapshot(order_id, f"#{order_id}", customer, None, "USD", False, False, lines)
        paid_at = now - timedelta(days=rng.randint(0, 1100), hours=rng.randint(0, 23))
        with transaction(settings.database_url) as session:
            shop_row = shops.get(session, SHOP)
            accrual.apply(session, shop_row, events.OrderPaid(snapshot, paid_at))
            roll = rng.random()
            if roll < 0.1:
                accrual.apply(session, shop_row, events.OrderCancelled(snapshot))
            elif roll < 0.4:
                refunded = {line.line_id: rng.randint(1, line.quantity) for line in rng.sample(lines, 1)}
                accrual.apply(session, shop_row, events.OrderRefunded(events.RefundFacts(900 + order_id, order_id,
                                                                                         refunded)))  # fmt: skip
    return settings, now


def programme(rng: random.Random) -> dict:
    metric = rng.choice(["spend", "points", "orders"])
    scale = {"spend": ("5", "40", "150", "400", "1000"), "points": ("5", "60", "300", "900", "2500"),
             "orders": ("1", "2", "3", "5", "8")}[metric]  # fmt: skip
    thresholds = sorted(rng.sample(scale, rng.randint(1, 3)), key=Decimal)
    return {
        "metric": metric,
        "period": rng.choice(["lifetime", "calendar_year"]),
        "grace_days": rng.choice([0, 14, 90, 365]),
        "tiers": [{"id": f"t{i}", "name": f"T{i}", "threshold": t} for i, t in enumerate(thresholds)],
    }


def test_the_sums_give_the_tiers_the_replay_gives_for_random_programmes_and_instants(history):
    settings, now = history
    rng = random.Random(1316)
    seen = set()
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        for _ in range(40):
            data = programme(rng)
            candidate = tier_rules.TierProgramme.from_json(tier_sets.validate(session, shop.id, data), 9)
            at = now - timedelta(days=rng.choice([0, 0, 30, 200, 380, 700]), hours=rng.randint(0, 23))
            deadline = time.monotonic() + 60
            replayed, replay_complete = tier_preview._after_from_facts(
                session, shop.id, candidate, at, zone(shop), {}, deadline
            )
            summed, sums_complete = tier_preview._after_from_sums(
                session, shop.id, candidate, at, zone(shop), {}, deadline
            )
            assert replay_complete and sums_complete
            assert summed == replayed, (data, at)
            seen |= set(replayed.values())
    assert len(seen) >= 3  # the comparison covered members without a tier and in more than one tier


@pytest.mark.parametrize(("threshold", "tier"), [("50.02", "t0"), ("50.03", None), ("100.05", None)])
def test_a_half_cent_of_spend_rounds_to_even_in_the_sums_as_in_the_replay(settings, shop, threshold, tier):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the per-member sums are PostgreSQL's; SQLite replays the facts")
    line = events.OrderLine(10, 2, Decimal("100.05"))
    snapshot = events.OrderSnapshot(1, "#1", events.Customer(7001), None, "USD", False, False, (line,))
    with transaction(settings.database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), events.OrderPaid(snapshot, utcnow() - timedelta(days=1)))
        # One of two units back: 50.025 kept, which is 50.02 to the cent, half to even.
        accrual.apply(session, shops.get(session, SHOP), events.OrderRefunded(events.RefundFacts(91, 1, {10: 1})))
    data = {"metric": "spend", "period": "lifetime", "tiers": [{"id": "t0", "name": "T0", "threshold": threshold}]}
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        candidate = tier_rules.TierProgramme.from_json(tier_sets.validate(session, shop_row.id, data), 2)
        args = (session, shop_row.id, candidate, utcnow(), zone(shop_row), {}, time.monotonic() + 60)
        replayed, _ = tier_preview._after_from_facts(*args)
        summed, _ = tier_preview._after_from_sums(*args)
    assert list(summed.values()) == list(replayed.values()) == [tier]
