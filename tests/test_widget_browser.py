"""The demo storefront in a real headless Chromium (Debian's), driven with the keyboard only."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
import requests

from plugin import ledger
from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP, DEMO_TOKEN
from plugin.programme.events import Customer
from plugin.services import shops
from plugin.services.accrual import enrol
from tests.processes import chromium_page, start_app, start_fake_shop, stop

pytestmark = pytest.mark.integration
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")  # set to docs/ to refresh the README's picture


@pytest.fixture
def storefront(settings, tmp_path):
    """(base URL, fake shop URL) of a running demo app whose customer 1001 holds 700 points."""
    fake, fake_url = start_fake_shop("--token", DEMO_TOKEN)
    demo = dataclasses.replace(settings, shopify_api_base_url=fake_url)
    with transaction(demo.database_url) as session:
        shop = shops.install(session, DEMO_SHOP, DEMO_TOKEN, demo.encryption_keys)
        member_id = enrol(session, shop.id, Customer(1001, "shopper1001@example.com"))
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", 700, "support", "seed", "seed", "manual"))
    app, base_url = start_app(demo, LOYALTY_DEMO="1", REDIS_URL="")
    yield base_url, fake_url
    stop(app)
    stop(fake)


@pytest.fixture
def page():
    with chromium_page(viewport={"width": 1280, "height": 860}) as page:
        yield page


def tab_to(page, predicate: str, limit: int = 60) -> None:
    """Press Tab until `predicate` (JS, with `el` the focused element) holds."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(() => {{ const el = document.activeElement; return !!({predicate}); }})()"):
            return
    raise AssertionError(f"never reached {predicate} with Tab")


def test_a_shopper_reads_the_balance_and_redeems_with_the_keyboard_only(storefront, page):
    base_url, fake_url = storefront
    page.goto(f"{base_url}/demo/storefront?customer=1001")
    launcher = page.locator(".lw-launcher")
    assert "700" in launcher.inner_text()  # rendered from data-points before any request

    tab_to(page, "el.classList.contains('lw-launcher')")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog")
    dialog.wait_for(state="visible")
    assert launcher.get_attribute("aria-expanded") == "true"
    assert page.evaluate("document.querySelector('[role=dialog]').contains(document.activeElement)")
    page.wait_for_selector(".lw-dialog .lw-btn:not([disabled])")
    assert "700" in dialog.inner_text()

    tab_to(page, "el.matches('.lw-dialog .lw-btn') && el.textContent.startsWith('Redeem')")
    page.keyboard.press("Enter")
    code = page.locator(".lw-dialog .lw-code").first
    code.wait_for(state="visible", timeout=30_000)
    shown = code.inner_text()
    assert re.fullmatch(r"PTS-[A-Z2-9]+-[A-Z2-9]{8}", shown), shown
    # announced to screen readers, letter by letter, a moment after the code appears
    page.wait_for_function(
        "code => [...document.querySelectorAll('.lw-dialog [role=status]')]"
        ".some(e => e.textContent.replace(/\\s/g, '').includes(code))",
        arg=shown,
    )
    live_codes = [c["code"] for c in requests.get(f"{fake_url}/_fake/codes", timeout=5).json()["codes"]]
    assert live_codes == [shown]  # the code really exists in the shop, once

    page.wait_for_function("document.querySelector('.lw-dialog').innerText.includes('200')")
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "screenshot-widget.png"))
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.classList.contains('lw-launcher')")  # focus returns


def test_a_visitor_sees_the_programme_and_a_sign_in_link_but_no_redeem_button(storefront, page):
    base_url, _ = storefront
    page.goto(f"{base_url}/demo/storefront?customer=")
    page.locator(".lw-launcher").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("link").first.wait_for(state="visible")
    assert dialog.get_by_role("link").first.get_attribute("href") == "/account/login"
    assert dialog.locator(".lw-btn", has_text="Redeem").count() == 0
