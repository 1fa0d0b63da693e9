"""The admin API and CLI for expiry settings: off by default, saved when coherent, refused per field when not."""

from __future__ import annotations

import json

from tests.test_admin_api import call, session_token


def test_expiry_is_off_by_default_and_saved_when_coherent(client, shop):
    assert call(client, "GET", "expiry", session_token()).get_json() == {
        "policy": "off", "months": None, "reminder_days": [],
    }  # fmt: skip
    body = {"policy": "per_lot", "months": 12, "reminder_days": [7, 30]}
    saved = call(client, "PUT", "expiry", session_token(), json=body)
    assert saved.status_code == 200 and saved.get_json()["reminder_days"] == [30, 7]
    assert call(client, "GET", "expiry", session_token()).get_json()["months"] == 12


def test_contradictory_expiry_settings_are_refused_with_per_field_messages(client, shop):
    response = call(client, "PUT", "expiry", session_token(), json={"policy": "off", "reminder_days": [7]})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "reminders need expiry" in error["fields"]["reminder_days"][0]
    assert call(client, "PUT", "expiry", session_token(), json=[1]).status_code == 400
    assert call(client, "GET", "expiry", session_token()).get_json()["policy"] == "off"


def test_the_cli_sets_runs_and_reports_the_next_expiry(app, shop):
    runner = app.test_cli_runner()
    domain = "loyal-shop.myshopify.com"
    bad = runner.invoke(args=["loyalty", "expiry", "set", domain, '{"policy": "per_lot"}'])
    assert bad.exit_code != 0 and "months: required" in bad.output
    ok = runner.invoke(args=["loyalty", "expiry", "set", domain, '{"policy": "inactivity", "months": 6}'])
    assert json.loads(ok.output)["policy"] == "inactivity"
    ran = json.loads(runner.invoke(args=["loyalty", "expiry", "run", domain]).output)
    assert ran["points_expired"] == 0 and ran["already_done"] is False
    assert json.loads(runner.invoke(args=["loyalty", "expiry", "run", domain]).output)["already_done"] is True
    assert json.loads(runner.invoke(args=["loyalty", "expiry", "next", domain, "7001"]).output) is None
