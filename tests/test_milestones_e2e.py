"""Milestones end to end through signed webhooks: thresholds crossed and un-crossed, punches, signup bonus."""

from __future__ import annotations

import json

from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, MilestoneHolding, Posting
from plugin.services import outbox, shops
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP, deliver, signed_headers

ALICE = 7001
THRESHOLD = {"id": "big-spender", "amount": "500.00", "period": "lifetime", "points": 250}
CARD = {"id": "coffee", "every": 3, "min_subtotal": "5.00", "points": 40}


def configure(settings, **programme) -> None:
    with transaction(settings.database_url) as session:
        milestone_settings.save(session, shops.get(session, SHOP), programme, "test")


def set_policy(settings, policy: str) -> None:
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": policy})


def paid(client, order_id: int, price: str, customer_id: int = ALICE, triggered: str | None = None, **extra):
    payload = builders.order(order_id, customer_id, [builders.line(order_id * 10 + 1, price)], **extra)
    if triggered is None:
        return deliver(client, "orders/paid", payload)
    body = json.dumps(payload).encode()
    headers = {**signed_headers(body, "orders/paid"), "X-Shopify-Triggered-At": triggered}
    return client.post("/webhooks/shopify", data=body, headers=headers)


def balance(settings, customer_id: int = ALICE) -> int:
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.balance).where(Member.customer_id == customer_id)).scalar_one()


def grants(settings, source_type: str) -> list[tuple[str, int, str]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(Posting.kind, Posting.points, Posting.source_id)
            .where(Posting.source_type == source_type)
            .order_by(Posting.id)
        )
        return [tuple(row) for row in rows]


def test_crossing_a_lifetime_threshold_grants_and_a_refund_below_it_takes_the_grant_back(client, settings, shop):
    configure(settings, thresholds=[THRESHOLD])
    paid(client, 1, "300.00")
    assert balance(settings) == 300 and grants(settings, "threshold") == []
    paid(client, 2, "250.00")
    assert balance(settings) == 300 + 250 + 250  # crossed 500: the grant, named after its rule
    assert grants(settings, "threshold") == [("bonus", 250, "big-spender")]
    deliver(client, "refunds/create", builders.refund(1, 2, {21: 1}))  # back to 300 of spend
    assert balance(settings) == 300
    assert grants(settings, "threshold") == [("bonus", 250, "big-spender"), ("reverse", -250, "big-spender")]
    paid(client, 3, "200.00")  # crossed again: granted again, under a fresh key
    assert balance(settings) == 300 + 200 + 250
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []
        # The grants' own events (the orders' postings announce theirs too, keyed by posting: docs/events.md).
        events = outbox.recorded(session, shop)
        kinds = [e.event_type for e in events if e.payload.get("source_type") == "threshold"]
        assert kinds == ["points.earned", "points.reversed", "points.earned"]


def test_a_repeated_delivery_grants_nothing_more(client, settings, shop):
    configure(settings, thresholds=[THRESHOLD])
    for _ in range(3):
        paid(client, 1, "600.00")
    assert balance(settings) == 600 + 250


def test_a_calendar_year_threshold_starts_again_in_the_shops_new_year(client, settings, shop):
    configure(settings, thresholds=[{**THRESHOLD, "period": "calendar_year", "amount": "100.00", "points": 10}])
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).time_zone = "Pacific/Auckland"
    paid(client, 1, "60.00", triggered="2026-12-31T10:00:00Z")  # 31 December, 23:00 in Auckland
    paid(client, 2, "60.00", triggered="2026-12-31T11:30:00Z")  # already 1 January 2027 there
    assert grants(settings, "threshold") == []  # 60 in each year: neither crosses 100
    paid(client, 3, "45.00", triggered="2027-01-02T00:00:00Z")
    assert grants(settings, "threshold") == [("bonus", 10, "big-spender")]


def test_every_third_order_punches_a_card_and_a_cancellation_in_the_middle_unpunches(client, settings, shop):
    configure(settings, punch_cards=[CARD])
    paid(client, 1, "6.00")
    paid(client, 2, "4.00")  # under the minimum subtotal: no punch
    paid(client, 3, "7.00")
    assert grants(settings, "punch_card") == []
    paid(client, 4, "8.00")  # third punch
    assert grants(settings, "punch_card") == [("bonus", 40, "coffee")]
    cancelled = builders.order(3, ALICE, [builders.line(31, "7.00")], cancelled_at="2026-11-21T10:00:00Z")
    deliver(client, "orders/cancelled", cancelled)  # the middle punch is gone: two punches left
    assert grants(settings, "punch_card") == [("bonus", 40, "coffee"), ("reverse", -40, "coffee")]
    paid(client, 5, "9.00")
    assert grants(settings, "punch_card")[-1] == ("bonus", 40, "coffee")
    assert balance(settings) == 6 + 4 + 8 + 9 + 40


def test_a_take_back_the_member_cannot_pay_follows_stop_at_zero(client, settings, shop):
    configure(settings, thresholds=[THRESHOLD])
    set_policy(settings, "stop_at_zero")
    paid(client, 1, "500.00")
    assert balance(settings) == 750
    with transaction(settings.database_url) as session:  # the member spends almost everything
        member = session.execute(select(Member).where(Member.customer_id == ALICE)).scalar_one()
        ledger.post(session, shop, ledger.Entry(member.id, "redeem", -700, "redemption", "1", "spend-1", "t"))
    deliver(client, "refunds/create", builders.refund(1, 1, {11: 1}))
    assert balance(settings) == 0  # never below zero: what was spent is forgiven
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []
        holding = session.execute(select(MilestoneHolding)).scalar_one()
        assert holding.points_held == 0 and holding.grants == []


def test_claw_back_keeps_what_it_could_not_take_and_nets_it_against_the_next_grant(client, settings, shop):
    configure(settings, thresholds=[THRESHOLD])
    set_policy(settings, "claw_back")
    paid(client, 1, "500.00")
    with transaction(settings.database_url) as session:
        member = session.execute(select(Member).where(Member.customer_id == ALICE)).scalar_one()
        ledger.post(session, shop, ledger.Entry(member.id, "redeem", -700, "redemption", "1", "spend-1", "t"))
    deliver(client, "refunds/create", builders.refund(1, 1, {11: 1}))
    assert balance(settings) == 0
    with transaction(settings.database_url) as session:
        holding = session.execute(select(MilestoneHolding)).scalar_one()
        assert holding.grants == [] and holding.unpaid > 0
    paid(client, 2, "500.00")  # crossing again pays the debt first
    with transaction(settings.database_url) as session:
        holding = session.execute(select(MilestoneHolding)).scalar_one()
        assert holding.grants == [250] and holding.unpaid == 0 and holding.points_held == 250
        assert ledger.verify(session) == []


def test_the_signup_bonus_is_given_on_customers_create_once_ever(client, settings, shop):
    configure(settings, signup={"points": 100})
    customer = {"id": 9001, "email": "new@example.com", "first_name": "New", "last_name": "Member"}
    for _ in range(2):
        deliver(client, "customers/create", customer)
    deliver(client, "customers/update", customer)
    paid(client, 1, "10.00", customer_id=9001)
    assert balance(settings, 9001) == 110
    assert grants(settings, "signup") == [("bonus", 100, "signup")]


def test_a_shop_that_enrols_on_purchase_gives_the_signup_bonus_with_the_first_order(client, settings, shop):
    configure(settings, signup={"points": 100})
    paid(client, 1, "10.00")
    paid(client, 2, "10.00")
    assert balance(settings) == 120


def test_members_enrolled_before_the_signup_bonus_was_turned_on_never_get_it(client, settings, shop):
    paid(client, 1, "10.00")
    configure(settings, signup={"points": 100})
    paid(client, 2, "10.00")
    assert balance(settings) == 20
