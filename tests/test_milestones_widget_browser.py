"""The widget's milestone sections in a real Chromium (Debian's), at phone width (390 px) and on a desktop."""

from __future__ import annotations

import dataclasses
import os
from decimal import Decimal
from pathlib import Path

import pytest

from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP, DEMO_TOKEN
from plugin.models import utcnow
from plugin.programme import events
from plugin.services import accrual, shops
from plugin.services.milestones import settings as milestone_settings
from tests.processes import chromium_page, start_app, start_fake_shop, stop

pytestmark = pytest.mark.integration
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")  # set to docs/ to refresh the README's picture
PROGRAMME = {
    "thresholds": [{"id": "vip", "title": "VIP reward", "amount": "500.00", "period": "calendar_year", "points": 250}],
    "punch_cards": [{"id": "coffee", "title": "Coffee card", "every": 5, "points": 100, "reward": "5-off"}],
    "birthday": {"points": 200},
    "actions": [
        {"id": "insta", "title": "Follow us on Instagram", "kind": "follow", "network": "instagram",
         "url": "https://instagram.com/", "points": 20, "cap": {"count": 1, "period": "lifetime"}},
        {"id": "nps", "title": "Tell us how we do", "kind": "survey", "points": 30,
         "questions": [{"key": "recommend", "text": "How likely are you to recommend us?", "type": "nps"}]},
        {"id": "review", "title": "Write a review", "kind": "server", "points": 50},
    ],
}  # fmt: skip


@pytest.fixture
def storefront(settings):
    """The demo app; customer 1001 has paid two orders (380.00 of spend), and the shop runs milestones."""
    fake, fake_url = start_fake_shop("--token", DEMO_TOKEN)
    demo = dataclasses.replace(settings, shopify_api_base_url=fake_url)
    with transaction(demo.database_url) as session:
        shop = shops.install(session, DEMO_SHOP, DEMO_TOKEN, demo.encryption_keys)
        milestone_settings.save(session, shop, PROGRAMME, "test")
    for order_id, price in ((1, "300.00"), (2, "80.00")):
        with transaction(demo.database_url) as session:
            snapshot = events.OrderSnapshot(
                order_id=order_id, name=f"#{order_id}", customer=events.Customer(1001, "shopper1001@example.com"),
                email=None, currency="USD", test=False, taxes_included=False,
                lines=(events.OrderLine(order_id * 10, 1, Decimal(price)),),
            )  # fmt: skip
            accrual.apply(session, shops.get(session, DEMO_SHOP), events.OrderPaid(snapshot, utcnow()))
    app, base_url = start_app(demo, LOYALTY_DEMO="1", REDIS_URL="")
    yield base_url
    stop(app)
    stop(fake)


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"), (1280, 900, "desktop")])
def test_the_shopper_sees_progress_punches_the_birthday_form_and_actions(storefront, width, height, name):
    with chromium_page(viewport={"width": width, "height": height}) as page:
        page.goto(f"{storefront}/demo/storefront?customer=1001")
        page.locator(".lw-launcher").click()
        dialog = page.get_by_role("dialog")
        dialog.wait_for(state="visible")
        page.wait_for_selector(".lw-dialog .lw-punches")
        text = dialog.inner_text()
        assert "Spend $120.00 more to earn 250 points" in text
        assert page.locator(".lw-dialog .lw-punch.lw-on").count() == 2
        assert "Every 5 orders earn 100 points and $5.00 off" in text  # points and a catalogue reward
        assert page.locator(".lw-dialog .lw-punch").count() == 5
        assert "Get 200 points on your birthday" in text
        assert "Follow us on Instagram" in text and "Earn 20 points" in text
        overflow = page.evaluate(
            "document.querySelector('.lw-dialog').scrollWidth - document.querySelector('.lw-dialog').clientWidth"
        )
        assert overflow <= 0  # nothing wider than the panel, even at 390 px
        if SCREENSHOT_DIR:
            page.locator(".lw-dialog .lw-punches").first.scroll_into_view_if_needed()
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"screenshot-widget-milestones-{name}.png"))

        page.select_option(".lw-dialog .lw-bday select", "2")
        page.fill(".lw-dialog .lw-bday input", "31")
        page.locator(".lw-dialog .lw-bday button").click()
        page.wait_for_selector(".lw-dialog .lw-bday ~ .lw-error")
        assert "February has 29 days" in dialog.inner_text()
        page.fill(".lw-dialog .lw-bday input", "14")
        page.locator(".lw-dialog .lw-bday button").click()
        page.wait_for_function("document.querySelector('.lw-dialog').innerText.includes('Your birthday:')")
        assert page.locator(".lw-dialog .lw-bday").count() == 0  # changeable once a year: the form is gone

        page.select_option(".lw-dialog .lw-survey select", "9")
        page.locator(".lw-dialog .lw-survey button").click()
        page.wait_for_function("document.querySelector('.lw-dialog').innerText.includes('410')")  # 380 + 30
