"""Property: under random caps, friends, orders, refunds and cancellations, shuffled and repeated deliveries end
with the referrals and the advocate's points of the natural order, and the ledger stays whole."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Redemption, Referral
from plugin.programme import events
from plugin.programme.referrals import CART_ATTRIBUTE
from plugin.services import accrual, referrals, shops

PAID_AT = datetime(2026, 10, 30, 12, 0, tzinfo=UTC)  # the days drawn cross into November: two months
PENDING_DAYS = 10
DOMAINS = ("natural.myshopify.com", "shuffled.myshopify.com")
_ids = itertools.count(1)

# One friend's order: (day offset of processed_at, refunded: None | "early" | "late", cancelled early)
orders = st.tuples(st.integers(0, 3), st.sampled_from([None, "early", "late"]), st.booleans())
friends = st.lists(st.lists(orders, min_size=1, max_size=2), min_size=1, max_size=4)
caps = st.tuples(st.sampled_from([None, 1, 2, 4]), st.sampled_from([None, 1, 2]))


def _setup(url: str, domain: str, n: int, monthly_cap, daily_limit) -> str:
    """The advocate joins and a friend opens the link; returns the signed cart attribute."""
    with transaction(url) as session:
        shop = shops.get(session, domain)
        cap = monthly_cap if monthly_cap is None or daily_limit is None else max(monthly_cap, daily_limit)
        limits = {"monthly_cap": cap, "daily_limit": daily_limit}
        # The advocate also gets the default catalogue's reward: one grant per qualified referral, held or asked back.
        referrals.update_settings(session, shop, {"enabled": True, "advocate_reward": "5-off", **limits}, "p")
        advocate = accrual.enrol(session, shop.id, events.Customer(n * 1000, f"advocate{n}@example.com"))
        code = referrals.link_code(session, shop.id, advocate)
        return referrals.open_link(session, shop, code, f"request-{n}", None).token


def _events(n: int, token: str, history) -> list[events.Event]:
    """The natural order: each friend's orders paid, then their refunds and cancellations."""
    made: list[events.Event] = []
    endings: list[events.Event] = []
    order_ids = itertools.count(n * 1000 + 1)
    for f, friend_orders in enumerate(history):
        customer = events.Customer(n * 1000 + 100 + f, f"friend{n}-{f}@example.com")
        for day, refunded, cancelled in friend_orders:
            order_id = next(order_ids)
            snapshot = events.OrderSnapshot(
                order_id=order_id, name=f"#{order_id}", customer=customer, email=customer.email, currency="USD",
                test=False, taxes_included=False, lines=(events.OrderLine(order_id * 10, 1, Decimal("20.00")),),
                processed_at=PAID_AT + timedelta(days=day, minutes=f), attributes=((CART_ATTRIBUTE, token),),
            )  # fmt: skip
            made.append(events.OrderPaid(snapshot, PAID_AT + timedelta(days=day)))
            if refunded:
                when = PAID_AT + timedelta(days=2 if refunded == "early" else PENDING_DAYS + 5)
                facts = events.RefundFacts(order_id * 10 + 1, order_id, {order_id * 10: 1}, created_at=when)
                endings.append(events.OrderRefunded(facts))
            if cancelled:
                early = {**snapshot.__dict__, "cancelled_at": PAID_AT + timedelta(days=day + 1)}
                endings.append(events.OrderCancelled(events.OrderSnapshot(**early)))
    return made + endings


def _apply_all(url: str, domain: str, history: list[events.Event]) -> None:
    for event in history:
        with transaction(url) as session:
            accrual.apply(session, shops.get(session, domain), event)


def _outcome(url: str, domain: str, n: int) -> tuple:
    with transaction(url) as session:
        shop = shops.get(session, domain)
        rows = session.execute(
            select(Referral.order_id, Referral.status, Referral.block_reason, Referral.points_held)
            .where(Referral.shop_id == shop.id, Referral.order_id > n * 1000, Referral.order_id < n * 1000 + 100)
            .order_by(Referral.order_id)
        ).all()
        advocate, balance = session.execute(
            select(Member.id, Member.balance).where(Member.shop_id == shop.id, Member.customer_id == n * 1000)
        ).one()
        standing = session.scalars(
            select(Redemption.granted_by).where(
                Redemption.shop_id == shop.id, Redemption.member_id == advocate, Redemption.kind == "grant",
                Redemption.revoke_requested_at.is_(None),
            )
        )  # fmt: skip
        rewards = sorted(int(granted["source_id"]) for granted in standing)
        return [tuple(r) for r in rows], balance, rewards


def test_shuffled_repeated_deliveries_end_where_the_natural_order_does(settings):
    url = settings.database_url
    with transaction(url) as session:
        for domain in DOMAINS:
            shop = shops.install(session, domain, None, settings.encryption_keys)
            shops.update_settings(session, shop, {"pending_days": PENDING_DAYS})

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(history=friends, limits=caps, data=st.data())
    def check(history, limits, data):
        n = next(_ids)
        natural_token = _setup(url, DOMAINS[0], n, *limits)
        shuffled_token = _setup(url, DOMAINS[1], n, *limits)
        natural = _events(n, natural_token, history)
        shuffled = _events(n, shuffled_token, history)
        repeats = data.draw(st.lists(st.sampled_from(range(len(shuffled))), max_size=4))
        order = data.draw(st.permutations([*range(len(shuffled)), *repeats]))
        _apply_all(url, DOMAINS[0], natural)
        _apply_all(url, DOMAINS[1], [shuffled[i] for i in order])
        expected, points, rewards = _outcome(url, DOMAINS[0], n)
        assert _outcome(url, DOMAINS[1], n) == (expected, points, rewards)
        # Each friend's first order is the only one that may count, and nothing refunded or cancelled pays.
        assert points == 500 * sum(1 for _, status, _, _ in expected if status == "qualified")
        # One standing reward per qualified referral, none for the others, whatever the order and repeats.
        assert rewards == [order_id for order_id, status, _, _ in expected if status == "qualified"]
        with transaction(url) as session:
            assert ledger.verify(session) == []

    check()
