"""The realistic programme of the end-to-end run (issue #21), set up through the app's services as a merchant would."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from plugin.db import transaction
from plugin.programme.events import ProductFacts
from plugin.services import accrual, event_endpoints, rule_sets, shops, tier_sets
from plugin.services.milestones import settings as milestone_settings

ACTOR = "bench"
# The products the deliveries' lines name, with the product type the two multipliers match on; the third type
# matches none, so some orders earn the base alone while others get one or both multipliers.
PRODUCTS = {7_001: "Shoes", 7_002: "Outerwear", 7_003: "Accessories"}
TIERS = {
    "metric": "spend",
    "period": "calendar_year",
    "grace_days": 30,
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "1000.00", "multiplier": "1.25"},
        {"id": "gold", "name": "Gold", "threshold": "2500.00", "multiplier": "1.5", "entry_reward": 250},
    ],
}
MILESTONES = {
    "thresholds": [{"id": "spend-2000", "title": "2,000 spent", "amount": "2000.00", "period": "lifetime",
                    "points": 200}],
    "punch_cards": [{"id": "every-4th", "title": "Every 4th order", "every": 4, "min_subtotal": "50.00",
                     "points": 100}],
}  # fmt: skip


def rules(now: datetime) -> dict[str, Any]:
    """The earning rules: the base rate, two multipliers by product type, and a campaign running around `now`."""
    return {
        "time_zone": "UTC",
        "campaign_stack_cap": "3",
        "rules": [
            {"type": "base_rate", "id": "base", "points": 1, "per_amount": "1.00"},
            {"type": "multiplier", "id": "shoes", "name": "Shoes", "multiplier": "2",
             "match": {"product_types": ["Shoes"]}},
            {"type": "multiplier", "id": "outerwear", "name": "Outerwear", "multiplier": "1.5",
             "match": {"product_types": ["Outerwear"]}},
            # Wall-clock times in the rule set's zone (UTC), a day either side of the run: paid orders fall inside.
            {"type": "campaign", "id": "winter", "name": "Winter weekend", "multiplier": "2",
             "starts_at": (now - timedelta(days=1)).replace(tzinfo=None, microsecond=0).isoformat(),
             "ends_at": (now + timedelta(days=1)).replace(tzinfo=None, microsecond=0).isoformat()},
        ],
    }  # fmt: skip


def line_products(n: int) -> tuple[int, int]:
    """The products of delivery n's two lines: the nine pairs of PRODUCTS in turn."""
    ids = list(PRODUCTS)
    return ids[n % 3], ids[n // 3 % 3]


def seed(database_url: str, domain: str, receiver_url: str, keys: tuple[str, ...], now: datetime) -> str:
    """Cache the products, save the rules, tiers and milestones, register the event endpoint; returns its secret.

    Products go through `accrual.product_known`, what a products/update webhook runs, so no order of the run
    waits for a product look-up. The endpoint is a loopback receiver, which `keys` encrypt the secret of.
    """
    with transaction(database_url) as session:
        shop = shops.get(session, domain)
        for product_id, product_type in PRODUCTS.items():
            facts = ProductFacts(product_id, product_type=product_type, vendor="Bench Outfitters",
                                 skus=frozenset({f"BENCH-{product_id}"}))  # fmt: skip
            accrual.product_known(session, shop, facts)
        rule_sets.save(session, shop, rules(now), ACTOR)
        tier_sets.save(session, shop, TIERS, ACTOR)
        milestone_settings.save(session, shop, MILESTONES, ACTOR)
        _endpoint, secret = event_endpoints.register(
            session, shop.id, receiver_url, keys, description="bench receiver", allow_loopback=True
        )
    return secret
