"""The rule preview on a shop with tiers: both sides apply the tier each order's facts record, refunded or not."""

from __future__ import annotations

import random

from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import Order
from plugin.programme import events
from plugin.services import accrual, preview, rule_sets, shops, tier_sets
from tests.conftest import SHOP
from tests.test_earning_preview import X2, pay

# Fractional and whole multipliers, so the tier's share is rounded like the engine rounds it.
TIERS = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100", "multiplier": "1.5"},
        {"id": "gold", "name": "Gold", "threshold": "300", "multiplier": "2"},
    ],
}
CURRENT = {"rules": [*X2["rules"], {"type": "points_cap", "max_points": 700}]}
DOUBLE_BASE = {"rules": [{"type": "base_rate", "points": 2, "per_amount": "1"}]}


def save_tiers(settings) -> None:
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")


def refund(settings, refund_id: int, order_id: int, lines: dict[int, int]) -> None:
    with transaction(settings.database_url) as session:
        accrual.apply(
            session, shops.get(session, SHOP), events.OrderRefunded(events.RefundFacts(refund_id, order_id, lines))
        )


def run_preview(settings, proposed: dict) -> dict:
    with transaction(settings.database_url) as session:
        return preview.preview(session, shops.get(session, SHOP), proposed, 30)


def held_in_all(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.execute(select(func.sum(Order.points_held))).scalar_one()


def tiered_orders(settings, refunded: set[int]) -> tuple[int, int]:
    """(orders whose lot holds a tier's share, of which refunded): what makes the comparison worth something."""
    with transaction(settings.database_url) as session:
        lots = session.execute(select(Order.order_id, Order.lot)).all()
    tiered = {oid for oid, lot in lots if any(c["kind"] == "tier" and c["points"] for c in lot["contributions"])}
    return len(tiered), len(tiered & refunded)


def test_previewing_the_current_rules_on_a_shop_with_tiers_and_refunds_changes_nothing(settings, shop):
    save_tiers(settings)
    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), CURRENT, "test")
    rng = random.Random(13)
    refunded: set[int] = set()
    # Shuffled arrival (paid days are random), so some orders' tiers are corrected after their lot was made.
    for order_id in range(1, 41):
        lines = [
            (f"{rng.randint(500, 25000) / 100:.2f}", rng.choice([501, 502, None])) for _ in range(rng.randint(1, 3))
        ]
        pay(settings, order_id, rng.choice([7001, 7002, 7003]), *lines, days_ago=rng.randint(1, 25))
        if rng.random() < 0.3:
            refunded.add(order_id)
            refunded_lines = rng.sample(range(len(lines)), rng.randint(1, len(lines)))
            refund(settings, 900 + order_id, order_id, {order_id * 10 + i: 1 for i in refunded_lines})
    tiered, tiered_and_refunded = tiered_orders(settings, refunded)
    assert tiered >= 10 and tiered_and_refunded >= 3  # the tier's share is in many lots, refunded ones too

    same = run_preview(settings, CURRENT)  # stored lots made under the current rules: the current side reads them
    assert same["complete"] is True and same["orders_replayed"] == 40
    assert same["points_issued"]["current"] == held_in_all(settings)  # what the ledger holds for those orders
    assert same["points_issued"]["proposed"] == same["points_issued"]["current"]
    assert same["points_issued"]["change"] == 0
    assert (same["members_affected"], same["largest_changes"]) == (0, [])

    with transaction(settings.database_url) as session:  # a new version: every lot is older, both sides evaluated
        rule_sets.save(session, shops.get(session, SHOP), CURRENT, "test")
    again = run_preview(settings, CURRENT)
    assert again["points_issued"] == same["points_issued"]
    assert (again["members_affected"], again["largest_changes"]) == (0, [])


def test_doubling_the_base_rate_doubles_the_tier_share_too(settings, shop):
    save_tiers(settings)
    pay(settings, 1, 7001, ("300.00", None), days_ago=3)  # no tier yet: 300; then Gold (x2)
    pay(settings, 2, 7001, ("100.00", None), days_ago=2)  # Gold: 100 + 100 tier share
    pay(settings, 3, 7001, ("100.00", None), ("50.00", None), days_ago=1)  # Gold: 300, then its 50.00 refunded
    refund(settings, 31, 3, {31: 1})
    result = run_preview(settings, DOUBLE_BASE)
    # By hand, at 2 points per 1.00 with Gold's share (x2 - 1) on top:
    #   #1: 300 -> 600; #2: 200 -> 200 + 200 = 400; #3 keeps 100.00: 200 -> 400.
    assert result["points_issued"] == {"current": 700, "proposed": 1400, "change": 700}
    assert result["members_affected"] == 1
    assert [(c["order_id"], c["current"], c["proposed"]) for c in result["largest_changes"]] == [
        (1, 300, 600), (3, 200, 400), (2, 200, 400)
    ]  # fmt: skip
