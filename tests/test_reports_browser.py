"""The admin's Reports page in Chromium: the worked example's figures, charts, the tie-out, a refused range."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.admin_ui import admin_url, axe_violations, serve
from tests.processes import stop
from tests.test_reports_worked_example import small_shop  # noqa: F401  (the worked example's shop)

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")  # set to docs/ to refresh the README's picture


@pytest.fixture
def reports_admin(settings, small_shop):  # noqa: F811
    app, base_url = serve(settings)
    yield base_url
    stop(app)


def _show(page, start: str, end: str, point_value: str = "") -> None:
    page.get_by_label("From").fill(start)
    page.get_by_label("To (included)").fill(end)
    page.get_by_label("Point value").fill(point_value)
    page.get_by_role("button", name="Show").click()


def test_the_reports_page_shows_the_worked_example_with_charts_and_the_tie_out(reports_admin, page):
    page.goto(admin_url(reports_admin, "reports"))
    page.locator("#report-period").wait_for()
    _show(page, "2025-01-01", "2025-03-31")
    page.get_by_text("2025-01-01 \u2013 2025-03-31 (Europe/Paris)").wait_for()
    figures = {name: page.locator(f"#kpi-{name}").inner_text() for name in ("members", "active-30", "active-90")}
    assert figures == {"members": "3", "active-30": "1", "active-90": "3"}
    assert page.locator("#kpi-redemption-rate").inner_text() == "44.44 %"  # 1000 / 2250
    assert page.locator("#kpi-aov").inner_text() == "58.33 / 40.00"  # redeemers / others
    assert page.locator("#kpi-roi").inner_text() == "\u00d7 5.00"  # 25.00 of sales for a 5.00 reward
    assert page.locator("#tie-out").inner_text() == (
        "Ties out: the closing balance equals the ledger exactly (450 points)."
    )
    assert page.locator("#point-value").inner_text() == "0.01 per point (implied by redeemed rewards)"
    chart = page.get_by_role("img", name=re.compile("Points issued and redeemed, by month"))
    chart.locator("svg").first.wait_for()
    assert chart.get_attribute("aria-label") == (
        "Points issued and redeemed, by month: 2025-01: 1,500 / 500, 2025-02: 300 / 500, 2025-03: 450 / 0"
    )
    table = page.get_by_role("table").first.inner_text()
    for text in ("Opening", "Issued: orders", "Expired", "Closing", "Of which pending"):
        assert text in table
    assert axe_violations(page) == []
    if SCREENSHOT_DIR:
        page.set_viewport_size({"width": 1280, "height": 2200})
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "screenshot-admin-reports.png"), full_page=True)


def test_a_refused_range_lands_on_its_field(reports_admin, page):
    page.goto(admin_url(reports_admin, "reports"))
    page.locator("#report-period").wait_for()
    _show(page, "2025-03-01", "2025-02-01")
    page.get_by_text("These reports could not be made").wait_for()
    assert page.get_by_label("To (included)").get_attribute("aria-invalid") == "true"
    page.get_by_text("the end is before the start").first.wait_for()
    _show(page, "2025-03-01", "2025-03-31", "0")
    page.get_by_text("must be greater than 0").first.wait_for()
    assert page.get_by_label("Point value").get_attribute("aria-invalid") == "true"
