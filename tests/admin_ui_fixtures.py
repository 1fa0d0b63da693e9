"""The admin's browser-test fixtures; test modules load them with `pytest_plugins = ["tests.admin_ui_fixtures"]`."""

from __future__ import annotations

import pytest

from tests.admin_ui import seed_member, serve
from tests.processes import chromium_page, stop


@pytest.fixture
def admin(settings, shop):
    """Base URL of the app, serving a shop whose customer 1001 was granted 1500 points and spent 300."""
    seed_member(settings, shop)
    app, base_url = serve(settings)
    yield base_url
    stop(app)


@pytest.fixture
def page():
    """A page in Chromium, 1280x900, in English."""
    # bypass_csp: the page forbids eval, which Playwright itself uses to poll conditions; the app never does.
    with chromium_page(viewport={"width": 1280, "height": 900}, locale="en-US", bypass_csp=True) as page:
        yield page
