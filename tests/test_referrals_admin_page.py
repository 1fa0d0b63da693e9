"""The admin's Referrals page in a real headless Chromium: settings refused per field, figures, approval."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from plugin.db import transaction
from plugin.models import Referral
from plugin.services import referrals, shops
from tests.admin_ui import admin_url
from tests.conftest import SHOP
from tests.test_admin_ui_pages import error_of, screenshot, toast

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


def _blocked_referral(settings) -> None:
    """A referral a guard blocked, as the member rule would leave it (the flow itself is tested end to end)."""
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        referrals.update_settings(session, shop, {"enabled": True}, "test")
        member = shops.member(session, shop, 1001)
        from datetime import UTC, datetime

        session.add(
            Referral(
                shop_id=shop.id, order_id=42, advocate_member_id=member.id, friend_member_id=member.id,
                matched_by="cookie", ordered_at=datetime(2026, 11, 20, tzinfo=UTC), status="blocked",
                block_reason="same_email", reward_points=0, points_held=0, points_owed=0, moves=0,
            )
        )  # fmt: skip


def test_support_sees_the_blocked_referral_with_its_reason_and_approves_it_with_one(admin, page, settings):
    _blocked_referral(settings)
    page.goto(admin_url(admin, "referrals"))
    page.get_by_role("heading", name="Referrals", level=1).wait_for()
    assert page.get_by_label("Referrals are on").is_checked()
    page.get_by_text("same e-mail", exact=True).wait_for()
    # The figures load apart from the list: wait for them rather than read the page once.
    expect(page.get_by_role("main")).to_contain_text("Blocked: same e-mail")
    page.get_by_role("button", name="Approve the referral of order 42").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("dots, +tags and case").wait_for()
    dialog.get_by_label("Reason").fill("sisters sharing an inbox")
    dialog.get_by_role("button", name="Approve").click()
    toast(page, "Referral of order 42 approved")
    page.get_by_text("Nothing blocked").wait_for()
    with transaction(settings.database_url) as session:
        row = session.get(Referral, (1, 42))
        assert (row.approved_reason, row.approved_by) == ("sisters sharing an inbox", "admin")


def test_a_bad_setting_lands_on_its_field_and_a_good_one_saves(admin, page):
    page.goto(admin_url(admin, "referrals"))
    points = page.get_by_label("Points for the member who refers")
    points.wait_for()
    points.fill("0")
    page.get_by_role("button", name="Save").first.click()
    toast(page, "Not saved")
    assert error_of(points)
    points.fill("750")
    page.get_by_label("Referrals are on").check()
    page.get_by_role("button", name="Save").first.click()
    toast(page, "Saved (version 2)")
    screenshot(page, "referrals")


def test_the_advocate_gets_a_reward_picked_from_the_catalogue_instead_of_points(admin, page, settings):
    page.goto(admin_url(admin, "referrals"))
    points = page.get_by_label("Points for the member who refers")
    points.wait_for()
    points.fill("0")
    page.get_by_role("button", name="Save").first.click()
    toast(page, "Not saved")
    assert error_of(points) == "give points above 0, a reward from the catalogue, or both"
    reward = page.get_by_label("Reward for the member who refers")
    assert reward.locator("option").all_inner_texts() == ["None (points only)", "5.00 off (5-off)"]
    reward.select_option("5-off")
    page.get_by_role("button", name="Save").first.click()
    toast(page, "Saved (version 2)")
    with transaction(settings.database_url) as session:
        saved = referrals.current(session, shops.get(session, SHOP).id)
    assert (saved.advocate_points, saved.advocate_reward) == (0, "5-off")
