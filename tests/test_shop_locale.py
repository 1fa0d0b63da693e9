"""The shop's language: read from Shopify's primary locale after install or from the CLI, or set by the merchant."""

from __future__ import annotations

import json
import re

import responses
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Shop
from plugin.services import shop_locale
from tests.conftest import SHOP

GRAPHQL = re.compile(r"https://loyal-shop\.myshopify\.com/admin/api/[^/]+/graphql\.json")
LOCALES = {"data": {"shopLocales": [
    {"locale": "en", "primary": False, "published": True},
    {"locale": "fr", "primary": True, "published": True},
]}}  # fmt: skip


def stored_locale(settings) -> str:
    with transaction(settings.database_url) as session:
        return session.execute(select(Shop.locale).where(Shop.domain == SHOP)).scalar_one()


def grant(settings, scopes: str) -> None:
    with transaction(settings.database_url) as session:
        session.execute(select(Shop).where(Shop.domain == SHOP)).scalar_one().scopes = scopes


@responses.activate
def test_after_install_the_shops_primary_locale_is_read_when_the_shop_granted_read_locales(settings, shop_with_token):
    responses.post(GRAPHQL, json=LOCALES)
    grant(settings, "read_orders,read_products")
    assert shop_locale.fetch(settings, shop_with_token) is None  # an older grant: not asked at all
    assert len(responses.calls) == 0 and stored_locale(settings) == "en"
    grant(settings, "read_orders,read_products,read_locales")
    assert shop_locale.fetch(settings, shop_with_token) == "fr"
    assert "shopLocales" in json.loads(responses.calls[0].request.body)["query"]
    assert stored_locale(settings) == "fr"


@responses.activate
def test_a_shop_that_cannot_be_asked_or_names_no_primary_locale_keeps_its_locale(settings, shop_with_token):
    grant(settings, "read_locales")
    responses.post(GRAPHQL, json={"data": {"shopLocales": [{"locale": "de", "primary": False}]}})
    assert shop_locale.fetch(settings, shop_with_token) is None
    responses.replace(
        responses.POST, GRAPHQL, status=403, json={"errors": "[API] This action requires merchant approval"}
    )
    assert shop_locale.fetch(settings, shop_with_token) is None
    assert stored_locale(settings) == "en"


@responses.activate
def test_the_cli_shows_sets_and_fetches_the_locale_and_refuses_a_malformed_one(app, settings, shop_with_token):
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["loyalty", "shops", "locale", SHOP])
    assert json.loads(shown.output) == {"locale": "en", "language": "en", "languages": ["en", "fr"]}
    refused = runner.invoke(args=["loyalty", "shops", "locale", SHOP, "not a locale"])
    assert refused.exit_code != 0 and "locale" in refused.output
    assert json.loads(runner.invoke(args=["loyalty", "shops", "locale", SHOP, "fr"]).output)["locale"] == "fr"
    responses.post(GRAPHQL, json={"data": {"shopLocales": [{"locale": "en-GB", "primary": True}]}})
    fetched = runner.invoke(args=["loyalty", "shops", "locale", SHOP, "--fetch"])  # asks whatever the grant
    assert fetched.exit_code == 0, fetched.output
    assert json.loads(fetched.output) == {"locale": "en-GB", "language": "en", "languages": ["en", "fr"]}
    both = runner.invoke(args=["loyalty", "shops", "locale", SHOP, "fr", "--fetch"])
    assert both.exit_code != 0
