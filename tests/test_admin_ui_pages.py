"""Every page of the merchant's admin in a real headless Chromium (Debian's), offline, against `flask run`."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import SupportAction, SupportKey
from plugin.services import redemption, shops
from tests import builders
from tests.admin_ui import admin_url, seed_member, serve, session_token
from tests.conftest import SHOP, deliver
from tests.processes import start_fake_shop, stop

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")  # set to docs/ to refresh the README's pictures


def error_of(field) -> str | None:
    """The error text a field announces (aria-invalid and aria-describedby), or None when it is valid."""
    return field.evaluate(
        """input => input.getAttribute('aria-invalid') !== 'true' ? null :
            (input.getAttribute('aria-describedby') || '').split(/\\s+/).map(id => document.getElementById(id))
                .filter(el => el && /Error$/.test(el.id)).map(el => el.textContent).join(' ')"""
    )


def toast(page, text: str) -> None:
    page.get_by_text(text, exact=True).first.wait_for()


def screenshot(page, name: str) -> None:
    if SCREENSHOT_DIR:
        page.set_viewport_size({"width": 1280, "height": 1200})
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"screenshot-admin-{name}.png"))
        page.set_viewport_size({"width": 1280, "height": 900})


def test_home_shows_the_key_figures_and_charts_where_the_points_went_loading_nothing_from_elsewhere(admin, page):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(admin_url(admin))
    chart = page.get_by_role("img", name=re.compile("Points issued: 1,500"))
    chart.locator("svg").first.wait_for()
    figures = {
        name: page.locator(f"#figure-{name}").inner_text()
        for name in ("members", "points_issued", "points_reversed", "points_redeemed", "points_outstanding")
    }
    assert figures == {
        "members": "1",
        "points_issued": "1,500",
        "points_reversed": "0",
        "points_redeemed": "300",
        "points_outstanding": "1,200",
    }
    assert chart.get_attribute("aria-label") == (
        "Points issued: 1,500, Points reversed: 0, Points redeemed: 300, Points outstanding: 1,200"
    )
    assert SHOP in page.get_by_role("main").inner_text()
    navigation = page.get_by_role("navigation").inner_text().split("\n")
    assert navigation == [
        "Home", "Programme", "Tiers", "Milestones", "Members", "Activity", "Referrals", "Reports", "Settings",
        "Expiry and events", "Import", "Support keys",
        "Parked deliveries",
    ]  # fmt: skip
    screenshot(page, "home")
    assert all(url.startswith((admin, "data:")) for url in requested), requested


def test_settings_changes_raise_the_save_bar_and_the_apis_errors_land_on_their_fields(admin, page, settings):
    page.goto(admin_url(admin, "settings"))
    pending = page.get_by_label("Pending days")
    pending.wait_for()
    saved_pending = pending.input_value()
    save_bar = page.get_by_text("Unsaved changes")
    assert save_bar.count() == 0  # nothing changed yet

    pending.fill("999")
    save_bar.wait_for()
    amount = page.get_by_role("textbox", name="Amount off", exact=True)
    assert amount.input_value() == "5.00"
    amount.fill("")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Not saved").wait_for()
    assert "less than or equal to 365" in error_of(pending)
    assert error_of(amount) == "a fixed_amount reward needs an amount"
    assert error_of(page.get_by_label("Points earned")) is None  # fields without errors are left alone
    assert save_bar.is_visible()

    page.get_by_role("button", name="Discard").click()
    assert pending.input_value() == saved_pending and amount.input_value() == "5.00"
    assert save_bar.count() == 0 and error_of(pending) is None

    pending.fill("14")
    page.get_by_label("Shipping charges earn points").check()
    page.get_by_role("button", name="Add reward").click()
    page.get_by_role("textbox", name="ID", exact=True).nth(1).fill("5-off")  # repeats the first reward's id
    page.get_by_role("combobox", name="Kind", exact=True).nth(1).select_option("free_shipping")
    page.get_by_role("spinbutton", name="Points", exact=True).nth(1).fill("300")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("reward ids must be unique").wait_for()

    page.get_by_role("textbox", name="ID", exact=True).nth(1).fill("free-ship")
    page.get_by_role("button", name="Save", exact=True).click()
    toast(page, "Saved (version 2)")
    assert save_bar.count() == 0
    assert page.get_by_text("Version 2", exact=True).is_visible()
    screenshot(page, "settings")

    with transaction(settings.database_url) as session:
        stored = shops.get(session, SHOP).settings
    assert stored["pending_days"] == 14 and stored["include_shipping"] is True
    assert [(r["id"], r["kind"], r["points"]) for r in stored["rewards"]] == [
        ("5-off", "fixed_amount", 500),
        ("free-ship", "free_shipping", 300),
    ]


def test_staff_find_a_member_adjust_undo_and_reverse_with_reasons_then_read_the_activity(admin, page, client, settings):
    order = builders.order(501, 1001, [builders.line(10, "60.00", 2)], email="shopper1001@example.com")
    deliver(client, "orders/paid", order)  # 120 points, pending
    page.goto(admin_url(admin, "members"))
    page.get_by_label("Email").fill("Shopper1001@example.com")
    page.get_by_role("button", name="Find member").click()
    balance = page.locator("#member-balance")
    balance.wait_for()
    assert re.search(r"/admin/members/1001\?", page.url)
    assert balance.inner_text() == "1,320"
    history = page.get_by_role("table").first
    assert "Earned" in history.inner_text() and "order #501" in history.inner_text()

    adjust = page.get_by_role("button", name="Adjust", exact=True)
    page.locator("#adjust-points").fill("50")
    page.locator("#adjust-reason").select_option("goodwill")
    page.locator("#adjust-note").fill("late parcel")
    adjust.click()
    toast(page, "Points adjusted")
    page.wait_for_function("document.getElementById('member-balance').textContent === '1,370'")
    assert "goodwill: late parcel · by staff:42" in history.inner_text()
    screenshot(page, "member")

    # Undo asks first, in a modal that needs a note of its own
    page.get_by_role("button", name=re.compile(r"Undo action \d+")).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Undo").click()
    note = dialog.get_by_label("Note")
    page.wait_for_function("() => document.querySelector('[role=dialog] [aria-invalid=true]')")
    assert error_of(note) == "a note is required"  # from the API's fields, on the field it names
    assert balance.inner_text() == "1,370"  # refused: nothing undone
    note.fill("given twice")
    dialog.get_by_role("button", name="Undo").click()
    toast(page, "Action undone")
    page.wait_for_function("document.getElementById('member-balance').textContent === '1,320'")
    assert re.search(r"undone by \d+", history.inner_text())  # and no Undo button for it any more
    assert page.get_by_role("button", name=re.compile(r"Undo action \d+")).count() == 1  # the undo itself

    # Reversing an order is destructive: confirmed in a modal with its reason
    page.get_by_label("Order ID").fill("501")
    page.get_by_role("button", name="Reverse", exact=True).click()
    dialog.get_by_label("Reason").select_option("fraud")
    dialog.get_by_label("Note").fill("chargeback")
    dialog.get_by_role("button", name="Reverse").click()
    toast(page, "Order reversed")
    page.wait_for_function("document.getElementById('member-balance').textContent === '1,200'")

    page.get_by_role("navigation").get_by_role("link", name="Activity").click()
    rows = page.get_by_role("table").locator("tbody tr")
    rows.first.wait_for()
    assert [row.split("\t")[1] for row in rows.all_inner_texts()] == ["Order reversed", "Undo", "Adjustment"]
    assert "Fraud: chargeback" in rows.first.inner_text()
    with transaction(settings.database_url) as session:
        actions = session.scalars(select(SupportAction).order_by(SupportAction.id)).all()
    assert [(a.action, a.reason_code, a.note, a.actor) for a in actions] == [
        ("adjust", "goodwill", "late parcel", "staff:42"),
        ("undo", "goodwill", "given twice", "staff:42"),
        ("reverse_order", "fraud", "chargeback", "staff:42"),
    ]


def test_staff_cancel_an_unused_reward_behind_a_modal_and_the_points_come_back(settings, shop, page):
    fake, fake_url = start_fake_shop("--token", "shpat_test_token")
    settings = dataclasses.replace(settings, shopify_api_base_url=fake_url)
    seed_member(settings, shop)
    with transaction(settings.database_url) as session:
        installed = shops.install(session, SHOP, "shpat_test_token", settings.encryption_keys)
        redemption_id = redemption.redeem(session, installed, 1001, "5-off").id
    assert redemption.issue(settings, redemption_id) == "issued"
    app, base_url = serve(settings)
    try:
        page.goto(admin_url(base_url, "members/1001"))
        balance = page.locator("#member-balance")
        balance.wait_for()
        assert balance.inner_text() == "700"
        rewards = page.get_by_role("table").nth(1)
        assert "Issued" in rewards.inner_text()
        page.get_by_role("button", name=re.compile(r"Cancel reward PTS-")).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Reason").select_option("correction")
        dialog.get_by_label("Note").fill("ordered by mistake")
        dialog.get_by_role("button", name="Cancel reward").click()
        toast(page, "Reward cancelled")
        page.wait_for_function("document.getElementById('member-balance').textContent === '1,200'")
        assert "Cancelled" in rewards.inner_text()
        codes = requests.get(f"{fake_url}/_fake/codes", timeout=5).json()["codes"]
    finally:
        stop(app)
        stop(fake)
    assert [c["deleted"] for c in codes] == [True]
    with transaction(settings.database_url) as session:
        cancelled = redemption.find(session, redemption_id)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "correction: ordered by mistake")


def test_a_member_that_does_not_exist_is_said_so(admin, page):
    page.goto(admin_url(admin, "members"))
    page.get_by_label("Customer ID").fill("4242")
    page.get_by_label("Customer ID").press("Enter")
    page.get_by_text("No member found").wait_for()
    assert "no such member" in page.get_by_role("main").inner_text()


def test_a_support_key_is_shown_once_and_revoking_it_asks_first(admin, page, settings):
    page.goto(admin_url(admin, "support-keys"))
    page.get_by_text("No keys yet.").wait_for()
    page.get_by_role("button", name="Create key").click()  # no name
    page.get_by_text("name").first.wait_for()
    assert page.get_by_role("table").count() == 0

    page.get_by_label("Name").fill("Helpdesk")
    page.get_by_label("Access").select_option("write")
    page.get_by_role("button", name="Create key").click()
    shown = page.get_by_label("New key")
    shown.wait_for()
    raw_key = shown.input_value()

    page.get_by_role("button", name="Revoke key Helpdesk").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    toast(page, "Key revoked")
    page.get_by_role("table").get_by_text("Revoked").wait_for()
    with transaction(settings.database_url) as session:
        [key] = session.scalars(select(SupportKey)).all()
    assert (key.name, key.scope, key.revoked_at is not None) == ("Helpdesk", "write", True)
    assert raw_key.startswith(f"lsk_{key.prefix}_") and f"{key.prefix}…" in page.get_by_role("table").inner_text()
    page.get_by_role("button", name="Dismiss notification").click()
    assert shown.count() == 0  # shown once: gone when the merchant closes it


def test_parked_deliveries_show_their_reason_and_replay(admin, page, client):
    page.goto(admin_url(admin, "parked"))
    page.get_by_text("Nothing parked").wait_for()
    deliver(client, "orders/paid", b"{broken")
    page.reload()
    row = page.get_by_role("table").locator("tbody tr")
    row.wait_for()
    assert "orders/paid" in row.inner_text() and "malformed JSON" in row.inner_text()
    page.get_by_role("button", name=re.compile(r"Replay delivery \d+")).click()
    toast(page, "Replayed: parked")  # still broken, so parked again


def test_an_export_is_checked_then_imported_then_undone_with_a_reason(admin, page, tmp_path, settings):
    export = tmp_path / "smile.csv"
    export.write_text("email,points\r\nshopper1001@example.com,250\r\nnobody@example.com,oops\r\n")
    page.goto(admin_url(admin, "import"))
    page.get_by_text("No imports yet").wait_for()
    page.get_by_label("Exported from").select_option("smile")
    page.locator("input[type=file]").set_input_files(str(export))
    page.get_by_role("button", name="Check file").click()
    toast(page, "Checked 2 rows")
    row = page.get_by_role("table").locator("tbody tr").first
    cells = row.inner_text().split("\t")
    assert cells[0] == "smile.csv" and "Check only" in cells[2]  # the badge also names its tone for screen readers
    assert cells[3:6] == ["2", "1", "1"]  # rows, matched, invalid

    page.locator("input[type=file]").set_input_files(str(export))
    page.get_by_label("Only check the file").uncheck()
    page.get_by_role("button", name="Import", exact=True).click()
    toast(page, "Imported 2 rows")
    assert member_balance(settings) == 1450

    page.get_by_role("button", name="Undo import smile.csv").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Undo import").click()  # no reason: the API's message, on the field
    reason = dialog.get_by_label("Reason")
    page.wait_for_function("() => document.querySelector('[role=dialog] [aria-invalid=true]')")
    assert "length" in error_of(reason).lower()
    reason.fill("wrong shop's file")
    dialog.get_by_role("button", name="Undo import").click()
    toast(page, "250 points taken back")
    assert member_balance(settings) == 1200
    page.get_by_role("table").locator("tbody tr").first.get_by_text("Undone").wait_for()  # once the list reloads


def member_balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), 1001).balance


def test_a_forged_session_token_shows_the_refusal_and_no_data(admin, page):
    page.goto(admin_url(admin, "settings", id_token=session_token(secret="shpss_another-apps-secret-0123456789abcdef")))
    page.get_by_text("This page could not be loaded").wait_for()
    assert "signature does not match" in page.get_by_role("main").inner_text()
    assert page.get_by_label("Pending days").count() == 0
