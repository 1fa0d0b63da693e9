"""The demo storefront (`make run` only): a shop page with the real widget, proxied and signed as Shopify would."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, redirect, render_template, request, send_from_directory, url_for

from plugin.config import Settings
from plugin.db import transaction
from plugin.devtools.demo import DEMO_SHOP
from plugin.platforms.shopify.adapter import proxy_signature
from plugin.services import shops

ASSETS = Path(__file__).resolve().parent / "extension" / "assets"
PAGE_ASSETS = Path(__file__).resolve().parent / "demo_assets"
PROXY_PREFIX = "/apps/loyalty"
CUSTOMER_COOKIE = "demo_customer"

bp = Blueprint("demo", __name__, template_folder="templates")


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


@bp.get("/demo/storefront")
def storefront() -> Response:
    """?customer=ID signs in as that shopper (empty: a visitor); ?embed=0 leaves the widget out; ?locale=fr."""
    return _page("demo_storefront.html")


@bp.get("/demo/product")
def product() -> Response:
    """A heavier page (photos, a web font): what the widget's cost is measured against; same parameters."""
    return _page("demo_product.html")


def _page(template: str) -> Response:
    """Render a demo page as the signed-in (or anonymous) shopper, with or without the widget embed."""
    customer = request.args.get("customer", request.cookies.get(CUSTOMER_COOKIE, "1001"))
    customer_id = int(customer) if customer.isdigit() else None
    points = None
    if customer_id is not None:
        with transaction(_settings().database_url) as session:
            member = shops.member(session, shops.get(session, DEMO_SHOP), customer_id)
            points = (
                member.pushed_balance
                if member and member.pushed_balance is not None
                else (member.balance if member else 0)
            )
    html = render_template(
        template,
        embed=request.args.get("embed", "1") != "0",
        customer_id=customer_id,
        points=points,
        widget_js_url=url_for("demo.asset", name="loyalty-widget.js"),
        widget_css_url=url_for("demo.asset", name="loyalty-widget.css"),
        asset=lambda name: url_for("demo.page_asset", name=name),
        proxy_base=f"/demo{PROXY_PREFIX}",
        locale="fr" if request.args.get("locale", "").startswith("fr") else "en",
    )
    response = Response(html, mimetype="text/html")
    response.set_cookie(CUSTOMER_COOKIE, str(customer_id or ""), samesite="Lax", httponly=True)
    return response


@bp.route(f"/demo{PROXY_PREFIX}/<path:subpath>", methods=["GET", "POST"])
def proxy(subpath: str) -> Response:
    """What Shopify's App Proxy does: add shop, customer, path prefix, timestamp and the signature."""
    customer = request.cookies.get(CUSTOMER_COOKIE, "")
    params = [
        (k, v)
        for k, v in request.args.items(multi=True)
        if k not in ("shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature")
    ]
    params += [
        ("shop", DEMO_SHOP),
        ("logged_in_customer_id", customer if customer.isdigit() else ""),
        ("path_prefix", PROXY_PREFIX),
        ("timestamp", str(int(time.time()))),
    ]
    params.append(("signature", proxy_signature(params, _settings().shopify_api_secret)))
    # 307 keeps the method and body, so a POST redeem arrives as a POST.
    return redirect(f"/proxy/{subpath}?{urlencode(params)}", code=307)


@bp.get("/widget-assets/<path:name>")
def asset(name: str) -> Response:
    """The widget's two files, as the theme app extension would serve them from Shopify's CDN."""
    return send_from_directory(ASSETS, name, max_age=3600)


@bp.get("/demo/assets/<path:name>")
def page_asset(name: str) -> Response:
    """The demo product page's photos and web font (scripts/demo-assets.py made them), cached like a theme's."""
    return send_from_directory(PAGE_ASSETS, name, max_age=86400)
