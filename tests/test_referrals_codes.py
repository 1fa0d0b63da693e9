"""The referred friend's discount code: made once by the queued look-up-first job, tied back by the order."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from plugin import create_app
from plugin.services import referrals
from tests.conftest import deliver
from tests.referral_helpers import advocate_link, advocate_points, friend_order, outcome, switch_on, token_of, visit
from tests.test_storefront_proxy import signed


@pytest.fixture
def shop_client(fake_shop_api, shop_with_token):
    """A test client whose friends' codes are created in the in-process fake shop."""
    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings, state


def panel(client, token: str, customer_id: int | None = None) -> dict:
    answer = client.get(f"/proxy/referral?{urlencode(signed(customer_id, extra=[('token', token)]))}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def test_a_friend_gets_one_first_order_code_and_using_it_ties_the_order_to_the_advocate(shop_client):
    client, settings, state = shop_client
    switch_on(settings, friend_reward_kind="percentage", friend_reward_percent="15")
    token = token_of(visit(client, advocate_link(client)))
    friend = panel(client, token)["friend"]
    assert friend["code_status"] == "issued" and friend["reward"] == "15% off your first order"
    assert friend["cart_attribute"] == {"name": "_loyalty_referral", "value": token}
    made = state.codes[friend["code"]]["input"]
    assert made["usageLimit"] == 1 and made["appliesOncePerCustomer"] is True
    assert made["context"] == {"all": "ALL"} and made["customerGets"]["value"] == {"percentage": 0.15}
    # The job run again (a retry, or the sweeper) finds the code and makes no second one.
    visit_id = token.split(".")[0]
    assert referrals.issue(settings, 1, visit_id) == "issued"
    assert state.creates[friend["code"]] == 1
    deliver(client, "orders/paid", friend_order(1, 6001, code=friend["code"].lower()))  # no cart attribute
    assert outcome(settings, 1) == ("qualified", None, 500)
    assert advocate_points(settings) == 500


def test_past_the_daily_number_of_friend_codes_a_visit_gives_none_but_still_ties_the_friend(shop_client):
    client, settings, state = shop_client
    switch_on(settings, friend_codes_per_day=0)
    token = token_of(visit(client, advocate_link(client)))
    assert panel(client, token)["friend"]["code_status"] == "none"
    assert state.codes == {}
    deliver(client, "orders/paid", friend_order(1, 6001, token=token))
    assert outcome(settings, 1) == ("qualified", None, 500)


def test_the_share_panel_gives_a_member_their_link_and_a_visitor_none(shop_client):
    client, settings, _ = shop_client
    switch_on(settings, advocate_points=250)
    code = advocate_link(client)
    mine = panel(client, "", 5001)
    assert mine["link"] == {"code": code, "path": f"/apps/loyalty/r/{code}"} and mine["advocate_points"] == 250
    assert panel(client, "", None)["link"] is None
    assert panel(client, "forged.token", None)["friend"] is None
