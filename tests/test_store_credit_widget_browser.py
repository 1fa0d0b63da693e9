"""Store credit in the real widget (headless Chromium): the new balance instead of a code, in the shop's currency
and the shopper's language; cash back lets the shopper choose the points."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP
from plugin.services import shops
from tests.test_widget_browser import SCREENSHOT_DIR, page, storefront  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
REWARDS = [
    {"id": "credit-5", "kind": "store_credit", "points": 500, "amount": "5.00"},
    {"id": "cash", "kind": "cash_back", "points": 100, "amount": "1.00", "min_points": 200, "max_points": 600},
]


def offer_in_euros(settings) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, DEMO_SHOP)
        shop.currency = "EUR"
        shops.update_settings(session, shop, {"rewards": REWARDS})


def test_a_store_credit_shows_the_new_balance_in_the_shops_currency_not_a_code(settings, storefront, page):  # noqa: F811
    base_url, fake_url = storefront
    offer_in_euros(settings)
    page.goto(f"{base_url}/demo/storefront?customer=1001")
    page.locator(".lw-launcher").click()
    dialog = page.get_by_role("dialog")
    item = dialog.locator(".lw-item", has_text="€5.00 in store credit")
    item.locator(".lw-btn", has_text="Redeem").click()

    dialog.locator(".lw-credit").wait_for(state="visible", timeout=30_000)
    result = dialog.locator(".lw-result").inner_text()
    assert "€5.00 was added to your store credit." in result
    assert "Your store credit balance: €5.00" in result
    assert dialog.locator(".lw-result .lw-code").count() == 0  # no code to copy
    shop_side = requests.get(f"{fake_url}/_fake/store-credit", timeout=5).json()
    assert shop_side["credits"] == 1
    assert shop_side["accounts"]["gid://shopify/Customer/1001"]["EUR"]["balance"]["amount"] == "5.00"
    page.wait_for_function("document.querySelector('.lw-dialog').innerText.includes('+€5.00 store credit')")
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "screenshot-store-credit.png"))


def test_cash_back_in_french_lets_the_shopper_choose_whole_steps(settings, storefront, page):  # noqa: F811
    base_url, fake_url = storefront
    offer_in_euros(settings)
    page.goto(f"{base_url}/demo/storefront?customer=1001&locale=fr")
    page.locator(".lw-launcher").click()
    dialog = page.get_by_role("dialog")
    item = dialog.locator(".lw-item", has_text="d\u2019avoir pour 100 points")
    chooser = item.get_by_label("Points à utiliser")
    chooser.fill("250")  # not a whole step: refused before asking
    assert item.locator(".lw-btn").is_disabled()
    chooser.fill("300")
    assert "Vous recevez 3,00\u00a0€ d\u2019avoir" in item.inner_text()
    item.locator(".lw-btn", has_text="Échanger").click()

    dialog.locator(".lw-credit").wait_for(state="visible", timeout=30_000)
    assert "Solde de votre avoir\u00a0: 3,00\u00a0€" in dialog.locator(".lw-result").inner_text()
    shop_side = requests.get(f"{fake_url}/_fake/store-credit", timeout=5).json()
    assert shop_side["accounts"]["gid://shopify/Customer/1001"]["EUR"]["balance"]["amount"] == "3.00"
