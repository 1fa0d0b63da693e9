"""The embedded admin settings page in a real headless Chromium (Debian's), against the app under `flask run`."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests

from plugin import ledger
from plugin.db import transaction
from plugin.programme.events import Customer
from plugin.services import shops
from plugin.services.accrual import enrol
from tests.conftest import SECRET, SHOP
from tests.processes import chromium_page, start_app, stop

pytestmark = pytest.mark.integration
API_KEY = "test-api-key"
SCREENSHOT_DIR = os.environ.get("LOYALTY_SCREENSHOT_DIR")


def session_token(secret: str = SECRET, shop: str = SHOP) -> str:
    """A session token as App Bridge would mint it for a member of shop's staff."""
    now = int(time.time())
    claims = {
        "iss": f"https://{shop}/admin",
        "dest": f"https://{shop}",
        "aud": API_KEY,
        "sub": "42",
        "exp": now + 300,
        "nbf": now - 5,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
    }
    return jwt.encode(claims, secret, algorithm="HS256")


@pytest.fixture
def admin(settings, shop):
    """Base URL of the app, serving a shop with one member: 1500 points issued, 300 redeemed."""
    with transaction(settings.database_url) as session:
        member_id = enrol(session, shop, Customer(1001, "shopper1001@example.com"))
        ledger.post(session, shop, ledger.Entry(member_id, "bonus", 1500, "support", "seed", "seed", "manual"))
        ledger.post(session, shop, ledger.Entry(member_id, "redeem", -300, "redemption", "r1", "r1", "manual"))
    app, base_url = start_app(settings, SHOPIFY_API_KEY=API_KEY, REDIS_URL="")
    yield base_url
    stop(app)


@pytest.fixture
def page():
    # bypass_csp: the page forbids eval, which Playwright itself uses to poll conditions; the app never does.
    with chromium_page(viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True) as page:
        yield page


def field_error(page, path: str) -> dict:
    """The input at data-path `path`: aria-invalid, the text its aria-describedby points at, and whether the error
    element it points at sits in the same field as the input."""
    return page.evaluate(
        """path => {
            const input = document.querySelector(`[data-path="${path}"]`);
            const described = (input.getAttribute('aria-describedby') || '').split(/\\s+/).filter(Boolean)
                .map(id => document.getElementById(id));
            const errors = described.filter(el => el && el.classList.contains('field-error') && !el.hidden);
            return {
                invalid: input.getAttribute('aria-invalid'),
                text: errors.map(el => el.textContent).join(' | '),
                adjacent: errors.length > 0 && errors.every(el => el.parentElement === input.closest('.field, .check')),
            };
        }""",
        path,
    )


def save_and_wait(page, expected: str) -> None:
    page.get_by_role("button", name="Save", exact=True).click()
    page.wait_for_function(
        "text => document.getElementById('status').textContent.includes(text)", arg=expected, timeout=15_000
    )


def test_a_merchant_fixes_invalid_settings_next_to_their_fields_and_saves(admin, page, settings):
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{admin}/admin?shop={SHOP}&id_token={session_token()}")

    form = page.locator("#settings-form")
    form.wait_for(state="visible")
    assert SHOP in page.locator("header").inner_text()
    page.wait_for_selector("#summary:not([hidden])")
    stats = {
        name: page.locator(f'[data-stat="{name}"]').inner_text()
        for name in ("members", "points_issued", "points_redeemed", "points_outstanding")
    }
    assert stats == {"members": "1", "points_issued": "1,500", "points_redeemed": "300", "points_outstanding": "1,200"}

    # the stored defaults, one reward (the default catalogue)
    assert page.locator('[data-path="earn.points"]').input_value() == "1"
    assert page.locator('[data-path="earn.per_amount"]').input_value() == "1.00"
    assert page.locator("#rewards > li").count() == 1
    assert page.locator('[data-path="rewards.0.id"]').input_value() == "5-off"
    assert page.locator('[data-path="rewards.0.amount"]').input_value() == "5.00"
    assert page.locator('[data-path="rewards.0.percent"]').is_hidden()  # a fixed_amount reward has no percent
    # every input has a label
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('#settings-form input, #settings-form select')]"
        ".filter(el => !el.labels || el.labels.length === 0 || !el.labels[0].textContent.trim()).map(el => el.id)"
    )
    assert unlabelled == []

    # Invalid: pending days out of range, a fixed_amount reward without its amount
    page.get_by_label("Pending days").fill("999")
    page.locator('[data-path="rewards.0.amount"]').fill("")
    save_and_wait(page, "Not saved")

    pending = field_error(page, "pending_days")
    assert pending["invalid"] == "true"
    assert "less than or equal to 365" in pending["text"]
    assert pending["adjacent"]
    amount = field_error(page, "rewards.0.amount")
    assert amount == {"invalid": "true", "text": "a fixed_amount reward needs an amount", "adjacent": True}
    assert field_error(page, "earn.points")["invalid"] is None  # fields without errors are left alone
    assert page.evaluate("document.activeElement.dataset.path") == "pending_days"  # the first invalid field
    assert page.locator("#error-summary").is_visible()

    # Fix them, change a few more things with the keyboard, and save
    page.keyboard.press("Control+A")
    page.keyboard.type("14")
    page.locator('[data-path="rewards.0.amount"]').fill("7.5")
    page.get_by_label("Per amount spent").fill("2.50")
    page.get_by_label("Shipping charges").focus()
    page.keyboard.press("Space")
    save_and_wait(page, "Saved (version 2)")
    assert page.locator('[aria-invalid="true"]').count() == 0
    assert page.locator("#error-summary").is_hidden()
    assert page.locator('[data-path="rewards.0.amount"]').input_value() == "7.50"  # as the server normalised it
    assert page.locator('[data-path="rewards.0.title"]').get_attribute("placeholder") == "7.50 off"

    # A second reward, added with the keyboard, whose id repeats the first one's: the rewards section says so
    page.locator("#add-reward").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.dataset.path") == "rewards.1.id"
    page.keyboard.press("Control+A")
    page.keyboard.type("5-off")
    page.locator('[data-path="rewards.1.kind"]').select_option("percentage")
    assert page.locator('[data-path="rewards.1.amount"]').is_hidden()
    page.locator('[data-path="rewards.1.percent"]').fill("10")
    page.locator('[data-path="rewards.1.points"]').fill("900")
    save_and_wait(page, "Not saved")
    rewards_error = page.evaluate(
        "(document.querySelector('[data-error-for=\"rewards\"]').getAttribute('aria-describedby') || '')"
        ".split(' ').map(id => document.getElementById(id)).filter(el => el && !el.hidden)"
        ".map(el => el.textContent).join(' ')"
    )
    assert "reward ids must be unique" in rewards_error
    assert "reward ids must be unique" in page.locator("#error-summary").inner_text()

    page.locator('[data-path="rewards.1.id"]').fill("ten-percent")
    save_and_wait(page, "Saved (version 3)")
    assert page.locator("#rewards-error").is_hidden()

    # Remove the second reward, add a free-shipping one instead, and save again
    page.get_by_role("button", name="Remove reward 2").click()
    assert page.locator("#rewards > li").count() == 1
    page.locator("#add-reward").click()
    page.locator('[data-path="rewards.1.id"]').fill("free-ship")
    page.locator('[data-path="rewards.1.kind"]').select_option("free_shipping")
    page.locator('[data-path="rewards.1.points"]').fill("300")
    page.locator('[data-path="rewards.1.min_subtotal"]').fill("40")
    page.locator('[data-path="rewards.1.customer_only"]').uncheck()
    save_and_wait(page, "Saved (version 4)")
    assert page.get_by_role("status").inner_text() == "Saved (version 4)"

    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        stored, version = shop.settings, shop.settings_version
    assert version == 4
    assert stored["pending_days"] == 14
    assert stored["earn"] == {"points": 1, "per_amount": "2.50"}
    assert stored["include_shipping"] is True
    assert stored["include_taxes"] is False
    assert stored["rewards"] == [
        {
            "id": "5-off",
            "kind": "fixed_amount",
            "points": 500,
            "title": "7.50 off",
            "amount": "7.50",
            "percent": None,
            "min_subtotal": None,
            "lifetime_days": 30,
            "customer_only": True,
            "single_use": True,
        },
        {
            "id": "free-ship",
            "kind": "free_shipping",
            "points": 300,
            "title": "Free shipping",
            "amount": None,
            "percent": None,
            "min_subtotal": "40.00",
            "lifetime_days": 30,
            "customer_only": False,
            "single_use": True,
        },
    ]

    # nothing but the app itself was loaded, and the page fits a phone's width
    assert requested and all(url.startswith(admin) for url in requested), requested
    assert page.locator('script[src*="cdn.shopify.com"]').count() == 0
    if SCREENSHOT_DIR:
        page.screenshot(path=str(Path(SCREENSHOT_DIR) / "screenshot-admin.png"), full_page=True)
    page.set_viewport_size({"width": 375, "height": 800})
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")


def test_a_forged_session_token_shows_the_refusal_and_no_settings(admin, page):
    forged = session_token(secret="shpss_another-apps-secret-0123456789abcdef")
    page.goto(f"{admin}/admin?shop={SHOP}&id_token={forged}")
    banner = page.get_by_role("alert")
    banner.wait_for(state="visible")
    assert "signature does not match" in banner.inner_text()
    assert page.locator("#settings-form").is_hidden()
    assert page.locator("#summary").is_hidden()
    assert page.locator('[data-path="earn.points"]').input_value() == ""
    assert page.locator('[data-path="pending_days"]').input_value() == ""
    assert page.locator("#rewards > li").count() == 0


def test_app_bridge_is_the_first_script_only_when_shopify_embeds_the_page(admin):
    embedded = requests.get(f"{admin}/admin", params={"shop": SHOP, "host": "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUveA"})
    assert embedded.status_code == 200
    head = embedded.text.split("</head>", 1)[0]
    scripts = re.findall(r"<script[^>]*>", head)
    assert scripts[0] == (
        f'<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js" data-api-key="{API_KEY}">'
    ), scripts
    plain = requests.get(f"{admin}/admin", params={"shop": SHOP})
    assert "cdn.shopify.com" not in plain.text
    assert "/static/admin/admin.js" in plain.text


def test_under_app_bridge_each_call_asks_it_for_a_fresh_session_token(admin, page):
    tokens: list[str] = []
    page.expose_function("mintToken", lambda: tokens.append(session_token()) or tokens[-1])
    page.add_init_script("window.shopify = {idToken: () => window.mintToken()};")  # stands in for app-bridge.js
    page.goto(f"{admin}/admin?shop={SHOP}")  # no id_token in the URL
    page.locator("#settings-form").wait_for(state="visible")
    assert page.locator('[data-path="rewards.0.id"]').input_value() == "5-off"
    page.locator('[data-path="rewards.0.points"]').fill("450")
    page.keyboard.press("Enter")  # submits the form
    page.wait_for_function("document.getElementById('status').textContent.includes('Saved (version 2)')")
    assert page.evaluate("document.activeElement.dataset.path") == "rewards.0.points"  # focus kept after redraw
    assert len(tokens) == 3  # summary, settings, save
