"""The rewards editor offers store credit and cash back, and the API's per-field refusals land on their fields."""

from __future__ import annotations

import pytest

from plugin.db import transaction
from plugin.services import shops
from tests.admin_ui import admin_url
from tests.conftest import SHOP
from tests.test_admin_ui_pages import error_of, toast

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


def test_staff_add_cash_back_and_store_credit_and_contradictory_bounds_are_refused_on_their_fields(
    admin, page, settings
):
    page.goto(admin_url(admin, "settings"))
    page.get_by_role("button", name="Add reward").wait_for()
    page.get_by_role("button", name="Add reward").click()
    page.get_by_role("textbox", name="ID", exact=True).nth(1).fill("cash")
    page.get_by_role("combobox", name="Kind", exact=True).nth(1).select_option("cash_back")
    page.get_by_role("spinbutton", name="Points per step", exact=True).fill("100")
    page.get_by_role("textbox", name="Store credit per step", exact=True).fill("1.00")
    fewest = page.get_by_role("spinbutton", name="Fewest points per redemption", exact=True)
    most = page.get_by_role("spinbutton", name="Most points per redemption", exact=True)
    fewest.fill("800")
    most.fill("400")
    assert page.get_by_label("Minimum subtotal (optional)").count() == 1  # only the first reward's: not on credit
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Not saved").wait_for()
    assert error_of(most) == "must be at least min_points (800)"

    most.fill("1000")
    page.get_by_role("button", name="Add reward").click()
    page.get_by_role("textbox", name="ID", exact=True).nth(2).fill("credit-5")
    page.get_by_role("combobox", name="Kind", exact=True).nth(2).select_option("store_credit")
    page.get_by_role("spinbutton", name="Points", exact=True).nth(1).fill("500")
    credit = page.get_by_role("textbox", name="Store credit amount", exact=True)
    credit.fill("0")
    page.get_by_role("button", name="Save", exact=True).click()
    # The first refusal's banner is still up: wait for this refusal's own message, not the heading.
    page.get_by_text("must be between 0.01 and 1000000000").first.wait_for()
    assert error_of(credit) == "must be between 0.01 and 1000000000"

    credit.fill("5.00")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Saved (version 2)")
    with transaction(settings.database_url) as session:
        stored = shops.get(session, SHOP).settings["rewards"]
    assert [(r["id"], r["kind"], r["points"], r.get("amount")) for r in stored] == [
        ("5-off", "fixed_amount", 500, "5.00"),
        ("cash", "cash_back", 100, "1.00"),
        ("credit-5", "store_credit", 500, "5.00"),
    ]
    assert (stored[1]["min_points"], stored[1]["max_points"]) == (800, 1000)


def test_staff_set_limits_and_items_on_a_reward_and_a_limit_of_zero_is_refused_on_its_field(admin, page, settings):
    page.goto(admin_url(admin, "settings"))
    total = page.get_by_role("spinbutton", name="Total available (optional)", exact=True)
    total.wait_for()
    page.get_by_role("spinbutton", name="Times per customer (optional)", exact=True).fill("2")
    page.get_by_role("combobox", name="Per", exact=True).select_option("month")
    total.fill("0")
    page.get_by_role("textbox", name="Only these collections (optional)", exact=True).fill(
        "gid://shopify/Collection/1\ngid://shopify/Collection/2"
    )
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Not saved").wait_for()
    assert "greater than or equal to 1" in error_of(total)

    total.fill("100")
    page.get_by_role("textbox", name="Available until (optional)", exact=True).fill("2999-01-01T00:00:00+00:00")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Saved (version 2)")
    with transaction(settings.database_url) as session:
        [stored] = shops.get(session, SHOP).settings["rewards"]
    assert (stored["per_customer_limit"], stored["per_customer_period"], stored["total_available"]) == (2, "month", 100)
    assert stored["collection_ids"] == ["gid://shopify/Collection/1", "gid://shopify/Collection/2"]
    assert stored["available_until"] == "2999-01-01T00:00:00+00:00"
    assert page.get_by_text("Unsaved changes").count() == 0  # what came back is what the form holds
