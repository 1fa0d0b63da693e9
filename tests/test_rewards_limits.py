"""Reward limits: per customer per period, a total available, a start and end date; refused with 409, shown why."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from plugin import create_app
from plugin.db import transaction
from plugin.models import Posting, Redemption
from plugin.programme import rewards
from plugin.programme.rewards import Reward
from plugin.services import redemption, shops
from tests.conftest import SHOP
from tests.test_admin_api import call, session_token
from tests.test_redemption import balance, give_points
from tests.test_storefront_proxy import get, post, signed

NOW = datetime(2026, 12, 2, 17, 30, tzinfo=UTC)


@pytest.fixture
def shop_client(fake_shop_api, shop_with_token):
    """A test client whose redemptions create codes in the in-process fake shop, and its settings."""
    settings, _state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings


def offer(settings, *items: dict) -> None:
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"rewards": list(items)})


def ship(**limits) -> dict:
    return {"id": "ship", "kind": "free_shipping", "points": 100, **limits}


def redeem_at(settings, customer_id: int, now: datetime, reward_id: str = "ship") -> int:
    with transaction(settings.database_url) as session:
        return redemption.redeem(session, shops.get(session, SHOP), customer_id, reward_id, now=now).id


def set_status(settings, redemption_id: int, status: str) -> None:
    with transaction(settings.database_url) as session:
        session.execute(select(Redemption).where(Redemption.id == redemption_id)).scalar_one().status = status


def redeem_postings(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(Posting).where(Posting.kind == "redeem"))


# The rule, pure.


def test_period_start_is_the_utc_calendar_day_week_month_or_year():
    assert rewards.period_start("day", NOW) == datetime(2026, 12, 2, tzinfo=UTC)
    assert rewards.period_start("week", NOW) == datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
    assert rewards.period_start("month", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert rewards.period_start("year", NOW) == datetime(2026, 1, 1, tzinfo=UTC)
    assert rewards.period_start("lifetime", NOW) is None


def test_unavailable_names_the_first_reason_that_applies():
    window = Reward("r", "free_shipping", 1, "R", available_from=NOW, available_until=NOW + timedelta(days=1))
    assert rewards.unavailable(window, NOW - timedelta(seconds=1), 0, 0).reason == rewards.NOT_YET
    assert rewards.unavailable(window, NOW, 0, 0) is None
    assert rewards.unavailable(window, NOW + timedelta(days=1), 0, 0).reason == rewards.ENDED
    counted = Reward("r", "free_shipping", 1, "R", total_available=3, per_customer_limit=1)
    assert rewards.unavailable(counted, NOW, 2, 0) is None
    assert rewards.unavailable(counted, NOW, 3, 0).reason == rewards.SOLD_OUT
    assert rewards.unavailable(counted, NOW, 2, 1).reason == rewards.LIMIT_REACHED
    assert not Reward("r", "free_shipping", 1, "R").limited and counted.limited


def test_limits_of_zero_or_less_and_an_empty_window_are_refused_per_field():
    bad = ship(per_customer_limit=0, total_available=-1, per_customer_period="fortnight")
    with pytest.raises(rewards.ValidationError) as refused:
        rewards.validate_catalogue([bad])
    assert set(refused.value.messages[0]) == {"per_customer_limit", "total_available", "per_customer_period"}
    backwards = ship(available_from="2026-12-02T00:00:00+00:00", available_until="2026-12-01T00:00:00+00:00")
    with pytest.raises(rewards.ValidationError) as refused:
        rewards.validate_catalogue([backwards])
    assert "available_until" in refused.value.messages[0]
    with pytest.raises(rewards.ValidationError) as refused:
        rewards.validate_catalogue([ship(available_from="2026-12-02T00:00:00")])  # which zone? refused, not guessed
    assert "available_from" in refused.value.messages[0]


def test_limits_survive_a_round_trip_through_the_stored_json():
    (stored,) = rewards.validate_catalogue(
        [
            ship(
                per_customer_limit=2,
                per_customer_period="month",
                total_available=10,
                available_from="2026-12-01T00:00:00+01:00",
            )
        ]
    )
    reward = Reward.from_json(stored)
    assert (reward.per_customer_limit, reward.per_customer_period, reward.total_available) == (2, "month", 10)
    assert reward.available_from == datetime(2026, 11, 30, 23, tzinfo=UTC)


def test_a_redemption_stored_before_limits_existed_still_reads():
    old = {
        "id": "5-off",
        "kind": "fixed_amount",
        "points": 500,
        "title": "5 off",
        "amount": "5.00",
        "percent": None,
        "min_subtotal": None,
        "lifetime_days": 30,
        "customer_only": True,
        "single_use": True,
    }
    reward = Reward.from_json(old)
    assert not reward.limited and reward.per_customer_period == "lifetime"


# The service.


def test_a_customer_limit_per_period_refuses_the_next_one_and_posts_nothing(settings, shop):
    offer(settings, ship(per_customer_limit=1, per_customer_period="month"))
    give_points(settings, 7001, 1000)
    redeem_at(settings, 7001, NOW)
    with pytest.raises(redemption.RewardUnavailable) as refused:
        redeem_at(settings, 7001, NOW + timedelta(days=1))
    assert refused.value.reason == rewards.LIMIT_REACHED and refused.value.code == "reward_unavailable"
    assert balance(settings, 7001) == 900 and redeem_postings(settings) == 1
    redeem_at(settings, 7001, datetime(2027, 1, 1, tzinfo=UTC))  # a new month
    assert balance(settings, 7001) == 800


def test_the_customer_limit_is_per_customer(settings, shop):
    offer(settings, ship(per_customer_limit=1))
    give_points(settings, 7001, 1000)
    give_points(settings, 7002, 1000)
    redeem_at(settings, 7001, NOW)
    redeem_at(settings, 7002, NOW)
    with pytest.raises(redemption.RewardUnavailable):
        redeem_at(settings, 7001, NOW)


def test_a_sold_out_reward_is_refused_and_a_failed_or_cancelled_one_frees_its_place(settings, shop):
    offer(settings, ship(total_available=2))
    for customer in (7001, 7002, 7003):
        give_points(settings, customer, 1000)
    first = redeem_at(settings, 7001, NOW)
    second = redeem_at(settings, 7002, NOW)
    with pytest.raises(redemption.RewardUnavailable) as refused:
        redeem_at(settings, 7003, NOW)
    assert refused.value.reason == rewards.SOLD_OUT and balance(settings, 7003) == 1000
    set_status(settings, first, redemption.FAILED)
    redeem_at(settings, 7003, NOW)
    set_status(settings, second, redemption.CANCELLED)
    redeem_at(settings, 7001, NOW)  # the limit is live redemptions, not every one ever made
    assert redeem_postings(settings) == 4


def test_out_of_window_rewards_are_refused(settings, shop):
    offer(settings, ship(available_from="2026-12-01T00:00:00+00:00", available_until="2026-12-31T00:00:00+00:00"))
    give_points(settings, 7001, 1000)
    with pytest.raises(redemption.RewardUnavailable, match="available from"):
        redeem_at(settings, 7001, datetime(2026, 11, 30, tzinfo=UTC))
    with pytest.raises(redemption.RewardUnavailable, match="ended"):
        redeem_at(settings, 7001, datetime(2026, 12, 31, tzinfo=UTC))
    redeem_at(settings, 7001, NOW)
    assert redeem_postings(settings) == 1


def test_a_repeated_idempotency_key_still_returns_its_redemption_once_the_limit_is_reached(settings, shop):
    offer(settings, ship(per_customer_limit=1))
    give_points(settings, 7001, 1000)
    with transaction(settings.database_url) as session:
        first = redemption.redeem(session, shops.get(session, SHOP), 7001, "ship", "click-1").id
    with transaction(settings.database_url) as session:
        assert redemption.redeem(session, shops.get(session, SHOP), 7001, "ship", "click-1").id == first


@pytest.mark.skipif("sqlite" in __import__("os").environ.get("TEST_DATABASE_URL", ""), reason="PostgreSQL locks")
def test_two_customers_racing_for_the_last_one_get_it_once(settings, shop):
    offer(settings, ship(total_available=1))
    customers = list(range(7001, 7009))
    for customer in customers:
        give_points(settings, customer, 1000)
    start = threading.Barrier(len(customers))
    outcomes: list[str] = []

    def race(customer: int) -> None:
        start.wait()
        try:
            redeem_at(settings, customer, NOW)
            outcomes.append("won")
        except redemption.RewardUnavailable:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(customer,)) for customer in customers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * (len(customers) - 1) + ["won"]
    assert redeem_postings(settings) == 1


# The front doors: the App Proxy and the admin API.


def test_the_widget_shows_why_a_reward_is_unavailable_and_redeeming_it_answers_409(shop_client):
    client, settings = shop_client
    offer(
        settings,
        ship(per_customer_limit=1),
        {"id": "later", "kind": "free_shipping", "points": 100, "available_from": "2999-01-01T00:00:00+00:00"},
        {"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00"},
    )
    give_points(settings, 7001, 1000)
    assert post(client, "redeem", signed(7001), {"reward_id": "ship"}).status_code == 201

    shown = {r["id"]: r for r in get(client, "widget", signed(7001)).get_json()["rewards"]}
    assert (shown["ship"]["available"], shown["ship"]["unavailable"]["code"]) == (False, "limit_reached")
    assert (shown["later"]["available"], shown["later"]["unavailable"]["code"]) == (False, "not_yet_available")
    assert (shown["5-off"]["available"], shown["5-off"]["unavailable"]) == (True, None)
    visitor = {r["id"]: r for r in get(client, "widget", signed(None)).get_json()["rewards"]}
    assert visitor["ship"]["available"] is True and visitor["later"]["available"] is False

    refused = post(client, "redeem", signed(7001), {"reward_id": "ship"})
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "reward_unavailable"
    assert post(client, "redeem", signed(7001), {"reward_id": "later"}).status_code == 409
    assert balance(settings, 7001) == 900 and redeem_postings(settings) == 1


def test_the_admin_api_refuses_bad_limits_per_field_and_saves_nothing(client, shop):
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    bad = {**current, "rewards": [ship(per_customer_limit=0, total_available=0)]}
    response = call(client, "PUT", "settings", session_token(), json=bad)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]["rewards"]["0"]
    assert set(fields) == {"per_customer_limit", "total_available"}
    assert call(client, "GET", "settings", session_token()).get_json()["version"] == 1
