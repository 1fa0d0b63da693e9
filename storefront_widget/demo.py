"""The demo storefront (`make run` only): a shop page with the real widget, proxied and signed as Shopify would."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)

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
    if subpath.startswith("r/"):
        # A referral link answers a redirect to the shop's home page, "/": here that is the demo storefront.
        answer = current_app.test_client().get(_signed_path(subpath))
        location = answer.headers.get("Location", "/")
        return redirect(location.replace("/", url_for("demo.storefront"), 1) if location.startswith("/") else "/")
    return redirect(_signed_path(subpath), code=307)  # 307 keeps the method and body: a POST redeem stays a POST


# The demo's cart: what the widget writes with /cart/update.js, by a cookie (Shopify keeps it in the cart).
DEMO_CARTS: dict[str, dict[str, str]] = {}
CART_COOKIE = "demo_cart"


@bp.post("/cart/update.js")
def cart_update() -> Response:
    """Shopify's Ajax cart API, the part the widget uses: cart attributes."""
    cart = request.cookies.get(CART_COOKIE) or str(time.time_ns())
    attributes = (request.get_json(silent=True) or {}).get("attributes") or {}
    DEMO_CARTS.setdefault(cart, {}).update({str(k): str(v) for k, v in attributes.items()})
    response = jsonify({"attributes": DEMO_CARTS[cart]})
    response.set_cookie(CART_COOKIE, cart, samesite="Lax", httponly=True)
    return response


@bp.get("/cart.js")
def cart() -> Response:
    return jsonify({"attributes": DEMO_CARTS.get(request.cookies.get(CART_COOKIE, ""), {})})


def _signed_path(subpath: str) -> str:
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
    return f"/proxy/{subpath}?{urlencode(params)}"


@bp.get("/widget-assets/<path:name>")
def asset(name: str) -> Response:
    """The widget's two files, as the theme app extension would serve them from Shopify's CDN."""
    return send_from_directory(ASSETS, name, max_age=3600)


@bp.get("/demo/assets/<path:name>")
def page_asset(name: str) -> Response:
    """The demo product page's photos and web font (scripts/demo-assets.py made them), cached like a theme's."""
    return send_from_directory(PAGE_ASSETS, name, max_age=86400)
