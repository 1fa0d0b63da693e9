"""Limited rewards in the real widget (headless Chromium): unavailable ones say why and offer no Redeem button."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP
from plugin.services import shops
from tests.test_widget_browser import SCREENSHOT_DIR, page, storefront  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration


def test_sold_out_limited_and_future_rewards_say_why_and_cannot_be_redeemed(settings, storefront, page):  # noqa: F811
    base_url, _ = storefront
    with transaction(settings.database_url) as session:
        shop = shops.get(session, DEMO_SHOP)
        rewards = [
            {"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00", "per_customer_limit": 1},
            {"id": "ship", "kind": "free_shipping", "points": 100, "available_from": "2999-01-01T00:00:00+00:00"},
        ]
        shops.update_settings(session, shop, {"rewards": rewards})
    page.goto(f"{base_url}/demo/storefront?customer=1001")
    page.locator(".lw-launcher").click()
    dialog = page.get_by_role("dialog")
    redeem = dialog.locator(".lw-btn", has_text="Redeem")
    redeem.first.wait_for(state="visible")
    assert redeem.count() == 1  # the future reward offers none
    assert "Available from" in dialog.locator(".lw-unavailable").first.inner_text()

    redeem.first.click()
    dialog.locator(".lw-code").first.wait_for(state="visible", timeout=30_000)
    page.wait_for_function("document.querySelectorAll('.lw-dialog .lw-unavailable').length === 2", timeout=30_000)
    assert "reached the limit" in dialog.inner_text()
    assert dialog.locator(".lw-btn", has_text="Redeem").count() == 0
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "screenshot-reward-limits.png"))
