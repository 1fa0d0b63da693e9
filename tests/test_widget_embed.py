"""The app embed keeps the widget off the critical path; the demo pages measure it as Shopify would render it."""

from __future__ import annotations

import dataclasses
import re

import pytest

from plugin import create_app
from tests.conftest import ROOT

EXTENSION = ROOT / "storefront_widget" / "extension"
LOADER = (ROOT / "storefront_widget" / "templates" / "_widget_loader.js").read_text()


def test_the_embed_loads_nothing_that_blocks_the_first_paint():
    embed = (EXTENSION / "blocks" / "loyalty-embed.liquid").read_text()
    # A stylesheet tag or a script src in the block would be fetched before the page paints.
    assert "stylesheet_tag" not in embed and not re.search(r"<link[^>]+stylesheet", embed)
    assert not re.search(r"<script[^>]+src=", embed)
    assert "data-css=\"{{ 'loyalty-widget.css' | asset_url }}\"" in embed
    assert "data-js=\"{{ 'loyalty-widget.js' | asset_url }}\"" in embed


def test_the_embed_and_the_demo_pages_share_one_loader_word_for_word():
    embed = (EXTENSION / "blocks" / "loyalty-embed.liquid").read_text()
    assert LOADER.strip() in embed, "copy storefront_widget/templates/_widget_loader.js into loyalty-embed.liquid"
    assert "addEventListener('load'" in LOADER and "requestIdleCallback" in LOADER


@pytest.fixture
def demo_client(settings):
    return create_app(dataclasses.replace(settings, demo=True)).test_client()


@pytest.mark.parametrize("path", ["/demo/storefront", "/demo/product"])
def test_each_demo_page_renders_the_embed_only_when_asked(demo_client, path):
    with_embed = demo_client.get(f"{path}?customer=&embed=1").get_data(as_text=True)
    without = demo_client.get(f"{path}?customer=&embed=0").get_data(as_text=True)
    assert 'id="loyalty-widget-root"' in with_embed and 'data-js="/widget-assets/loyalty-widget.js"' in with_embed
    assert LOADER.strip() in with_embed
    assert "loyalty-widget" not in without


def test_the_product_page_has_the_weight_of_a_real_one(demo_client):
    html = demo_client.get("/demo/product?customer=&embed=0").get_data(as_text=True)
    images = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert len(images) >= 7 and all(src.startswith("/demo/assets/") for src in images)
    assert 'fetchpriority="high"' in html and "font-display: swap" in html
    font, photo = fetch(demo_client, "display-serif.woff2"), fetch(demo_client, "mug-front.webp")
    assert font[:4] == b"wOF2"
    assert photo[8:12] == b"WEBP" and len(photo) > 40_000


def fetch(client, name: str) -> bytes:
    """One demo asset's bytes (the response is closed, so the file it streams from is too)."""
    response = client.get(f"/demo/assets/{name}")
    try:
        assert response.status_code == 200
        return response.get_data()
    finally:
        response.close()


def test_the_demo_assets_route_serves_nothing_outside_its_folder(demo_client):
    assert demo_client.get("/demo/assets/../demo.py").status_code == 404
    assert demo_client.get("/demo/assets/%2e%2e/demo.py").status_code == 404
