"""The admin's Milestones page in a real headless Chromium: edit, refusals on their fields, save, action keys."""

from __future__ import annotations

import pytest

from tests.admin_ui import admin_url, axe_violations
from tests.test_admin_api import call, session_token
from tests.test_admin_ui_pages import error_of, screenshot, toast

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


def test_the_programme_is_edited_refused_per_field_then_saved(admin, page, client):
    page.goto(admin_url(admin, "milestones"))
    page.get_by_text("No spend thresholds.").wait_for()
    assert page.get_by_text("Thresholds, punch cards, bonuses and actions (version 0)").is_visible()

    page.get_by_role("button", name="Add a threshold").click()
    page.get_by_role("button", name="Add a punch card").click()
    page.get_by_text("Unsaved changes").wait_for()
    page.get_by_label("Id", exact=True).nth(0).fill("vip")
    page.get_by_label("Spend amount").fill("0")
    page.get_by_label("Points", exact=True).nth(0).fill("250")
    page.get_by_label("Id", exact=True).nth(1).fill("coffee")
    page.get_by_label("Every N orders").fill("1")
    page.get_by_label("Points", exact=True).nth(1).fill("100")
    page.get_by_label("Birthday bonus (points)").fill("200")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Milestones not saved").wait_for()
    assert error_of(page.get_by_label("Spend amount")) == "must be between 0.01 and 1000000000"
    assert error_of(page.get_by_label("Every N orders")) == "N must be 2 to 1000 orders"

    page.get_by_label("Spend amount").fill("500.00")
    page.get_by_label("Every N orders").fill("5")
    page.get_by_role("button", name="Add an action").click()
    page.get_by_label("Id", exact=True).nth(2).fill("nps")
    page.get_by_label("Title", exact=True).nth(2).fill("Tell us how we do")
    page.get_by_label("Kind").select_option("survey")
    page.get_by_label("Points", exact=True).nth(2).fill("30")
    page.get_by_label("Questions").fill("recommend | nps | How likely are you to recommend us?")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Milestones saved (version 1)")
    saved = call(client, "GET", "milestones", session_token()).json
    assert saved["thresholds"][0]["amount"] == "500.00" and saved["punch_cards"][0]["every"] == 5
    assert saved["birthday"]["points"] == 200
    assert saved["actions"][0]["questions"] == [
        {"key": "recommend", "text": "How likely are you to recommend us?", "type": "nps"}
    ]
    assert axe_violations(page) == []
    screenshot(page, "milestones")


def test_an_action_key_is_shown_once_then_revoked(admin, page, client):
    page.goto(admin_url(admin, "milestones"))
    page.get_by_text("No action keys yet.").wait_for()
    page.get_by_label("Name", exact=True).last.fill("reviews app")
    page.get_by_role("button", name="Create key").click()
    page.get_by_text("Copy this secret now: it will not be shown again.").wait_for()
    assert page.get_by_label("Secret").input_value().startswith("lsec_")
    page.get_by_role("button", name="Revoke reviews app").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    toast(page, "Key revoked")
    keys = call(client, "GET", "action-keys", session_token()).json["keys"]
    assert keys[0]["revoked_at"] is not None


def test_a_threshold_grants_a_reward_picked_from_the_catalogue(admin, page, client):
    page.goto(admin_url(admin, "milestones"))
    page.get_by_text("No spend thresholds.").wait_for()
    page.get_by_role("button", name="Add a threshold").click()
    page.get_by_label("Id", exact=True).fill("vip")
    page.get_by_label("Spend amount").fill("500.00")
    page.get_by_label("Points", exact=True).fill("0")
    page.get_by_role("button", name="Save", exact=True).click()  # neither points nor a reward: refused on points
    page.get_by_role("heading", name="Milestones not saved").wait_for()
    refused = error_of(page.get_by_label("Points", exact=True))
    assert refused == "give points above 0, a reward from the catalogue, or both"
    reward = page.get_by_label("Reward from the catalogue")
    assert reward.locator("option").all_inner_texts() == ["None (points only)", "5.00 off (5-off)"]
    reward.select_option("5-off")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Milestones saved (version 1)")
    saved = call(client, "GET", "milestones", session_token()).json
    assert (saved["thresholds"][0]["points"], saved["thresholds"][0]["reward"]) == (0, "5-off")
