"""The share flow in a real headless Chromium (Debian's), at phone width (390 px) and on a desktop."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import pytest
import requests

from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP, DEMO_TOKEN
from plugin.programme.events import Customer
from plugin.services import referrals, shops
from plugin.services.accrual import enrol
from tests.processes import chromium_page, start_app, start_fake_shop, stop

pytestmark = pytest.mark.integration
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")  # set to docs/ to refresh the pictures
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 860}


@pytest.fixture
def storefront(settings):
    """(base URL, fake shop URL) of the running demo app, referrals on, customer 1001 a member."""
    fake, fake_url = start_fake_shop("--token", DEMO_TOKEN)
    demo = dataclasses.replace(settings, shopify_api_base_url=fake_url)
    with transaction(demo.database_url) as session:
        shop = shops.install(session, DEMO_SHOP, DEMO_TOKEN, demo.encryption_keys)
        enrol(session, shop.id, Customer(1001, "shopper1001@example.com"))
        # Points and a catalogue reward (the default catalogue's) for the advocate.
        offered = {"enabled": True, "advocate_points": 500, "advocate_reward": "5-off"}
        referrals.update_settings(session, shop, offered, "test")
    app, base_url = start_app(demo, LOYALTY_DEMO="1", REDIS_URL="")
    yield base_url, fake_url
    stop(app)
    stop(fake)


def _advocate_shares(base_url: str, viewport: dict) -> str:
    """The member opens the widget, finds their link and presses Share; returns the link's path."""
    with chromium_page(viewport=viewport) as page:
        page.goto(f"{base_url}/demo/storefront?customer=1001")
        page.locator(".lw-launcher").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("heading", name="Refer a friend").wait_for(state="visible")
        link = dialog.locator(".lw-url").inner_text()
        assert re.fullmatch(r"https?://[^/]+/apps/loyalty/r/[A-Z2-9]{8}", link), link
        assert "Get 500 points and $5.00 off when their first order is confirmed" in dialog.inner_text()
        share = dialog.get_by_role("button", name="Share")
        assert share.bounding_box()["x"] + share.bounding_box()["width"] <= viewport["width"]
        share.click()  # no share sheet in headless Chromium: the link is copied or selected instead
        announced = "[...document.querySelectorAll('.lw-dialog [role=status]')]"
        page.wait_for_function(f"{announced}.some(e => /Copied|selected/.test(e.textContent))")
        if SCREENSHOT_DIR:
            name = "phone" if viewport["width"] < 480 else "desktop"
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"screenshot-referral-{name}.png"))
        return "/" + link.split("/", 3)[3]


def _referral_cookie(page) -> dict:
    """The loyalty_referral cookie the widget set. Chromium's renderer hands a document.cookie write to the browser's
    cookie store asynchronously, so the store read over the DevTools protocol can briefly lag the page: poll it."""
    page.wait_for_function("document.cookie.includes('loyalty_referral=')")  # the page has written it
    deadline = time.monotonic() + 10
    while True:
        found = [c for c in page.context.cookies() if c["name"] == "loyalty_referral"]
        if found or time.monotonic() > deadline:
            assert found, "the page wrote loyalty_referral but the browser's cookie store never held it"
            return found[0]
        time.sleep(0.05)


def _friend_follows(base_url: str, fake_url: str, path: str, viewport: dict) -> None:
    """A visitor opens the link: the plain storefront, a cookie, a cart attribute, and their first-order code."""
    with chromium_page(viewport=viewport) as page:
        page.goto(f"{base_url}/demo/storefront?customer=")  # a visitor, not signed in
        page.goto(f"{base_url}/demo{path}")
        page.wait_for_url(re.compile(r"/demo/storefront$"))  # the token is taken out of the address
        cookie = _referral_cookie(page)
        assert re.fullmatch(r"[0-9a-f]{24}\.[0-9a-f]{24}", cookie["value"])
        page.wait_for_function("fetch('/cart.js').then(r => r.json()).then(c => !!c.attributes._loyalty_referral)")
        cart = page.evaluate("fetch('/cart.js').then(r => r.json())")
        assert cart["attributes"] == {"_loyalty_referral": cookie["value"]}
        page.locator(".lw-launcher").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_role("heading", name="A gift from your friend").wait_for(state="visible")
        code = dialog.locator(".lw-code").first
        code.wait_for(state="visible", timeout=30_000)
        shown = code.inner_text()
        assert re.fullmatch(r"FRIEND-[A-Z2-9]{10}", shown), shown
        assert "10.00 off your first order" in dialog.inner_text()
        made = {c["code"]: c for c in requests.get(f"{fake_url}/_fake/codes", timeout=5).json()["codes"]}
        assert made[shown]["input"]["usageLimit"] == 1  # really made in the shop, once, for one use
        if SCREENSHOT_DIR:
            name = "phone" if viewport["width"] < 480 else "desktop"
            page.screenshot(path=str(Path(SCREENSHOT_DIR) / f"screenshot-referral-friend-{name}.png"))


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone-390", "desktop"])
def test_an_advocate_shares_the_link_and_a_friend_lands_with_a_code_and_a_tagged_cart(storefront, viewport):
    base_url, fake_url = storefront
    path = _advocate_shares(base_url, viewport)
    _friend_follows(base_url, fake_url, path, viewport)


def test_an_unknown_code_lands_on_the_plain_storefront_with_nothing_set(storefront):
    base_url, _ = storefront
    with chromium_page(viewport=PHONE) as page:
        page.goto(f"{base_url}/demo/storefront?customer=")
        page.goto(f"{base_url}/demo/apps/loyalty/r/NOSUCHCODE")
        page.wait_for_url(re.compile(r"/demo/storefront$"))
        assert not [c for c in page.context.cookies() if c["name"] == "loyalty_referral"]
        page.locator(".lw-launcher").click()
        page.get_by_role("dialog").get_by_role("link").first.wait_for(state="visible")  # the usual sign-in link
        assert page.get_by_role("dialog").get_by_role("heading", name="A gift from your friend").count() == 0
