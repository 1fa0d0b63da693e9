"""The admin's Programme page in a real headless Chromium, offline: edit the earning rules, preview, save, history."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import RuleSetVersion, Shop
from tests.admin_ui import admin_url, axe_violations
from tests.test_admin_api import call, session_token
from tests.test_admin_ui_pages import SCREENSHOT_DIR, error_of, screenshot, toast
from tests.test_earning_preview import pay

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


@pytest.fixture
def orders(settings, shop):
    """Two orders paid yesterday; only customer 7001's has product 501 (for 100.00)."""
    pay(settings, 1, 7001, ("100.00", 501), ("50.00", 502))
    pay(settings, 2, 7002, ("30.00", 502))


def add_rule(page, kind: str) -> None:
    page.get_by_label("New rule type").select_option(kind)
    page.get_by_role("button", name="Add rule").click()


def test_the_rules_are_edited_refused_per_field_previewed_then_saved_as_a_new_version(orders, admin, page, settings):
    page.goto(admin_url(admin, "programme"))
    page.get_by_text("No rules: every order earns the settings' rate.").wait_for()
    assert page.get_by_text("Rules version 0").is_visible()
    assert page.get_by_label("Time zone").input_value() == "UTC"
    save_bar = page.get_by_text("Unsaved changes")
    assert save_bar.count() == 0

    add_rule(page, "multiplier")
    save_bar.wait_for()
    multiplier = page.get_by_label("Multiplier", exact=True)
    multiplier.fill("0")
    page.get_by_label("Matching lines (JSON)").fill('{"product_ids": [501]}')
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Some rules are not valid").wait_for()
    assert error_of(multiplier) == "must be above 0, at most 100"  # from the API's fields, on the field it names
    assert error_of(page.get_by_label("Matching lines (JSON)")) is None
    assert save_bar.is_visible()  # refused: still unsaved

    multiplier.fill("2")
    page.get_by_label("Name (optional)").fill("Coats")
    expect(page.get_by_role("main")).to_contain_text("\u00d7 2 on matching lines")  # the rule's summary follows edits
    page.get_by_role("button", name="Preview", exact=True).click()
    points = page.locator("#preview-points")
    points.wait_for()
    assert points.inner_text() == "180 → 280 (+100)"  # order 1's coat now earns twice
    assert page.locator("#preview-money").inner_text() == "1.80 → 2.80 (+1.00)"
    assert page.locator("#preview-members").inner_text() == "1"
    largest = page.get_by_role("table").first.locator("tbody tr")
    assert largest.all_inner_texts() == ["1\t7001\t150\t250\t+100"]
    assert axe_violations(page) == []
    with transaction(settings.database_url) as session:
        assert session.scalar(select(Shop.rules_version)) == 0  # a preview saves nothing

    if SCREENSHOT_DIR:  # a picture without the earlier refusal's toast
        page.get_by_text("Rules not saved", exact=True).wait_for(state="detached")
    screenshot(page, "programme")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Rules saved (version 1)")
    assert save_bar.count() == 0
    assert page.get_by_text("Rules version 1").is_visible()
    history = page.get_by_role("table").last.locator("tbody tr")
    history.first.wait_for()
    assert history.first.inner_text().split("\t")[0] == "1"
    with transaction(settings.database_url) as session:
        [version] = session.scalars(select(RuleSetVersion)).all()
    assert (version.version, version.actor) == (1, "admin")
    [rule] = version.rules["rules"]
    assert (rule["type"], rule["id"], rule["name"], rule["multiplier"]) == ("multiplier", "multiplier-1", "Coats", "2")
    assert rule["match"]["product_ids"] == [501]


def test_a_preview_of_refused_rules_marks_the_field_and_shows_no_figures(admin, page):
    page.goto(admin_url(admin, "programme"))
    page.get_by_role("button", name="Add rule").wait_for()
    add_rule(page, "points_cap")
    cap = page.get_by_label("Maximum points per order")
    cap.fill("-3")
    page.get_by_role("button", name="Preview", exact=True).click()
    page.get_by_role("heading", name="Some rules are not valid").wait_for()
    assert error_of(cap)  # the preview nests the rule set's errors under "rules"; they still land on the field
    assert page.locator("#preview-points").count() == 0
    assert axe_violations(page) == []

    page.get_by_role("button", name="Discard").click()
    assert cap.count() == 0 and page.get_by_text("Unsaved changes").count() == 0


def test_the_saved_rules_and_their_history_read_in_french(admin, page, client):
    rules = {"time_zone": "Europe/Paris", "rules": [{"type": "fixed_points", "points": 500, "name": "par visite"}]}
    assert call(client, "PUT", "rules", session_token(), json=rules).status_code == 200
    page.goto(admin_url(admin, "programme", locale="fr"))
    page.get_by_text("500 points par commande payée").wait_for()
    assert page.get_by_text("Règles, version 1").is_visible()
    assert page.get_by_label("Fuseau horaire").input_value() == "Europe/Paris"
    expect(page.get_by_role("main")).to_contain_text("Historique des versions")  # the history loads apart
