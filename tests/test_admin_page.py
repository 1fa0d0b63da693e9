"""GET /admin: the shell the admin's bundle draws into, App Bridge only when Shopify embeds it, the bundle current."""

from __future__ import annotations

import json
import re
import shutil

from tests.admin_ui import ADMIN_UI, BUNDLE, require_current_bundle, sources_digest
from tests.conftest import ROOT, SHOP

EMBEDDED_HOST = "YWRtaW4uc2hvcGlmeS5jb20vc3RvcmUveA"


def config_of(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="admin-config">(.*?)</script>', html, re.S)
    return json.loads(found.group(1))


def test_the_page_loads_the_bundle_with_the_shop_the_language_and_the_reason_codes(client):
    response = client.get("/admin", query_string={"shop": SHOP, "locale": "fr-CA"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert '<html lang="fr">' in html
    assert config_of(html) == {
        "shop": SHOP,
        "locale": "fr",
        "reason_codes": ["goodwill", "correction", "refund", "fraud", "duplicate", "other"],
        "import_sources": [
            {"key": "loyaltylion", "title": "LoyaltyLion"},
            {"key": "ours", "title": "our export"},
            {"key": "rivo", "title": "Rivo"},
            {"key": "smile", "title": "Smile.io"},
            {"key": "yotpo", "title": "Yotpo"},
        ],
    }
    assert '<script src="/static/admin-ui/app.js" defer>' in html
    assert '<link rel="stylesheet" href="/static/admin-ui/app.css">' in html
    assert "cdn.shopify.com" not in html


def test_the_language_is_english_unless_french_is_asked_for(client):
    for asked in ("", "de", "en-GB"):
        html = client.get("/admin", query_string={"shop": SHOP, "locale": asked}).get_data(as_text=True)
        assert config_of(html)["locale"] == "en" and '<html lang="en">' in html


def test_every_admin_path_serves_the_same_page_for_the_bundle_to_route(client):
    home = client.get("/admin", query_string={"shop": SHOP}).get_data(as_text=True)
    for path in ("members/1001", "settings", "support-keys"):
        response = client.get(f"/admin/{path}", query_string={"shop": SHOP})
        assert response.status_code == 200
        assert response.get_data(as_text=True) == home


def test_app_bridge_is_the_first_script_only_when_shopify_embeds_the_page(client):
    embedded = client.get("/admin", query_string={"shop": SHOP, "host": EMBEDDED_HOST}).get_data(as_text=True)
    scripts = re.findall(r"<script[^>]*>", embedded.split("</head>", 1)[0])
    assert scripts[0] == '<script src="https://cdn.shopify.com/shopifycloud/app-bridge.js" data-api-key="test-api-key">'
    assert scripts[-1] == '<script src="/static/admin-ui/app.js" defer>'


def test_a_page_opened_without_a_shop_says_where_to_open_it(client):
    for shop in ("", "evil.example.com"):
        response = client.get("/admin", query_string={"shop": shop})
        assert response.status_code == 400
        assert "Open this app from your Shopify admin" in response.get_data(as_text=True)


def test_the_built_admin_is_served_and_matches_its_sources(client):
    require_current_bundle()
    for name, mimetype in (("app.js", "text/javascript"), ("app.css", "text/css")):
        response = client.get(f"/static/admin-ui/{name}")
        served = response.get_data()
        response.close()  # send_file's open file
        assert response.status_code == 200 and response.mimetype == mimetype
        assert served == (BUNDLE / name).read_bytes()


def test_editing_any_source_of_the_admin_changes_the_digest_its_bundle_is_checked_against(tmp_path):
    shutil.copytree(ADMIN_UI / "src", tmp_path / "src")
    for name in ("package-lock.json", "build.mjs"):
        shutil.copy(ADMIN_UI / name, tmp_path / name)
    assert sources_digest(tmp_path) == sources_digest()
    for edited in ("src/pages/Home.jsx", "package-lock.json", "build.mjs"):
        with open(tmp_path / edited, "a") as source:
            source.write("\n")
        assert sources_digest(tmp_path) != sources_digest(), edited
        shutil.copy(ADMIN_UI / edited, tmp_path / edited)


def test_the_hand_written_admin_is_gone():
    assert not (ROOT / "plugin" / "static" / "admin").exists()
    assert not (ROOT / "plugin" / "templates" / "admin.html").exists()
