"""The referral advocate's catalogue reward: issued once when the friend's order stands, taken back after a refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.jobs.tasks import settle_grants_with
from plugin.models import Posting, Referral
from plugin.services import referrals, shops
from tests import builders
from tests.conftest import SHOP, deliver
from tests.referral_helpers import ADVOCATE, advocate_link, advocate_points, friend_order, switch_on, token_of, visit
from tests.test_reward_grants import TEN_OFF, grants_of
from tests.test_rewards_items import offer


@pytest.fixture
def shop_client(fake_shop_api, shop_with_token):
    """The app whose Admin API calls reach the in-process fake shop, its settings and the fake shop's state."""
    from plugin import create_app

    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings, state


def test_an_advocate_must_get_points_or_an_existing_reward(settings, shop):
    offer(settings, TEN_OFF)
    with pytest.raises(ValidationError) as refused:
        switch_on(settings, advocate_points=0)
    assert refused.value.messages == {"advocate_points": ["give points above 0, a reward from the catalogue, or both"]}
    with pytest.raises(ValidationError) as refused:
        switch_on(settings, advocate_points=0, advocate_reward="gone")
    assert refused.value.messages == {"advocate_reward": ["no reward 'gone' in the shop's catalogue"]}
    with transaction(settings.database_url) as session:
        assert not referrals.current(session, shop).enabled  # nothing saved
    switch_on(settings, advocate_points=0, advocate_reward="ten-off")
    with transaction(settings.database_url) as session:
        saved = referrals.current(session, shop)
    assert (saved.advocate_points, saved.advocate_reward) == (0, "ten-off")


def referred(client, order_id: int = 1, friend: int = 6001) -> dict:
    order = friend_order(order_id, friend, token=token_of(visit(client, advocate_link(client))))
    assert deliver(client, "orders/paid", order).status_code == 200
    return order


def advocate_grants(settings):
    return [g for g in grants_of(settings) if g.granted_by["source_type"] == "referral"]


def test_a_good_referral_gives_the_advocate_one_reward_code_whatever_the_repeats(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    switch_on(settings, advocate_points=0, advocate_reward="ten-off")
    order = referred(client)
    [grant] = advocate_grants(settings)
    assert (grant.status, grant.points, grant.reward_id) == ("issued", 0, "ten-off")
    assert grant.idempotency_key == f"grant:referral:1:{grant.member_id}:1:referral"
    assert state.creates[grant.code] == 1
    deliver(client, "orders/paid", order)  # a duplicate delivery
    deliver(client, "orders/paid", order)
    assert [g.id for g in advocate_grants(settings)] == [grant.id] and state.creates[grant.code] == 1
    assert advocate_points(settings) == 0  # a reward only: no referral points
    with transaction(settings.database_url) as session:
        assert session.scalar(select(Referral.reward_redemption_id)) == grant.id


def test_the_reward_waits_for_the_pending_period_and_a_refund_before_it_gives_nothing(shop_client):
    client, settings, _state = shop_client
    offer(settings, TEN_OFF)
    switch_on(settings, pending_days=30, advocate_points=100, advocate_reward="ten-off")
    referred(client, 1, 6001)
    referred(client, 2, 6002)
    deliver(client, "refunds/create", builders.refund(91, 2, {21: 1}))  # the second friend's order, refunded early
    assert advocate_grants(settings) == []
    later = datetime(2026, 11, 20, 10, tzinfo=UTC) + timedelta(days=30, seconds=1)
    for _ in range(2):  # the settle job run twice gives once
        with transaction(settings.database_url) as session:
            referrals.settle_due(session, shops.get(session, SHOP), later)
        settle_grants_with(settings)
    [grant] = advocate_grants(settings)
    assert grant.status == "issued" and grant.granted_by["source_id"] == "1"
    assert advocate_points(settings) == 100  # the points and the reward, for the order that stood
    with transaction(settings.database_url) as session:
        assert referrals.due_shops(session, later) == []  # given: not due again


def test_a_refund_after_the_pending_period_deactivates_an_unused_reward_code(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    switch_on(settings, advocate_points=0, advocate_reward="ten-off")
    referred(client)
    [grant] = advocate_grants(settings)
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    [taken] = advocate_grants(settings)
    assert taken.status == "cancelled" and state.codes[grant.code]["deleted"]
    assert "the friend's order was refunded or cancelled" in taken.reason
    with transaction(settings.database_url) as session:
        row = session.execute(select(Referral)).scalar_one()
        assert (row.status, row.reward_redemption_id) == ("reversed", None)


def test_a_refund_after_the_advocate_used_the_code_takes_its_value_back_under_the_policy(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    switch_on(settings, advocate_points=0, advocate_reward="ten-off")
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": "stop_at_zero"})
    referred(client)
    [grant] = advocate_grants(settings)
    state.codes[grant.code]["used"] += 1
    with transaction(settings.database_url) as session:
        before = shops.member(session, shops.get(session, SHOP), ADVOCATE).balance  # their own order's points
    assert 0 < before < 1000
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    [taken] = advocate_grants(settings)
    assert taken.status == "issued" and taken.revoked_at is not None and not state.codes[grant.code]["deleted"]
    with transaction(settings.database_url) as session:
        advocate = shops.member(session, shops.get(session, SHOP), ADVOCATE)
        postings = session.execute(
            select(Posting.kind, Posting.points, Posting.note).where(
                Posting.source_type == "redemption", Posting.member_id == advocate.id
            ).order_by(Posting.id)
        ).all()  # fmt: skip
        # stop_at_zero: what the balance cannot pay of the reward's 1000 points is forgiven first, then reversed.
        assert [(kind, points) for kind, points, _ in postings] == [("forgive", 1000 - before), ("reverse", -1000)]
        assert all("taken back after it was used" in note and "stop_at_zero" in note for _, _, note in postings)
        assert advocate.balance == 0
        assert ledger.verify(session) == []
