"""Times what the referral rule adds to each paid order: N friends' first orders, each carrying an advocate's
signed cart attribute, applied in batches as the inbox drain does, in a shop with referrals on; against the
baseline, in the same run, of the same orders in a shop without referrals.

`python -m bench.referrals [--orders N] [--advocates M]` prints one JSON line. The issue sets no speed goal: the
figure is the ratio, so a change that makes the rule costly shows.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from bench.common import median, prepared_database
from bench.harness import SHOP

PLAIN_SHOP = "bench-plain.myshopify.com"
BATCH = 50  # deliveries per transaction, as the drain's default batch
PAID_AT = datetime(2026, 11, 1, 12, tzinfo=UTC)


def _orders(first_id: int, count: int, tokens: list[str]):
    from plugin.programme import events
    from plugin.programme.referrals import CART_ATTRIBUTE

    made = []
    for n in range(count):
        order_id = first_id + n
        customer = events.Customer(5_000_000 + order_id, f"friend{order_id}@example.com")
        snapshot = events.OrderSnapshot(
            order_id=order_id, name=f"#R{order_id}", customer=customer, email=customer.email, currency="USD",
            test=False, taxes_included=False, lines=(events.OrderLine(order_id * 10, 1, Decimal("42.00")),),
            processed_at=PAID_AT + timedelta(minutes=n), attributes=((CART_ATTRIBUTE, tokens[n % len(tokens)]),),
        )  # fmt: skip
        made.append(events.OrderPaid(snapshot, PAID_AT + timedelta(minutes=n)))
    return made


def _apply(url: str, domain: str, deliveries) -> float:
    from plugin.db import transaction
    from plugin.services import accrual, shops

    started = time.perf_counter()
    for start in range(0, len(deliveries), BATCH):
        with transaction(url) as session:
            shop = shops.get(session, domain)
            for event in deliveries[start : start + BATCH]:
                accrual.apply(session, shop, event)
    return time.perf_counter() - started


def _advocates(url: str, count: int) -> list[str]:
    """`count` members of the bench shop with a link each, opened once: their friends' signed cart attributes."""
    from plugin.db import transaction
    from plugin.programme import events
    from plugin.services import accrual, referrals, shops

    with transaction(url) as session:
        shop = shops.get(session, SHOP)
        referrals.update_settings(session, shop, {"enabled": True, "monthly_cap": None, "daily_limit": None}, "bench")
        tokens = []
        for n in range(count):
            member = accrual.enrol(session, shop.id, events.Customer(4_000_000 + n, f"advocate{n}@example.com"))
            code = referrals.link_code(session, shop.id, member)
            tokens.append(referrals.open_link(session, shop, code, f"bench-{n}", None).token)
        return tokens


def run(orders: int = 5_000, advocates: int = 250, rounds: int = 2) -> dict:
    url, _env = prepared_database("loyalty_bench_referrals")
    from plugin.db import transaction
    from plugin.services import shops

    with transaction(url) as session:
        shops.install(session, PLAIN_SHOP, None, ())
    tokens = _advocates(url, advocates)
    timed: dict[str, list[float]] = {"plain": [], "referrals": []}
    for r in range(rounds):  # alternating, each round with orders of its own
        first = 1_000_000 + r * orders
        timed["plain"].append(_apply(url, PLAIN_SHOP, _orders(first, orders, tokens)))
        timed["referrals"].append(_apply(url, SHOP, _orders(first, orders, tokens)))
    plain, referred = median(timed["plain"]), median(timed["referrals"])
    with transaction(url) as session:
        from sqlalchemy import func, select

        from plugin.models import Referral

        tied = session.scalar(select(func.count()).select_from(Referral))
    return {
        "orders": orders,
        "advocates": advocates,
        "rounds": rounds,
        "referrals_tied": tied,
        "plain_seconds": round(plain, 2),
        "referrals_seconds": round(referred, 2),
        "plain_orders_per_second": round(orders / plain),
        "referrals_orders_per_second": round(orders / referred),
        "ratio_to_plain": round(referred / plain, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--advocates", type=int, default=250)
    args = parser.parse_args()
    print(json.dumps(run(args.orders, args.advocates)))


if __name__ == "__main__":
    main()
