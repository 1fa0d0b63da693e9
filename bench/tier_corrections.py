"""Times what exact tier multipliers add to an order's transaction (decision 0032).

M members each pay K orders through `accrual.apply` (one transaction per event, as the inbox applies them), in
three shops of the same run: no tiers (the baseline); tiers with multipliers, orders delivered oldest first (the
natural order: the tier at each order's paid moment is read from the member's facts, nothing to correct); and the
same tiers with orders delivered newest first, so each arrival moves the member's earlier tier history and
re-settles their later orders (`services/tier_corrections.py`). Ratios are over the baseline's time; the two tier
shops must end with the same balances, which the run checks.

`python -m bench.tier_corrections [--members M] [--orders K]` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

from bench.common import apply_orders, prepared_database

TIERS = {
    "metric": "spend",
    "period": "lifetime",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100", "multiplier": "1.5"},
        {"id": "gold", "name": "Gold", "threshold": "250", "multiplier": "2"},
    ],
}


def _apply_orders(url: str, domain: str, members: int, orders: int, newest_first: bool) -> float:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    return apply_orders(url, domain, members, orders, lambda k: start + timedelta(days=k), newest_first=newest_first)


def _balances(url: str, domain: str) -> list[tuple[int, int]]:
    from sqlalchemy import select

    from plugin.db import transaction
    from plugin.models import Member
    from plugin.services import shops

    with transaction(url) as session:
        shop_id = shops.get(session, domain).id
        rows = session.execute(
            select(Member.customer_id, Member.balance).where(Member.shop_id == shop_id).order_by(Member.customer_id)
        )
        return [tuple(row) for row in rows]


def run(members: int = 50, orders: int = 6) -> dict:
    url, _env = prepared_database("loyalty_bench_tier_corrections")
    from sqlalchemy import func, select

    from plugin.db import transaction
    from plugin.models import Posting
    from plugin.services import shops, tier_sets

    plain, natural, shuffled = "plain.myshopify.com", "natural.myshopify.com", "shuffled.myshopify.com"
    with transaction(url) as session:
        shops.install(session, plain, None, ())
        for domain in (natural, shuffled):
            tier_sets.save(session, shops.install(session, domain, None, ()), TIERS, "bench")
    baseline = _apply_orders(url, plain, members, orders, newest_first=False)
    in_order = _apply_orders(url, natural, members, orders, newest_first=False)
    reversed_ = _apply_orders(url, shuffled, members, orders, newest_first=True)
    with transaction(url) as session:
        corrections = session.execute(
            select(func.count()).select_from(Posting).where(Posting.source_type == "tier_correction")
        ).scalar_one()
    events_applied = members * orders
    return {
        "members": members,
        "orders_per_member": orders,
        "order_events": events_applied,
        "baseline_seconds": round(baseline, 2),
        "natural_seconds": round(in_order, 2),
        "newest_first_seconds": round(reversed_, 2),
        "natural_ratio_to_baseline": round(in_order / baseline, 2),
        "newest_first_ratio_to_baseline": round(reversed_ / baseline, 2),
        "corrections_posted": corrections,
        "same_balances": _balances(url, natural) == _balances(url, shuffled),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--orders", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(run(args.members, args.orders)))
