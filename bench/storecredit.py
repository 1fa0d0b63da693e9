"""Times store-credit redemptions (redeem, then the issue job's look-up and credit) against a local fake shop.

`python -m bench.storecredit [--redemptions N]` prints one JSON line. The baseline, in the same run and against the
same fake shop, is the same number of fixed-amount code redemptions (redeem, look-up, create): the path store
credit was built to match. The figure is the ratio of their times per redemption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import requests

from bench.common import prepared_database
from bench.harness import SHOP, start_fake_shop

REWARDS = [
    {"id": "code-5", "kind": "fixed_amount", "points": 500, "amount": "5.00"},
    {"id": "credit-5", "kind": "store_credit", "points": 500, "amount": "5.00"},
]


def _settings(env: dict[str, str], fake_url: str):
    from plugin.config import Settings

    os.environ.update({k: v for k, v in env.items() if k in ("DATABASE_URL", "LOYALTY_ENCRYPTION_KEYS")})
    return dataclasses.replace(Settings.from_env(), shopify_api_base_url=fake_url, redis_url="")


def _seed(settings, members: int) -> None:
    from plugin import ledger
    from plugin.db import transaction
    from plugin.programme.events import Customer
    from plugin.services import shops
    from plugin.services.accrual import enrol

    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        shop.currency = "USD"
        shops.update_settings(session, shop, {"rewards": REWARDS})
        for customer_id in range(1, members + 1):
            member_id = enrol(session, shop.id, Customer(800000 + customer_id))
            entry = ledger.Entry(member_id, "bonus", 1000, "support", "seed", f"seed:{customer_id}", "bench")
            ledger.post(session, shop.id, entry)


def _redeem_and_issue(settings, customers: range, reward_id: str) -> float:
    """Seconds for one redemption of `reward_id` per customer, each redeemed and then issued, one after another."""
    from plugin.db import transaction
    from plugin.services import redemption, shops

    started = time.perf_counter()
    for customer_id in customers:
        with transaction(settings.database_url) as session:
            made = redemption.redeem(session, shops.get(session, SHOP), 800000 + customer_id, reward_id)
            redemption_id = made.id
        outcome = redemption.issue(settings, redemption_id)
        if outcome != "issued":
            raise RuntimeError(f"redemption {redemption_id} ended {outcome}")
    return time.perf_counter() - started


def run(redemptions: int = 300) -> dict:
    _url, env = prepared_database("loyalty_bench_storecredit")
    fake, fake_url = start_fake_shop("fake-shop-storecredit", env)  # started and answering, or stopped and raised
    try:
        settings = _settings(env, fake_url)
        _seed(settings, redemptions)
        # Alternate halves so a noisy neighbour hurts both sides alike.
        first, second = range(1, redemptions // 2 + 1), range(redemptions // 2 + 1, redemptions + 1)
        code_seconds = _redeem_and_issue(settings, first, "code-5")
        credit_seconds = _redeem_and_issue(settings, first, "credit-5")
        code_seconds += _redeem_and_issue(settings, second, "code-5")
        credit_seconds += _redeem_and_issue(settings, second, "credit-5")
        shop_side = requests.get(f"{fake_url}/_fake/store-credit", timeout=10).json()
    finally:
        fake.stop()
    return {
        "redemptions_each": redemptions,
        "code_ms_per_redemption": round(code_seconds / redemptions * 1000, 1),
        "store_credit_ms_per_redemption": round(credit_seconds / redemptions * 1000, 1),
        "ratio_to_codes": round(credit_seconds / code_seconds, 2),
        "credits_made": shop_side["credits"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redemptions", type=int, default=300)
    print(json.dumps(run(parser.parse_args().redemptions)))


if __name__ == "__main__":
    main()
