"""Inside Shopify's admin: App Bridge's navigation menu, save bar, toasts and fresh session tokens, offline.

Shopify serves app-bridge.js from its CDN; the browser here is offline, so the test answers that URL with a small
stand-in defining the same elements and `window.shopify` calls, and records what the admin asks of them.
"""

from __future__ import annotations

import pytest

from tests.admin_ui import session_token
from tests.conftest import SHOP

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]
APP_BRIDGE = "https://cdn.shopify.com/shopifycloud/app-bridge.js"
HOST = "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUveA"
STAND_IN = """
window.asked = {toasts: [], saveBar: []};
window.shopify = {
  idToken: () => window.mintToken(),
  toast: {show: (message) => window.asked.toasts.push(message)},
};
customElements.define('ui-nav-menu', class extends HTMLElement {});
customElements.define('ui-save-bar', class extends HTMLElement {
  show() { this.dataset.shown = 'yes'; window.asked.saveBar.push('show'); }
  hide() { delete this.dataset.shown; window.asked.saveBar.push('hide'); }
});
"""


def test_embedded_the_admin_uses_app_bridges_menu_save_bar_toasts_and_a_fresh_token_per_call(admin, page):
    page.route(APP_BRIDGE, lambda route: route.fulfill(body=STAND_IN, content_type="text/javascript"))
    tokens: list[str] = []
    page.expose_function("mintToken", lambda: tokens.append(session_token()) or tokens[-1])
    page.goto(f"{admin}/admin/settings?shop={SHOP}&host={HOST}")  # no id_token in the URL: App Bridge mints them
    pending = page.get_by_label("Pending days")
    pending.wait_for()

    menu = page.locator("ui-nav-menu a")
    assert [(a.get_attribute("href").split("?")[0], a.inner_text()) for a in menu.all()] == [
        ("/admin", "Home"),
        ("/admin/programme", "Programme"),
        ("/admin/tiers", "Tiers"),
        ("/admin/milestones", "Milestones"),
        ("/admin/members", "Members"),
        ("/admin/activity", "Activity"),
        ("/admin/referrals", "Referrals"),
        ("/admin/reports", "Reports"),
        ("/admin/settings", "Settings"),
        ("/admin/events", "Expiry and events"),
        ("/admin/import", "Import"),
        ("/admin/support-keys", "Support keys"),
        ("/admin/parked", "Parked deliveries"),
    ]
    assert page.locator(".Polaris-Navigation").count() == 0  # Shopify's admin draws the navigation

    save_bar = page.locator("ui-save-bar")
    assert save_bar.get_attribute("data-shown") is None
    pending.fill("21")
    page.wait_for_function("document.querySelector('ui-save-bar').dataset.shown === 'yes'")
    save_bar.locator("button[variant=primary]").dispatch_event("click")  # Shopify draws it above the iframe
    page.wait_for_function("window.asked.toasts.includes('Saved (version 2)')")
    page.wait_for_function("document.querySelector('ui-save-bar').dataset.shown === undefined")
    # settings read, the explanations language read, settings saved: one fresh token each
    assert len(tokens) == 3 and len(set(tokens)) == 3

    # App Bridge's menu changes the iframe's history; the admin follows it
    page.evaluate("history.pushState(null, '', '/admin/activity' + location.search)")
    page.evaluate("dispatchEvent(new PopStateEvent('popstate'))")
    page.get_by_role("heading", name="Activity", level=1).wait_for()
