"""The files Shopify's tools read agree with the app: shopify.app.toml, the theme app extension, the API version."""

from __future__ import annotations

import re
import tomllib
from datetime import date

from plugin.config import DEFAULT_API_VERSION
from plugin.platforms.shopify import subscriptions
from storefront_widget import demo
from tests.conftest import ROOT

APP_TOML = tomllib.loads((ROOT / "shopify.app.toml").read_text())
SUPPORT_MONTHS = 12  # Shopify supports a stable version for twelve months after its release
WARNING_MONTHS = 3  # one quarter before that, the next stable version must be pinned


def extension_folders():
    for pattern in APP_TOML.get("extension_directories", ["extensions/*"]):
        for folder in sorted(ROOT.glob(pattern)):
            if list(folder.glob("*.extension.toml")):
                yield folder


def test_shopify_cli_finds_the_theme_app_extension_with_its_blocks_locales_and_assets():
    folders = [f for f in extension_folders() if "flow_triggers" not in f.parts]  # Flow's: test_flow_triggers.py
    assert [folder.relative_to(ROOT).as_posix() for folder in folders] == ["storefront_widget/extension"]
    (extension,) = folders
    assert tomllib.loads((extension / "shopify.extension.toml").read_text())["type"] == "theme"
    assert {path.name for path in (extension / "blocks").glob("*.liquid")} == {
        "loyalty-embed.liquid",
        "loyalty-page.liquid",
    }
    assert (extension / "locales" / "en.default.json").is_file()
    assert {path.name for path in (extension / "assets").iterdir()} == {"loyalty-widget.js", "loyalty-widget.css"}
    assert extension / "assets" == demo.ASSETS  # the demo storefront serves the very files Shopify deploys


def test_the_app_toml_and_the_app_pin_the_same_admin_api_version():
    assert APP_TOML["webhooks"]["api_version"] == DEFAULT_API_VERSION


def test_the_app_toml_subscribes_to_the_topics_the_app_repairs():
    (topics,) = [s["topics"] for s in APP_TOML["webhooks"]["subscriptions"] if "topics" in s]
    assert sorted(topic.upper().replace("/", "_") for topic in topics) == sorted(subscriptions.TOPICS)


def test_the_pinned_admin_api_version_is_a_stable_release_with_a_quarter_of_support_left():
    match = re.fullmatch(r"(\d{4})-(01|04|07|10)", DEFAULT_API_VERSION)
    assert match, f"{DEFAULT_API_VERSION} is not a stable quarterly version"
    year, month = int(match.group(1)), int(match.group(2))
    months = year * 12 + month - 1 + SUPPORT_MONTHS - WARNING_MONTHS
    move_by = date(months // 12, months % 12 + 1, 1)
    assert date.today() < move_by, (
        f"Admin API {DEFAULT_API_VERSION} leaves Shopify's support within {WARNING_MONTHS} months: "
        "pin the current stable version (docs/decisions/0015-admin-api-version.md)"
    )
