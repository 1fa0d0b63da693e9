"""The admin for everyone: axe-core on every page, the adjust flow by keyboard alone, and French throughout."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import SupportAction
from tests.admin_ui import PAGES, admin_url, axe_violations

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


def wait_until_drawn(page) -> None:
    """The page's heading, once its data came (a page loading its data is marked aria-busy)."""
    page.locator("h1").first.wait_for()
    page.wait_for_function("!document.querySelector('[aria-busy=true]')")


def tab_to(page, selector: str, limit: int = 80) -> None:
    """Press Tab until the focused element matches `selector`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"never reached {selector} with Tab")


def test_axe_finds_no_serious_or_critical_violation_on_any_page(admin, page):
    found = {}
    for path in PAGES:
        page.goto(admin_url(admin, path))
        wait_until_drawn(page)
        found[path or "home"] = axe_violations(page)
    # and with what appears later: the API's errors on the settings form, a confirmation modal
    page.goto(admin_url(admin, "settings"))
    page.get_by_label("Pending days").fill("999")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_role("heading", name="Not saved").wait_for()
    found["settings with errors"] = axe_violations(page)
    page.goto(admin_url(admin, "members/1001"))
    page.get_by_label("Order ID").fill("9")
    page.get_by_role("button", name="Reverse", exact=True).click()
    page.get_by_role("dialog").wait_for()
    found["reverse modal"] = axe_violations(page)
    assert found == {name: [] for name in found}


def test_staff_adjust_a_members_points_with_the_keyboard_alone(admin, page, settings):
    page.goto(admin_url(admin, "members/1001"))
    balance = page.locator("#member-balance")
    balance.wait_for()
    tab_to(page, "#adjust-points")
    page.keyboard.type("-75")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "adjust-reason"
    page.keyboard.type("c")  # a closed select takes the option starting with the letter: Correction
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "adjust-note"
    page.keyboard.type("double bonus")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Adjust"
    page.keyboard.press("Enter")
    page.get_by_text("Points adjusted", exact=True).first.wait_for()
    page.wait_for_function("document.getElementById('member-balance').textContent === '1,125'")
    with transaction(settings.database_url) as session:
        [action] = session.scalars(select(SupportAction)).all()
    assert (action.action, action.points) == ("adjust", -75)
    assert (action.reason_code, action.note) == ("correction", "double bonus")


def test_the_admin_speaks_french_when_shopify_asks_for_it(admin, page):
    page.goto(admin_url(admin, "members/1001", locale="fr"))
    balance = page.locator("#member-balance")
    balance.wait_for()
    assert page.evaluate("document.documentElement.lang") == "fr"
    assert balance.inner_text() == "1\u202f200"  # French digit grouping
    navigation = page.get_by_role("navigation").inner_text().split("\n")
    assert navigation == [
        "Accueil",
        "Programme",
        "Statuts",
        "Paliers",
        "Membres",
        "Activité",
        "Parrainage",
        "Rapports",
        "Paramètres",
        "Expiration et événements",
        "Importer",
        "Clés du support",
        "Livraisons en attente",
    ]
    assert page.get_by_role("heading", name="Ajuster les points").is_visible()
    assert page.get_by_role("link", name="Ignorer et passer au contenu").count() == 1  # Polaris' own French

    page.get_by_role("navigation").get_by_role("link", name="Paramètres").click()
    page.get_by_label("Jours d'attente").fill("3")
    page.get_by_text("Modifications non enregistrées").wait_for()
    page.get_by_role("button", name="Enregistrer", exact=True).click()
    page.get_by_text("Enregistré (version 2)", exact=True).first.wait_for()
