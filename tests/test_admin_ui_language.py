"""The merchant sets the language explanations are shown in, on the Settings page, in a real headless Chromium."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Shop
from tests.admin_ui import admin_url
from tests.conftest import SHOP

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


def stored_locale(settings) -> str:
    with transaction(settings.database_url) as session:
        return session.execute(select(Shop.locale).where(Shop.domain == SHOP)).scalar_one()


def test_the_merchant_chooses_french_for_explanations_on_the_settings_page(admin, page, settings):
    page.goto(admin_url(admin, "settings"))
    language = page.get_by_role("combobox", name="Language", exact=True)
    language.wait_for()
    assert language.input_value() == "en"
    save = page.get_by_role("button", name="Save language")
    assert save.is_disabled()  # nothing to save until the language changes
    language.select_option("fr")
    save.click()
    page.get_by_text("Language saved", exact=True).first.wait_for()
    assert stored_locale(settings) == "fr"
    assert page.get_by_text("Unsaved changes").count() == 0  # the versioned programme is untouched
