"""Property: shuffled and repeated deliveries of a member's orders, refunds and cancellations give the same
milestone grants (thresholds, punch cards, signup) as the natural order, and what the final facts say."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, MilestoneHolding, Redemption
from plugin.programme import events
from plugin.services import accrual, shops
from plugin.services.milestones import settings as milestone_settings

NATURAL, SHUFFLED = "natural.myshopify.com", "shuffled.myshopify.com"
PROGRAMME = {
    "thresholds": [
        {"id": "lifetime", "amount": "150.00", "period": "lifetime", "points": 70, "reward": "5-off"},
        {"id": "yearly", "amount": "100.00", "period": "calendar_year", "points": 30, "repeat": False},
    ],
    "punch_cards": [
        {"id": "card", "every": 2, "min_subtotal": "20.00", "points": 25},
        {"id": "reward-card", "every": 3, "points": 0, "reward": "5-off"},  # a reward alone (the default catalogue's)
    ],
    "signup": {"points": 15},
}
YEARS = (datetime(2025, 6, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC))
_customers = itertools.count(1)

orders = st.lists(
    st.fixed_dictionaries(
        {
            "lines": st.lists(st.tuples(st.integers(1, 3), st.integers(500, 9000)), min_size=1, max_size=3),
            "year": st.sampled_from(YEARS),
            "refunds": st.lists(st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=2),
                                max_size=2),
            "cancelled": st.booleans(),
        }
    ),
    min_size=1,
    max_size=4,
)  # fmt: skip


def _events(customer_id: int, history: list[dict]) -> list[events.Event]:
    natural: list[events.Event] = [events.CustomerCreated(events.Customer(customer_id))]
    for k, order in enumerate(history):
        order_id = customer_id * 100 + k
        lines = tuple(
            events.OrderLine(order_id * 10 + i, qty, Decimal(cents) * qty / 100)
            for i, (qty, cents) in enumerate(order["lines"])
        )
        snapshot = events.OrderSnapshot(
            order_id=order_id, name=f"#{order_id}", customer=events.Customer(customer_id), email=None,
            currency="USD", test=False, taxes_included=False, lines=lines,
        )  # fmt: skip
        natural.append(events.OrderPaid(snapshot, order["year"]))
        for r, refunded in enumerate(order["refunds"]):
            quantities: dict[int, int] = {}
            for index, qty in refunded:
                if index < len(lines):
                    quantities[lines[index].line_id] = quantities.get(lines[index].line_id, 0) + qty
            natural.append(events.OrderRefunded(events.RefundFacts(order_id * 10 + r, order_id, quantities)))
        if order["cancelled"]:
            natural.append(
                events.OrderCancelled(events.OrderSnapshot(**{**snapshot.__dict__, "cancelled_at": YEARS[1]}))
            )
    return natural


def _apply_all(url: str, domain: str, history: list[events.Event]) -> None:
    for event in history:
        with transaction(url) as session:
            accrual.apply(session, shops.get(session, domain), event)


def _grants(url: str, domain: str, customer_id: int) -> tuple[int, dict[str, list[int]], list[tuple[str, int]]]:
    """The balance, each rule's grants, and the reward grants still standing (not asked to be taken back)."""
    with transaction(url) as session:
        shop = shops.get(session, domain)
        member = session.execute(
            select(Member).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
        ).scalar_one()
        holdings = session.scalars(
            select(MilestoneHolding).where(MilestoneHolding.shop_id == shop.id, MilestoneHolding.member_id == member.id)
        )
        rewards = session.scalars(
            select(Redemption.granted_by).where(
                Redemption.shop_id == shop.id, Redemption.member_id == member.id, Redemption.kind == "grant",
                Redemption.revoke_requested_at.is_(None),
            )
        )  # fmt: skip
        standing = sorted((granted["source_id"], granted["number"]) for granted in rewards)
        return member.balance, {h.rule_key: list(h.grants) for h in holdings if h.grants}, standing


def test_shuffled_and_repeated_deliveries_give_the_grants_of_the_natural_order(settings):
    url = settings.database_url
    with transaction(url) as session:
        for domain in (NATURAL, SHUFFLED):
            shop = shops.install(session, domain, None, settings.encryption_keys)
            milestone_settings.save(session, shop, PROGRAMME, "property")

    @hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(history=orders, data=st.data())
    def check(history, data):
        customer_id = next(_customers)
        natural = _events(customer_id, history)
        repeats = data.draw(st.lists(st.sampled_from(natural), max_size=4))
        shuffled = data.draw(st.permutations(natural + repeats))
        _apply_all(url, NATURAL, natural)
        _apply_all(url, SHUFFLED, shuffled)
        expected = _grants(url, NATURAL, customer_id)
        assert _grants(url, SHUFFLED, customer_id) == expected
        assert expected[1]["signup:signup"] == [15]  # once, whatever repeats
        # One standing reward per grant the facts hold, numbered 1..n per rule, whatever the order and repeats.
        for rule in ("lifetime", "reward-card"):
            held = len(expected[1].get(f"threshold:{rule}", expected[1].get(f"punch_card:{rule}", [])))
            assert [n for source, n in expected[2] if source == rule] == list(range(1, held + 1))
        with transaction(url) as session:
            assert ledger.verify(session) == []

    check()
