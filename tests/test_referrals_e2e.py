"""Referrals end to end through the signed App Proxy and signed webhooks: links, guards, refunds, shuffles."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import OutboxEvent, Referral, ReferralVisit
from plugin.services import referrals, shops
from tests import builders
from tests.conftest import SHOP, deliver
from tests.referral_helpers import (
    ADVOCATE,
    ADVOCATE_ADDRESS,
    advocate_link,
    advocate_points,
    change,
    friend_order,
    outcome,
    state,
    switch_on,
    token_of,
    visit,
    visits,
)
from tests.test_storefront_proxy import signed

OTHER_SHOP = "other-shop.myshopify.com"


def test_a_good_referral_by_cart_attribute_rewards_the_advocate_once(client, settings, shop):
    switch_on(settings, advocate_points=300)
    code = advocate_link(client)
    token = token_of(visit(client, code))
    assert token
    order = friend_order(1, 6001, token=token)
    assert deliver(client, "orders/paid", order).status_code == 200
    assert outcome(settings, 1) == ("qualified", None, 300)
    assert advocate_points(settings) == 300
    deliver(client, "orders/paid", order)  # a duplicate delivery (its own webhook id) changes nothing
    assert advocate_points(settings) == 300
    with transaction(settings.database_url) as session:
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "referral.completed")).all()
        assert [(e.payload["order_id"], e.payload["points"], e.payload["matched_by"]) for e in events] == [
            (1, 300, "cookie")
        ]


def test_the_advocates_points_wait_for_the_pending_period_and_a_job_gives_them_once(client, settings, shop):
    switch_on(settings, pending_days=30)
    token = token_of(visit(client, advocate_link(client)))
    deliver(client, "orders/paid", friend_order(1, 6001, token=token))
    assert outcome(settings, 1) == ("qualified", None, 0)  # paid, still inside its pending period
    later = datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(days=30, seconds=1)
    with transaction(settings.database_url) as session:
        assert referrals.due_shops(session, later) == [shop]
        assert referrals.settle_due(session, shops.get(session, SHOP), later) == 1
    with transaction(settings.database_url) as session:
        referrals.settle_due(session, shops.get(session, SHOP), later)  # the job run twice posts once
    assert outcome(settings, 1) == ("qualified", None, 500)
    assert advocate_points(settings) == 500


def test_a_refund_before_the_pending_period_ends_gives_the_advocate_nothing(client, settings, shop):
    switch_on(settings, pending_days=30)
    token = token_of(visit(client, advocate_link(client)))
    deliver(client, "orders/paid", friend_order(1, 6001, token=token))
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))  # refunded 2026-11-21, pending until 12-20
    assert outcome(settings, 1) == ("void", None, 0)
    with transaction(settings.database_url) as session:
        later = datetime(2027, 1, 1, tzinfo=UTC)
        assert referrals.settle_due(session, shops.get(session, SHOP), later) == 0
    assert advocate_points(settings) == 0


def test_a_partial_refund_leaves_the_referral_standing(client, settings, shop):
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    order = friend_order(1, 6001, token=token)
    order["line_items"].append(builders.line(12, "20.00"))
    deliver(client, "orders/paid", order)
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    assert outcome(settings, 1) == ("qualified", None, 500)


@pytest.mark.parametrize("policy, expected_balance", [("allow_negative", -400), ("stop_at_zero", 0), ("claw_back", 0)])
def test_a_refund_after_the_pending_period_reverses_under_the_spent_points_policy(
    client, settings, shop, policy, expected_balance
):
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    deliver(client, "orders/paid", friend_order(1, 6001, token=token))
    assert advocate_points(settings) == 500
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        shops.update_settings(session, shop_row, {"spent_points_policy": policy})
        member = shops.member(session, shop_row, ADVOCATE)
        from plugin import ledger

        spend = ledger.Entry(member.id, "redeem", -member.balance - 400 + 500, "support", "s", "spent", "m")
        ledger.post(session, shop_row.id, spend)  # the advocate spends all but 100 points
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))  # refunded after the (zero) pending period
    status, _, held = outcome(settings, 1)
    assert (status, held) == ("reversed", 0)
    with transaction(settings.database_url) as session:
        member = shops.member(session, shops.get(session, SHOP), ADVOCATE)
        assert member.balance == expected_balance
        owed = session.scalar(select(Referral.points_owed))
    assert owed == (400 if policy == "claw_back" else 0)


def test_a_cancellation_before_the_pending_period_ends_gives_nothing(client, settings, shop):
    switch_on(settings, pending_days=30)
    token = token_of(visit(client, advocate_link(client)))
    order = friend_order(1, 6001, token=token)
    deliver(client, "orders/paid", order)
    deliver(client, "orders/cancelled", {**order, "cancelled_at": "2026-11-22T10:00:00Z"})
    assert outcome(settings, 1) == ("void", None, 0)


SAME_ADDRESS_WRITTEN_OTHERWISE = {**ADVOCATE_ADDRESS, "address1": "12 rue de la PAIX", "phone": "+1 555 000 1111"}
GUARDS = {
    # (the friend's order, the setting that turns the guard off, the reason)
    "same customer": (lambda token: friend_order(2, ADVOCATE, token=token), "block_same_customer", "same_customer"),
    "same email": (
        lambda token: friend_order(2, 6001, token=token, email="adalovelace+friend@GMAIL.com"),
        "block_same_email",
        "same_email",
    ),
    "same address": (
        lambda token: friend_order(2, 6001, token=token, address=SAME_ADDRESS_WRITTEN_OTHERWISE),
        "block_same_address",
        "same_address",
    ),
    "same phone": (
        lambda token: {**friend_order(2, 6001, token=token), "phone": "01 23 45 67 89"},
        "block_same_phone",
        "same_phone",
    ),
}


@pytest.mark.parametrize("guard", sorted(GUARDS))
def test_each_self_referral_guard_blocks_with_its_reason_and_can_be_turned_off(client, settings, shop, guard):
    make_order, setting, reason = GUARDS[guard]
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    deliver(client, "orders/paid", make_order(token))
    assert outcome(settings, 2) == ("blocked", reason, 0)
    assert advocate_points(settings) == 0
    change(settings, **{setting: False})
    deliver(client, "orders/paid", make_order(token))  # the next change of the order decides it again
    status, why, _ = outcome(settings, 2)
    assert why != reason
    if guard != "same customer":  # the advocate's own second order is also not a first order
        assert (status, advocate_points(settings)) == ("qualified", 500)


@pytest.mark.parametrize("seed", [1, 2])
def test_only_the_friends_first_order_counts_whatever_the_webhook_order(client, settings, shop, seed):
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    first = friend_order(1, 6001, processed_at="2026-11-10T10:00:00Z")  # no referral: an earlier, ordinary order
    second = friend_order(2, 6001, token=token, processed_at="2026-11-20T10:00:00Z")
    deliveries = [("orders/paid", first), ("orders/paid", second)]
    random.Random(seed).shuffle(deliveries)
    for topic, payload in deliveries:
        deliver(client, topic, payload)
    assert outcome(settings, 2) == ("blocked", "not_first_order", 0)
    assert advocate_points(settings) == 0


def test_the_monthly_cap_and_the_daily_limit_block_the_extra_referrals(client, settings, shop):
    switch_on(settings, monthly_cap=2, daily_limit=1)
    code = advocate_link(client)
    days = ["2026-11-20T10:00:00Z", "2026-11-20T11:00:00Z", "2026-11-21T10:00:00Z", "2026-11-22T10:00:00Z"]
    for n, day in enumerate(days, start=1):
        token = token_of(visit(client, code))
        deliver(client, "orders/paid", friend_order(n, 6000 + n, token=token, processed_at=day))
    assert [outcome(settings, n)[:2] for n in range(1, 5)] == [
        ("qualified", None),
        ("blocked", "daily_velocity"),
        ("qualified", None),
        ("blocked", "monthly_cap"),
    ]
    assert advocate_points(settings) == 1000


def test_support_approves_a_blocked_referral_with_a_reason_and_it_is_audited(client, settings, shop):
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    deliver(client, "orders/paid", friend_order(2, 6001, token=token, email="ada.lovelace@gmail.com"))
    assert outcome(settings, 2) == ("blocked", "same_email", 0)
    with transaction(settings.database_url) as session:
        row = referrals.approve(session, shops.get(session, SHOP), 2, "support:sam", "sisters sharing an inbox")
        assert (row.approved_by, row.approved_reason) == ("support:sam", "sisters sharing an inbox")
    assert outcome(settings, 2) == ("qualified", None, 500)
    deliver(client, "orders/paid", friend_order(2, 6001, token=token, email="ada.lovelace@gmail.com"))
    assert advocate_points(settings) == 500  # approval holds through later deliveries, and pays once


def _referral_deliveries(token: str) -> list[tuple[str, dict, str]]:
    first = friend_order(1, 6001, token=token, processed_at="2026-11-20T10:00:00Z")
    second = friend_order(2, 6002, token=token, processed_at="2026-11-20T11:00:00Z")
    return [
        ("orders/paid", first, "p1"),
        ("orders/paid", second, "p2"),
        ("orders/paid", friend_order(3, 6001, token=token, processed_at="2026-11-21T10:00:00Z"), "p3"),
        ("refunds/create", builders.refund(91, 1, {11: 1}), "r1"),
        ("orders/cancelled", {**second, "cancelled_at": "2026-11-19T10:00:00Z"}, "c2"),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_shuffled_and_repeated_deliveries_land_where_the_natural_order_does(client, settings, shop, seed):
    switch_on(settings, daily_limit=1)
    token = token_of(visit(client, advocate_link(client)))
    deliveries = _referral_deliveries(token)
    chosen = random.Random(seed)
    shuffled = deliveries + [(t, p, f"{w}-again") for t, p, w in chosen.sample(deliveries, 3)]
    chosen.shuffle(shuffled)
    for topic, payload, webhook_id in shuffled:
        assert deliver(client, topic, payload, webhook_id=webhook_id).status_code == 200
    # Natural order: order 1 qualifies then is refunded (reversed), order 2 is cancelled (void), order 3 is
    # friend 6001's second order.
    assert state(settings) == [
        (1, "reversed", None, 0),
        (2, "void", None, 0),
        (3, "blocked", "not_first_order", 0),
        ("points", 0),
    ]


# --- bad input ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["NOSUCHCODE", "bad", "../../admin", "ABC%20DEF", "x" * 65])
def test_unknown_or_malformed_codes_get_the_plain_storefront(client, settings, shop, code):
    switch_on(settings)
    advocate_link(client)
    response = visit(client, code)
    assert response.status_code == 302 and response.headers["Location"] == "/"
    assert visits(settings) == 0


def test_a_bad_signature_gets_the_plain_storefront(client, settings, shop):
    switch_on(settings)
    code = advocate_link(client)
    params = [(k, "0" * 64 if k == "signature" else v) for k, v in signed(None)]
    assert visit(client, code, params).headers["Location"] == "/"
    assert visits(settings) == 0


def test_a_replayed_referral_request_changes_nothing(client, settings, shop):
    switch_on(settings)
    code = advocate_link(client)
    params = signed(None)
    first, again = visit(client, code, params), visit(client, code, params)
    assert token_of(first) == token_of(again)
    assert visits(settings) == 1


def test_another_shops_advocate_never_matches(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.install(session, OTHER_SHOP, None, settings.encryption_keys)
    switch_on(settings)
    switch_on(settings, shop_domain=OTHER_SHOP)
    foreign_code = advocate_link(client, 5002, shop_domain=OTHER_SHOP)
    foreign_token = token_of(visit(client, foreign_code, signed(None, shop=OTHER_SHOP)))
    assert visit(client, foreign_code).headers["Location"] == "/"  # the other shop's code, opened here
    deliver(client, "orders/paid", friend_order(1, 6001, token=foreign_token))  # its signed token, in an order here
    assert outcome(settings, 1) is None


def test_a_forged_cart_attribute_matches_nobody(client, settings, shop):
    switch_on(settings)
    token = token_of(visit(client, advocate_link(client)))
    visit_id = token.split(".")[0]
    deliver(client, "orders/paid", friend_order(1, 6001, token=f"{visit_id}.{'0' * 24}"))
    assert outcome(settings, 1) is None


def test_a_disabled_programme_gives_no_link_and_no_visit(client, settings, shop):
    code = "ABCDEFGH"
    assert visit(client, code).headers["Location"] == "/"
    with transaction(settings.database_url) as session:
        assert session.scalar(select(ReferralVisit.visit_id)) is None
