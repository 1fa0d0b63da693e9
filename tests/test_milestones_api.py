"""The milestone programme through the admin API and the CLI: read, save, refuse bad input per field."""

from __future__ import annotations

import json

from tests.conftest import SHOP
from tests.test_admin_api import call, session_token

PROGRAMME = {
    "thresholds": [{"id": "big", "amount": "500.00", "period": "calendar_year", "points": 250}],
    "punch_cards": [{"id": "coffee", "every": 5, "points": 40}],
    "signup": {"points": 100},
}


def test_the_programme_is_empty_at_version_0_then_saved_as_versions(client, shop):
    token = session_token()
    assert call(client, "GET", "milestones", token).json == {
        "thresholds": [], "punch_cards": [], "signup": {"points": 0, "since": None},
        "birthday": {"points": 0, "when": "day", "metafield": None}, "actions": [], "version": 0,
    }  # fmt: skip
    saved = call(client, "PUT", "milestones", token, PROGRAMME).json
    assert saved["version"] == 1 and saved["thresholds"][0]["amount"] == "500.00" and saved["signup"]["since"]
    again = call(client, "PUT", "milestones", token, saved).json  # what a GET returns can be sent back
    assert again["version"] == 2 and again["signup"]["since"] == saved["signup"]["since"]
    assert call(client, "GET", "milestones", token).json == again


def test_a_threshold_at_or_below_zero_and_a_card_of_fewer_than_2_are_refused_per_field(client, shop):
    token = session_token()
    bad = {
        "thresholds": [{"id": "big", "amount": "0", "points": 5}],
        "punch_cards": [{"id": "coffee", "every": 1, "points": 40}],
    }
    response = call(client, "PUT", "milestones", token, bad)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid_milestones"
    assert error["fields"]["thresholds"]["0"]["amount"] and error["fields"]["punch_cards"]["0"]["every"]
    assert call(client, "GET", "milestones", token).json["version"] == 0  # nothing saved


def test_the_api_refuses_a_request_without_a_session_token(client, shop):
    assert call(client, "GET", "milestones", None).status_code == 401


def test_the_cli_shows_and_saves_the_programme_and_refuses_bad_input(app, shop):
    runner = app.test_cli_runner()
    saved = runner.invoke(args=["loyalty", "milestones", "save", SHOP, json.dumps(PROGRAMME)])
    assert saved.exit_code == 0, saved.output
    shown = json.loads(runner.invoke(args=["loyalty", "milestones", "show", SHOP]).output)
    assert shown["version"] == 1 and shown["punch_cards"][0]["every"] == 5
    refused = runner.invoke(
        args=["loyalty", "milestones", "save", SHOP, '{"punch_cards": [{"id": "c", "every": 1, "points": 1}]}']
    )
    assert refused.exit_code != 0 and "every" in refused.output
