"""The widget's tier section in a real headless Chromium: phone width (390 px) and desktop."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP
from plugin.models import utcnow
from plugin.platforms.shopify.payloads import load_order
from plugin.programme import events
from plugin.services import accrual, shops, tier_sets
from tests import builders
from tests.processes import chromium_page
from tests.test_widget_browser import SCREENSHOT_DIR, storefront  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

PROGRAMME = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100", "multiplier": "1.5", "perks": ["Early access to sales"]},
        {"id": "gold", "name": "Gold", "threshold": "500", "multiplier": "2", "free_shipping": True,
         "birthday_reward": 200},
    ],
}  # fmt: skip


@pytest.fixture
def silver_shopper(settings, storefront):  # noqa: F811
    """Customer 1001 has spent 380.00 this year: Silver, 120.00 short of Gold."""
    with transaction(settings.database_url) as session:
        shop = shops.get(session, DEMO_SHOP)
        tier_sets.save(session, shop, PROGRAMME, "test")
        snapshot = load_order(builders.order(8001, 1001, [builders.line(80011, "380.00")]))
        accrual.apply(session, shop, events.OrderPaid(snapshot, paid_at=utcnow()))
    return storefront


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"), (1280, 860, "desktop")])
def test_the_tier_section_shows_the_tier_its_benefits_progress_and_kept_until_date(silver_shopper, width, height, name):
    base_url, _ = silver_shopper
    year = utcnow().year
    with chromium_page(viewport={"width": width, "height": height}) as page:
        page.goto(f"{base_url}/demo/storefront?customer=1001")
        page.locator(".lw-launcher").click()
        dialog = page.get_by_role("dialog")
        tier = dialog.locator(".lw-tier")
        tier.wait_for(state="visible", timeout=30_000)
        assert tier.locator(".lw-tier-name").inner_text() == "Silver"
        assert f"Kept until Dec 31, {year + 1}" in tier.inner_text()
        assert "1.5\u00d7 points on every order" in tier.inner_text()
        assert "Early access to sales" in tier.inner_text()
        assert dialog.locator(".lw-progress").inner_text() == "Spend $120.00 more by Dec 31 to reach Gold"
        box = tier.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width  # nothing runs off a phone's screen
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        if SCREENSHOT_DIR:
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"screenshot-widget-tiers-{name}.png"))

        page.goto(f"{base_url}/demo/storefront?customer=1001&locale=fr")
        page.locator(".lw-launcher").click()
        progress = page.get_by_role("dialog").locator(".lw-progress")
        progress.wait_for(state="visible", timeout=30_000)
        assert progress.inner_text().startswith("Dépensez encore 120,00")
        assert progress.inner_text().endswith("d\u2019ici le 31 d\u00e9c. pour atteindre Gold")


@pytest.fixture
def gold_shopper(settings, storefront):  # noqa: F811
    """Customer 1002 is Gold, whose free-shipping code the job has made (marked issued here: the job and the shop
    are tests/test_tier_free_shipping.py's subject; this one is what the shopper sees)."""
    from sqlalchemy import select

    from plugin.models import Redemption

    with transaction(settings.database_url) as session:
        shop = shops.get(session, DEMO_SHOP)
        tier_sets.save(session, shop, PROGRAMME, "test")
        snapshot = load_order(builders.order(8002, 1002, [builders.line(80021, "600.00")]))
        accrual.apply(session, shop, events.OrderPaid(snapshot, paid_at=utcnow()))
        session.flush()
        code = session.scalars(
            select(Redemption).where(Redemption.shop_id == shop.id, Redemption.reward_id == "tier-ship:gold")
        ).one()
        code.status = "issued"
        wanted = code.code
    return storefront, wanted


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 860)])
def test_the_tier_section_shows_the_members_free_shipping_code(gold_shopper, width, height):
    (base_url, _), wanted = gold_shopper
    with chromium_page(viewport={"width": width, "height": height}) as page:
        page.goto(f"{base_url}/demo/storefront?customer=1002")
        page.locator(".lw-launcher").click()
        line = page.get_by_role("dialog").locator(".lw-tier-code")
        line.wait_for(state="visible", timeout=30_000)
        assert line.inner_text() == f"Your free-shipping code: {wanted}"
        box = line.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width
