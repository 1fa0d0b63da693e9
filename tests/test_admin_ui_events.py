"""The admin's Expiry and events page in Debian's Chromium: expiry refused then saved, an endpoint's secret shown
once, a disabled endpoint's notice, and the delivery log's replay."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import EventEndpoint, ExpiryPolicy
from plugin.services import event_delivery, event_endpoints, outbox
from tests.admin_ui import API_KEY, admin_url, require_current_bundle, seed_member
from tests.processes import start_app, stop

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.admin_ui_fixtures"]


@pytest.fixture
def events_admin(settings, shop):
    """The app with loopback endpoints allowed (development), so no test needs outside DNS."""
    seed_member(settings, shop)
    require_current_bundle()
    app, base_url = start_app(settings, SHOPIFY_API_KEY=API_KEY, REDIS_URL="", LOYALTY_EVENTS_ALLOW_LOOPBACK="1")
    yield base_url
    stop(app)


def test_expiry_and_endpoints_are_managed_from_the_admin(events_admin, page, settings, shop):
    page.goto(admin_url(events_admin, "events"))
    page.get_by_role("heading", name="Points expiry").wait_for()

    # Contradictory expiry settings: the message lands on the field, nothing is saved.
    page.get_by_label("Reminders (days before)").fill("7")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("reminders need expiry").wait_for()
    page.get_by_label("Policy").select_option("per_lot")
    page.get_by_label("Months", exact=True).fill("12")
    page.get_by_label("Reminders (days before)").fill("7, 30")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Expiry saved", exact=True).first.wait_for()
    with transaction(settings.database_url) as session:
        row = session.get(ExpiryPolicy, shop)
        assert (row.policy, row.months, row.reminder_days) == ("per_lot", 12, [30, 7])

    # An unsafe URL is refused on its field; a safe one shows its secret once.
    page.get_by_label("URL").fill("ftp://example.com/hook")
    page.get_by_role("button", name="Register endpoint").click()
    page.get_by_text("must be an https:// URL").first.wait_for()
    page.get_by_label("URL").fill("http://127.0.0.1:9/hook")
    page.get_by_role("button", name="Register endpoint").click()
    secret = page.get_by_label("Signing secret")
    secret.wait_for()
    with transaction(settings.database_url) as session:
        endpoint = session.scalars(select(EventEndpoint)).one()
        assert event_endpoints.secret_of(endpoint, settings.encryption_keys) == secret.input_value()
    page.get_by_role("button", name="Dismiss notification").click()
    assert secret.count() == 0

    # The receiver answers 410: the endpoint is disabled and the page says so; the log offers a replay.
    with transaction(settings.database_url) as session:
        outbox.record(session, shop, "points.earned", dedupe_key="ui:1", data={"points": 5})

    class Gone:
        status_code = 410

    local = dataclasses.replace(settings, events_allow_loopback=True)
    event_delivery.deliver(local, sender=lambda *args, **kwargs: Gone())
    page.reload()
    page.get_by_text("the receiver answered 410 Gone").first.wait_for()
    page.get_by_role("button", name="Enable http://127.0.0.1:9/hook").click()
    page.get_by_role("button", name="Disable http://127.0.0.1:9/hook").wait_for()
    page.get_by_role("button", name="Replay event").first.click()
    page.get_by_text("Queued again (1)").first.wait_for()

    page.get_by_role("button", name="Send events to Shopify Flow").click()
    page.get_by_text("Events go to Shopify Flow too", exact=True).first.wait_for()
    page.get_by_text("shopify-flow:flowTriggerReceive").wait_for()
    assert page.get_by_role("button", name="Send events to Shopify Flow").count() == 0
