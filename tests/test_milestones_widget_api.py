"""The widget's milestone endpoints (App Proxy): progress, punches, the birthday form and shopper actions."""

from __future__ import annotations

import pytest

from plugin.db import transaction
from plugin.services import shops
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_storefront_proxy import get, post, signed

ALICE = 7001
PROGRAMME = {
    "thresholds": [{"id": "vip", "amount": "500.00", "period": "calendar_year", "points": 1000, "title": "VIP"}],
    "punch_cards": [{"id": "coffee", "every": 5, "points": 100}],
    "birthday": {"points": 200},
    "actions": [
        {"id": "insta", "title": "Follow us", "kind": "follow", "network": "instagram",
         "url": "https://instagram.com/shop", "points": 20, "cap": {"count": 1, "period": "lifetime"}},
        {"id": "review", "title": "Review", "kind": "server", "points": 50},
        {"id": "nps", "title": "Survey", "kind": "survey", "points": 30,
         "questions": [{"key": "recommend", "text": "Recommend us?", "type": "nps"}]},
    ],
}  # fmt: skip


@pytest.fixture
def programme(client, settings, shop):
    with transaction(settings.database_url) as session:
        milestone_settings.save(session, shops.get(session, SHOP), PROGRAMME, "test")
    deliver(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "380.00")]))
    deliver(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "20.00")]))


def test_the_shopper_sees_progress_punches_birthday_and_actions(client, programme):
    shown = get(client, "milestones", signed(ALICE)).json
    assert shown["thresholds"][0]["spent"] == "400.00" and shown["thresholds"][0]["remaining"] == "100.00"
    assert shown["punch_cards"][0]["punches"] == 2 and shown["punch_cards"][0]["every"] == 5
    assert shown["birthday"] == {"enabled": True, "points": 200, "when": "day", "given": None}
    assert [(a["id"], a["points"], a["available"]) for a in shown["actions"]] == [
        ("insta", 20, True), ("review", 50, True), ("nps", 30, True),
    ]  # fmt: skip


def test_a_visitor_sees_the_programme_without_progress(client, programme):
    shown = get(client, "milestones", signed(None)).json
    assert shown["member"] is False and shown["thresholds"][0]["spent"] == "0.00"


def test_the_birthday_form_refuses_31_february_and_a_second_change_in_a_year(client, programme):
    bad = post(client, "birthday", signed(ALICE), {"month": 2, "day": 31})
    assert bad.status_code == 400 and bad.json["error"]["fields"] == {"day": ["February has 29 days"]}
    assert post(client, "birthday", signed(ALICE), {"month": 5, "day": 4}).status_code == 200
    again = post(client, "birthday", signed(ALICE), {"month": 6, "day": 4})
    assert again.status_code == 409 and again.json["error"]["code"] == "birthday_locked"
    given = get(client, "milestones", signed(ALICE)).json["birthday"]["given"]
    assert (given["month"], given["day"], given["changeable"]) == (5, 4, False)


def test_a_follow_earns_once_and_a_replay_posts_nothing(client, programme):
    first = post(client, "actions/insta", signed(ALICE), {"idempotency_key": "click-1"})
    replay = post(client, "actions/insta", signed(ALICE), {"idempotency_key": "click-1"})
    over = post(client, "actions/insta", signed(ALICE), {"idempotency_key": "click-2"})
    assert (first.status_code, replay.status_code, over.status_code) == (201, 200, 409)
    assert over.json["error"]["code"] == "action_cap_reached"
    assert get(client, "widget", signed(ALICE)).json["customer"]["balance"] == 400 + 20
    insta = get(client, "milestones", signed(ALICE)).json["actions"][0]
    assert insta["available"] is False and insta["reason"]


def test_the_widget_cannot_complete_a_server_action_nor_answer_out_of_range(client, programme):
    server = post(client, "actions/review", signed(ALICE), {"idempotency_key": "k"})
    assert server.status_code == 400 and "action" in server.json["error"]["fields"]
    bad = post(client, "actions/nps", signed(ALICE), {"idempotency_key": "k", "answers": {"recommend": 12}})
    assert bad.status_code == 400 and bad.json["error"]["fields"] == {
        "answers": {"recommend": ["a whole number from 0 to 10"]}
    }
    assert (
        post(client, "actions/nps", signed(ALICE), {"idempotency_key": "k", "answers": {"recommend": 8}}).status_code
        == 201
    )


def test_a_visitor_and_a_forged_signature_are_refused(client, programme):
    assert post(client, "actions/insta", signed(None), {"idempotency_key": "k"}).status_code == 401
    assert post(client, "birthday", signed(ALICE, secret="wrong"), {"month": 1, "day": 1}).status_code == 401
    assert get(client, "milestones", signed(ALICE, secret="wrong")).status_code == 401
