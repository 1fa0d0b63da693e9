"""Times what milestones add to an order's transaction, and the birthday job.

Order path: M members each pay K orders through `accrual.apply` (one transaction per event, as the inbox applies
them), once for a shop with no milestone programme (the same-run baseline) and once for a shop with two spend
thresholds and a punch card, whose member rule reads every paid order of the member on each change. The ratio
is the with-milestones time over the baseline's. Birthday job: N members whose birthday is today, awarded in
batches, then the same run again (which must award nothing). Then N members of a second shop, each holding a
tier with a birthday reward, born the next day: the job posts two grants each (the shop's bonus and the tier's
reward); its ratio is over the first run's time (shop bonus only, the same run's baseline).

`python -m bench.milestones [--members M] [--orders K] [--birthdays N]` prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime

from bench.common import apply_orders, prepared_database

PROGRAMME = {
    "thresholds": [
        {"id": "lifetime", "amount": "250.00", "period": "lifetime", "points": 100},
        {"id": "yearly", "amount": "100.00", "period": "calendar_year", "points": 20},
    ],
    "punch_cards": [{"id": "card", "every": 3, "min_subtotal": "10.00", "points": 50}],
    "birthday": {"points": 200},
}
# The same programme whose thresholds and card also grant the default catalogue's reward (a grant redemption made in
# the order's transaction; issuing it in the shop is the redemption job's, measured by the store-credit section).
WITH_REWARDS = {
    **PROGRAMME,
    "thresholds": [{**t, "reward": "5-off"} for t in PROGRAMME["thresholds"]],
    "punch_cards": [{**c, "reward": "5-off"} for c in PROGRAMME["punch_cards"]],
}
TIERS = {
    "metric": "spend",
    "period": "lifetime",
    "tiers": [{"id": "gold", "name": "Gold", "threshold": "300", "birthday_reward": 100}],
}


def _apply_orders(url: str, domain: str, members: int, orders: int, first_customer: int) -> float:
    paid_at = datetime.now(UTC)
    return apply_orders(url, domain, members, orders, lambda _k: paid_at, first_customer=first_customer)


def run(members: int = 100, orders: int = 6, birthdays: int = 1_000) -> dict:
    url, _env = prepared_database("loyalty_bench_milestones")
    from sqlalchemy import func, select

    from plugin.db import transaction
    from plugin.models import MemberBirthday, Posting, Redemption
    from plugin.services import accrual, shops
    from plugin.services.milestones import birthdays as birthday_job
    from plugin.services.milestones import settings as milestone_settings

    plain, with_milestones, with_rewards = "plain.myshopify.com", "milestones.myshopify.com", "rewards.myshopify.com"
    with transaction(url) as session:
        shops.install(session, plain, None, ())
        shop = shops.install(session, with_milestones, None, ())
        milestone_settings.save(session, shop, PROGRAMME, "bench")
        shop_id = shop.id
        rewarding = shops.install(session, with_rewards, None, ())
        milestone_settings.save(session, rewarding, WITH_REWARDS, "bench")
        rewarding_id = rewarding.id
    baseline = _apply_orders(url, plain, members, orders, 100_000)
    seconds = _apply_orders(url, with_milestones, members, orders, 100_000)
    reward_seconds = _apply_orders(url, with_rewards, members, orders, 100_000)
    with transaction(url) as session:
        made = (Redemption.shop_id == rewarding_id) & (Redemption.kind == "grant")
        reward_grants = session.execute(select(func.count()).select_from(Redemption).where(made)).scalar_one()
        grants = session.execute(
            select(func.count())
            .select_from(Posting)
            .where(Posting.shop_id == shop_id, Posting.source_type.in_(("threshold", "punch_card")))
        ).scalar_one()
        for n in range(birthdays):
            from plugin.programme.events import Customer

            member_id = accrual.enrol(session, shop_id, Customer(500_000 + n))
            session.add(MemberBirthday(shop_id=shop_id, member_id=member_id, month=6, day=15, source="widget",
                                       changed_at=datetime.now(UTC)))  # fmt: skip
    on_the_day = datetime(2026, 6, 15, 12, tzinfo=UTC)
    started = time.perf_counter()
    first = birthday_job.award_all(url, on_the_day)
    birthday_seconds = time.perf_counter() - started
    started = time.perf_counter()
    again = birthday_job.award_all(url, on_the_day)
    again_seconds = time.perf_counter() - started
    tier_seconds, tier_report = _tier_birthdays(url, birthdays)
    events_applied = members * orders
    return {
        "members": members,
        "orders_per_member": orders,
        "order_events": events_applied,
        "baseline_seconds": round(baseline, 2),
        "baseline_orders_per_second": round(events_applied / baseline),
        "seconds": round(seconds, 2),
        "orders_per_second": round(events_applied / seconds),
        "ratio_to_baseline": round(seconds / baseline, 2),
        "grants_posted": grants,
        "reward_seconds": round(reward_seconds, 2),
        "reward_grants_made": reward_grants,
        "reward_ratio_to_points_only": round(reward_seconds / seconds, 2),
        "birthday_members": birthdays,
        "birthdays_awarded": first["awarded"],
        "birthday_seconds": round(birthday_seconds, 2),
        "birthdays_per_second": round(birthdays / birthday_seconds) if birthday_seconds else None,
        "birthday_rerun_awarded": again["awarded"],
        "birthday_rerun_seconds": round(again_seconds, 2),
        "tier_birthday_members": birthdays,
        "tier_birthdays_awarded": tier_report["awarded"],
        "tier_birthday_seconds": round(tier_seconds, 2),
        "tier_birthday_ratio_to_bonus_only": round(tier_seconds / birthday_seconds, 2) if birthday_seconds else None,
    }


def _tier_birthdays(url: str, count: int) -> tuple[float, dict]:
    """The birthday job over `count` Gold members born on 16 June (shop bonus and tier reward: two grants each)."""
    from plugin.db import transaction
    from plugin.models import Member, MemberBirthday
    from plugin.programme.events import Customer
    from plugin.services import accrual, shops, tier_sets
    from plugin.services.milestones import birthdays as birthday_job
    from plugin.services.milestones import settings as milestone_settings

    with transaction(url) as session:
        shop = shops.install(session, "tiers-birthdays.myshopify.com", None, ())
        milestone_settings.save(session, shop, {"birthday": {"points": 200}}, "bench")
        tier_sets.save(session, shop, TIERS, "bench")
        for n in range(count):
            member_id = accrual.enrol(session, shop.id, Customer(700_000 + n))
            # The tier as recomputation would leave it; the job reads it, it does not derive it.
            session.get(Member, (shop.id, member_id)).tier = "gold"
            session.add(MemberBirthday(shop_id=shop.id, member_id=member_id, month=6, day=16, source="widget",
                                       changed_at=datetime.now(UTC)))  # fmt: skip
    started = time.perf_counter()
    report = birthday_job.award_all(url, datetime(2026, 6, 16, 12, tzinfo=UTC))
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--orders", type=int, default=6)
    parser.add_argument("--birthdays", type=int, default=1_000)
    args = parser.parse_args()
    print(json.dumps(run(args.members, args.orders, args.birthdays)))


if __name__ == "__main__":
    main()
