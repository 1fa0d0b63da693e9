"""Referrals in the admin API and the CLI: settings refused field by field, blocked referrals, approval, figures."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest

from tests.conftest import deliver
from tests.referral_helpers import advocate_link, friend_order, outcome, switch_on, token_of, visit
from tests.test_admin_api import call, session_token
from tests.test_cli import run
from tests.test_storefront_proxy import signed


def _one_good_and_one_blocked(client, settings) -> None:
    switch_on(settings)
    code = advocate_link(client)
    token = token_of(visit(client, code))
    visit(client, code, signed(None, timestamp=int(time.time()) - 5))  # another opening, never used
    deliver(client, "orders/paid", friend_order(1, 6001, token=token))
    deliver(client, "orders/paid", friend_order(2, 6002, token=token, email="ada.lovelace@gmail.com"))


def test_settings_are_read_and_changed_with_defaults_kept(client, shop):
    token = session_token()
    body = call(client, "GET", "referrals/settings", token).get_json()
    assert body["settings"]["enabled"] is False and body["settings"]["monthly_cap"] == 10
    assert body["reasons"]["same_email"].startswith("the friend's e-mail")
    changed = call(client, "PUT", "referrals/settings", token, {"enabled": True, "daily_limit": None})
    assert changed.status_code == 200
    assert changed.get_json()["settings"] == {**body["settings"], "enabled": True, "daily_limit": None}
    assert changed.get_json()["version"] == body["version"] + 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"advocate_points": 0}, "advocate_points"),
        ({"advocate_points": "500"}, "advocate_points"),
        ({"friend_reward_kind": "free_product"}, "friend_reward_kind"),
        ({"friend_reward_amount": "-1"}, "friend_reward_amount"),
        ({"friend_reward_percent": "150"}, "friend_reward_percent"),
        ({"monthly_cap": 0}, "monthly_cap"),
        ({"monthly_cap": 2, "daily_limit": 3}, "daily_limit"),
        ({"block_same_emial": True}, "block_same_emial"),
        ({"enabled": "yes please"}, "enabled"),
    ],
)
def test_bad_settings_are_refused_field_by_field_and_nothing_is_saved(client, shop, change, field):
    token = session_token()
    before = call(client, "GET", "referrals/settings", token).get_json()
    response = call(client, "PUT", "referrals/settings", token, change)
    assert response.status_code == 422
    assert field in response.get_json()["error"]["fields"]
    assert call(client, "GET", "referrals/settings", token).get_json() == before


def test_a_settings_body_that_is_not_an_object_is_refused(client, shop):
    response = call(client, "PUT", "referrals/settings", session_token(), [1, 2])
    assert response.status_code == 422 and "_schema" in response.get_json()["error"]["fields"]


def test_without_a_session_token_nothing_is_shown(client, shop):
    for path in ("referrals/settings", "referrals", "referrals/stats"):
        assert call(client, "GET", path, None).status_code == 401


def test_support_lists_blocked_referrals_with_reasons_and_approves_one(client, settings, shop):
    _one_good_and_one_blocked(client, settings)
    token = session_token()
    blocked = call(client, "GET", "referrals?status=blocked", token).get_json()["referrals"]
    assert [(r["order_id"], r["block_reason"]) for r in blocked] == [(2, "same_email")]
    assert "dots, +tags and case" in blocked[0]["block_explanation"]
    assert call(client, "POST", "referrals/2/approve", token, {}).status_code == 400
    assert call(client, "POST", "referrals/2/approve", token, {"reason": " "}).status_code == 400
    assert call(client, "POST", "referrals/999/approve", token, {"reason": "checked"}).status_code == 404
    assert call(client, "POST", "referrals/1/approve", token, {"reason": "checked"}).status_code == 409
    approved = call(client, "POST", "referrals/2/approve", token, {"reason": "twins, checked by phone"})
    assert approved.status_code == 200
    assert approved.get_json().items() >= {"status": "qualified", "approved_by": "admin", "points_held": 500}.items()
    assert approved.get_json()["approved_reason"] == "twins, checked by phone"
    again = call(client, "POST", "referrals/2/approve", token, {"reason": "twice"})
    assert again.get_json()["approved_reason"] == "twins, checked by phone"  # a replay changes nothing
    assert outcome(settings, 2) == ("qualified", None, 500)


@pytest.mark.parametrize("query", ["status=lost", "limit=0", "limit=x", "advocate_member_id=-1"])
def test_bad_list_arguments_are_a_400_per_field(client, shop, query):
    response = call(client, "GET", f"referrals?{query}", session_token())
    assert response.status_code == 400
    assert query.split("=")[0] in json.dumps(response.get_json()["error"])


def test_figures_per_shop_and_per_advocate_in_json_and_csv(client, settings, shop):
    _one_good_and_one_blocked(client, settings)
    token = session_token()
    totals = call(client, "GET", "referrals/stats", token).get_json()["shop"]
    assert (
        totals.items()
        >= {
            "advocates": 1,
            "links_opened": 2,
            "friend_codes_issued": 0,  # the shop has no token: both codes failed to be made
            "first_orders": 2,
            "rewards_given": 1,
            "blocked": 1,
            "blocked_same_email": 1,
            "points_given": 500,
        }.items()
    )
    rows = call(client, "GET", "referrals/stats?by=advocate", token).get_json()["advocates"]
    assert [(r["customer_id"], r["rewards_given"], r["blocked_same_email"]) for r in rows] == [(5001, 1, 1)]
    text = call(client, "GET", "referrals/stats?by=advocate&format=csv", token).get_data(as_text=True)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["customer_id"] == "5001" and parsed[0]["blocked_same_email"] == "1"
    assert call(client, "GET", "referrals/stats?by=member", token).status_code == 400


def test_the_cli_shows_changes_lists_approves_and_counts(app, client, settings, shop):
    _one_good_and_one_blocked(client, settings)
    domain = "loyal-shop.myshopify.com"
    shown = run(app, "referrals", "settings", domain, "--set", "monthly_cap=4")
    assert shown.exit_code == 0 and json.loads(shown.output)["settings"]["monthly_cap"] == 4
    refused = run(app, "referrals", "settings", domain, "--set", "monthly_cap=0")
    assert refused.exit_code != 0 and "monthly_cap" in refused.output
    listed = json.loads(run(app, "referrals", "list", domain, "--status", "blocked").output)["referrals"]
    assert [r["order_id"] for r in listed] == [2]
    missing = run(app, "referrals", "approve", domain, "2", "--actor", "support:sam")
    assert missing.exit_code != 0  # no reason given
    approved = run(app, "referrals", "approve", domain, "2", "--reason", "checked", "--actor", "support:sam")
    assert approved.exit_code == 0 and json.loads(approved.output)["approved_by"] == "support:sam"
    figures = json.loads(run(app, "referrals", "stats", domain).output)["shop"]
    assert (figures["rewards_given"], figures["blocked"]) == (2, 0)
    as_csv = run(app, "referrals", "stats", domain, "--by", "advocate", "--format", "csv").output
    assert next(iter(csv.DictReader(io.StringIO(as_csv))))["rewards_given"] == "2"
