"""The admin's Tiers page in a real headless Chromium, offline: counts per tier, refusals per field, who moves, save."""

from __future__ import annotations

import json

import pytest

from tests import builders
from tests.admin_ui import admin_url, axe_violations
from tests.conftest import deliver
from tests.test_admin_api import call, session_token
from tests.test_admin_ui_pages import screenshot, toast

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]

PROGRAMME = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100"},
        {"id": "gold", "name": "Gold", "threshold": "300", "multiplier": "2", "free_shipping": True},
    ],
}


@pytest.fixture
def shoppers(app, shop):
    client = app.test_client()
    assert call(client, "PUT", "tiers", session_token(), PROGRAMME).status_code == 200
    for n, amount in ((1, "350.00"), (2, "150.00"), (3, "20.00")):
        deliver(client, "orders/paid", builders.order(n, 7000 + n, [builders.line(n * 10, amount)]))


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("\t") if cell.strip()]


def test_tiers_show_counts_refuse_per_field_preview_who_moves_and_save(shoppers, admin, page):
    page.goto(admin_url(admin, "tiers"))
    page.get_by_text("Tiers version 1").wait_for()
    rows = [r for r in page.locator("table").first.inner_text().split("\n") if r.strip()]
    assert cells(rows[1]) == ["No tier", "2"]  # the admin fixture's member 1001 too
    assert cells(rows[2]) == ["Silver", "silver", "100", "1\u00d7", "1"]
    assert axe_violations(page) == []

    broken = {**PROGRAMME, "tiers": list(reversed(PROGRAMME["tiers"]))}
    page.get_by_label("Tier programme (JSON)").fill(json.dumps(broken))
    page.get_by_role("button", name="Save as a new version").click()
    refusal = page.locator("#tiers-refusal")
    refusal.wait_for()
    assert refusal.inner_text() == "tiers.1.threshold: thresholds must rise: 100 is not above tier 0's 300"
    toast(page, "Tiers not saved")

    raised = {**PROGRAMME, "tiers": [{**PROGRAMME["tiers"][0], "threshold": "10"}, PROGRAMME["tiers"][1]]}
    page.get_by_label("Tier programme (JSON)").fill(json.dumps(raised))
    page.get_by_role("button", name="Preview who moves").click()
    summary = page.locator("#tiers-preview-summary")
    summary.wait_for()
    assert summary.inner_text() == "4 members; 1 would change tier."
    screenshot(page, "tiers")

    page.get_by_role("button", name="Save as a new version").click()
    page.get_by_text("Tiers version 2").wait_for()
    rows = [r for r in page.locator("table").first.inner_text().split("\n") if r.strip()]
    assert cells(rows[1])[-1] == "1" and cells(rows[2])[-1] == "2"
