"""Property: shuffled and repeated deliveries of a member's orders, refunds and cancellations end with the tier,
kept-until date, entry rewards, every order's points and the balance of the natural order, with tier multipliers
on (an earlier order arriving late corrects the later orders' tier share: services/tier_corrections.py)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Order, Posting
from plugin.programme import events
from plugin.services import accrual, shops, tier_sets

PROGRAMMES = [
    {"metric": "spend", "period": "calendar_year", "grace_days": 10},
    {"metric": "points", "period": "rolling_12_months"},
    {"metric": "orders", "period": "lifetime"},
]
TIERS = {
    "spend": ["100", "300", "800"],
    "points": ["100", "300", "800"],
    "orders": ["1", "2", "4"],
}
START = datetime(2025, 1, 1, tzinfo=UTC)
_ids = itertools.count(1)

orders_ = st.lists(
    st.tuples(
        st.integers(0, 700),  # days after START
        st.lists(st.tuples(st.integers(1, 3), st.integers(500, 40000)), min_size=1, max_size=3),  # (qty, cents)
        st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=2), max_size=2),
        st.booleans(),  # cancelled
    ),
    min_size=1,
    max_size=5,
)


def programme(index: int) -> dict:
    base = PROGRAMMES[index]
    names = ("Bronze", "Silver", "Gold")
    return {
        **base,
        "tiers": [
            {"id": name.lower(), "name": name, "threshold": threshold, "multiplier": str(1 + rank), "entry_reward": 25}
            for rank, (name, threshold) in enumerate(zip(names, TIERS[base["metric"]], strict=True))
        ],
    }


def history(customer: int, orders) -> list[events.Event]:
    out: list[events.Event] = []
    for k, (days, lines, refunds, cancelled) in enumerate(orders):
        order_id = customer * 100 + k
        order_lines = tuple(
            events.OrderLine(order_id * 10 + i, qty, Decimal(cents) * qty / 100) for i, (qty, cents) in enumerate(lines)
        )
        snapshot = events.OrderSnapshot(
            order_id=order_id, name=f"#{order_id}", customer=events.Customer(customer), email=None, currency="USD",
            test=False, taxes_included=False, lines=order_lines,
        )  # fmt: skip
        paid_at = START + timedelta(days=days, hours=k)
        out.append(events.OrderPaid(snapshot, paid_at))
        for r, refunded in enumerate(refunds):
            quantities: dict[int, int] = {}
            for index, qty in refunded:
                if index < len(order_lines):
                    line = order_lines[index].line_id
                    quantities[line] = quantities.get(line, 0) + qty
            out.append(events.OrderRefunded(events.RefundFacts(order_id * 10 + r, order_id, quantities)))
        if cancelled:
            out.append(events.OrderCancelled(snapshot.__class__(**{**snapshot.__dict__, "cancelled_at": paid_at})))
    return out


def apply_all(url: str, domain: str, deliveries: list[events.Event]) -> None:
    for event in deliveries:
        with transaction(url) as session:
            accrual.apply(session, shops.get(session, domain), event)


def outcome(url: str, domain: str, customer: int):
    with transaction(url) as session:
        shop = shops.get(session, domain)
        row = session.execute(
            select(Member.id, Member.tier, Member.tier_until, Member.balance).where(
                Member.shop_id == shop.id, Member.customer_id == customer
            )
        ).one()
        rewards = session.execute(
            select(Posting.source_id, func.sum(Posting.points))
            .where(Posting.shop_id == shop.id, Posting.member_id == row.id, Posting.source_type == "tier")
            .group_by(Posting.source_id)
        ).all()
        held = session.execute(
            select(Order.order_id, Order.points_held).where(Order.shop_id == shop.id, Order.member_id == row.id)
        ).all()
        return {
            "tier": row.tier,
            "tier_until": row.tier_until,
            "entry_rewards": sorted((s, int(p)) for s, p in rewards if p),
            "orders": sorted((order_id, points) for order_id, points in held),
            "balance": row.balance,
        }


def test_shuffled_repeated_deliveries_give_the_tiers_and_balances_of_the_natural_order(settings):
    url = settings.database_url
    with transaction(url) as session:
        for domain in ("natural.myshopify.com", "shuffled.myshopify.com"):
            shops.install(session, domain, None, settings.encryption_keys)

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(which=st.integers(0, len(PROGRAMMES) - 1), orders=orders_, data=st.data())
    def check(which, orders, data):
        customer = 5000 + next(_ids)
        with transaction(url) as session:
            for domain in ("natural.myshopify.com", "shuffled.myshopify.com"):
                shop = shops.get(session, domain)
                if shop.tiers_version == 0 or shop.tiers["metric"] != PROGRAMMES[which]["metric"]:
                    tier_sets.save(session, shop, programme(which), "property")
        natural = history(customer, orders)
        repeats = data.draw(st.lists(st.sampled_from(natural), max_size=4))
        shuffled = data.draw(st.permutations(natural + repeats))
        apply_all(url, "natural.myshopify.com", natural)
        apply_all(url, "shuffled.myshopify.com", shuffled)
        assert outcome(url, "shuffled.myshopify.com", customer) == outcome(url, "natural.myshopify.com", customer)
        with transaction(url) as session:
            assert ledger.verify(session) == []

    check()
