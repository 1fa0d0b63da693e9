"""The embedded admin: GET /admin (the page) and its API under /api/admin/, authenticated by session tokens.

The API's OpenAPI document is generated from the marshmallow schemas by flask-smorest and served at
/api/admin/openapi.json; the support API's, at /api/support/openapi.json.
"""

from __future__ import annotations

from flask import Blueprint as FlaskBlueprint
from flask import Response, current_app, g, jsonify, render_template, request, url_for
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields
from sqlalchemy import func, select

from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Member, Posting, Shop
from plugin.platforms.shopify import session as shopify_session
from plugin.platforms.shopify.adapter import is_valid_shop_domain
from plugin.programme.import_formats import LAYOUTS
from plugin.programme.settings import ProgramSettingsSchema, stored_settings
from plugin.services import reward_items, shops
from plugin.web.apis import DocumentedApi, DocumentedBlueprint

api = DocumentedApi()
blp = DocumentedBlueprint("admin_api", __name__, url_prefix="/api/admin", description="Programme settings and figures")
page = FlaskBlueprint("admin_page", __name__)


class _Refused(Exception):
    """An API refusal in the app's error shape; `fields` carries marshmallow's per-field messages."""

    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        error = {"code": code, "message": message, **({"fields": fields} if fields is not None else {})}
        self.response = jsonify({"error": error})
        self.response.status_code = status


class SettingsEnvelopeSchema(Schema):
    version = fields.Integer(required=True)
    settings = fields.Nested(ProgramSettingsSchema, required=True)


class SummarySchema(Schema):
    shop = fields.String(required=True)
    currency = fields.String(allow_none=True)
    members = fields.Integer(required=True)
    points_issued = fields.Integer(required=True, metadata={"description": "earned and granted"})
    points_reversed = fields.Integer(required=True, metadata={"description": "taken back on refunds"})
    points_redeemed = fields.Integer(required=True, metadata={"description": "spent, net of returned"})
    points_outstanding = fields.Integer(required=True, metadata={"description": "sum of all balances"})


def init_app(app) -> None:
    """The admin API and page, and the support API: both APIs are documented before any error handler is set."""
    app.config.update(
        API_TITLE="Loyalty admin API",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/admin",
        OPENAPI_JSON_PATH="openapi.json",
    )
    api.init_app(app)
    api.spec.components.security_scheme("sessionToken", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    from plugin.web import (  # noqa: F401  (their routes join blp first)
        admin_events,
        admin_milestones,
        admin_programme,
        admin_referrals,
        admin_reports,
        admin_support,
        admin_tiers,
        support_api,
    )

    api.register_blueprint(blp)
    from plugin.web import admin_import

    api.register_blueprint(admin_import.blp)
    app.register_blueprint(page)
    support_api.init_app(app)


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


@blp.errorhandler(_Refused)
def _refused(error: _Refused) -> Response:
    return error.response


@blp.errorhandler(422)
def _unprocessable(error) -> Response:
    messages = (getattr(error, "data", None) or {}).get("messages", {})
    return _Refused(422, "invalid_settings", "some settings are not valid", messages.get("json", messages)).response


@blp.before_request
def _authenticate() -> Response | None:
    # Before any body is read or validated: a caller without a valid token learns nothing about the API.
    try:
        g.admin_shop_id = _staff_shop_id()
    except _Refused as refused:
        return refused.response
    return None


def _staff_shop_id() -> int:
    """The installed shop a valid session token speaks for; anything else is a 401."""
    if "admin_shop_id" in g:
        return g.admin_shop_id
    settings = _settings()
    header = request.headers.get("Authorization", "")
    token = header[len("Bearer ") :] if header.startswith("Bearer ") else ""
    try:
        session_info = shopify_session.verify(token, settings.shopify_api_key, settings.webhook_secrets)
    except shopify_session.SessionTokenError as error:
        raise _Refused(401, "invalid_session_token", str(error)) from None
    with transaction(settings.database_url) as db:
        shop = db.execute(select(Shop).where(Shop.domain == session_info.shop_domain)).scalar_one_or_none()
        if shop is None or not shop.active:
            raise _Refused(401, "invalid_session_token", f"{session_info.shop_domain} has not installed the app")
        return shop.id


@blp.route("/settings")
class SettingsResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, SettingsEnvelopeSchema)
    def get(self):
        """The programme: earn rate and base, pending period, rewards catalogue."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            shop = db.get(Shop, shop_id)
            return jsonify({"version": shop.settings_version, "settings": stored_settings(shop.settings)})

    @blp.doc(security=[{"sessionToken": []}])
    @blp.arguments(ProgramSettingsSchema, error_status_code=422)
    @blp.response(200, SettingsEnvelopeSchema)
    def put(self, _checked):
        """Change the programme: the fields sent replace the stored ones, fields left out keep their values.

        The same merge as `loyalty settings DOMAIN --set`. Orders already paid keep the rules they earned under.
        """
        shop_id = _staff_shop_id()
        try:
            reward_items.check(_settings(), shop_id, request.get_json())  # asks the shop: before the transaction
            with transaction(_settings().database_url) as db:
                shop = db.get(Shop, shop_id)
                clean = shops.update_settings(db, shop, request.get_json())
                return jsonify({"version": shop.settings_version, "settings": clean})
        except ValidationError as error:
            raise _Refused(422, "invalid_settings", "some settings are not valid", error.messages) from None


@blp.route("/summary")
class SummaryResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, SummarySchema)
    def get(self):
        """Members and points: issued, reversed, redeemed, outstanding."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            shop = db.get(Shop, shop_id)
            by_kind = dict(
                db.execute(
                    select(Posting.kind, func.sum(Posting.points))
                    .where(Posting.shop_id == shop_id)
                    .group_by(Posting.kind)
                ).all()
            )
            members, outstanding = db.execute(
                select(func.count(Member.id), func.coalesce(func.sum(Member.balance), 0)).where(
                    Member.shop_id == shop_id
                )
            ).one()
            return jsonify(
                {
                    "shop": shop.domain,
                    "currency": shop.currency,
                    "members": members,
                    "points_issued": int(by_kind.get("earn", 0) + by_kind.get("bonus", 0)),
                    "points_reversed": -int(by_kind.get("reverse", 0)),
                    "points_redeemed": -int(by_kind.get("redeem", 0) + by_kind.get("return", 0)),
                    "points_outstanding": int(outstanding),
                }
            )


@page.get("/admin")
@page.get("/admin/<path:_subpage>")
def admin_page(_subpage: str = "") -> Response:
    """The admin Shopify loads inside the shop's admin (an iframe): one page, its routes drawn by the bundle."""
    settings = _settings()
    shop = request.args.get("shop", "")
    if not is_valid_shop_domain(shop):
        # Shown inside the shop's admin, so a sentence rather than JSON.
        return Response(
            "<!doctype html><title>Loyalty</title><p>Open this app from your Shopify admin.</p>",
            status=400,
            mimetype="text/html",
        )
    locale = "fr" if request.args.get("locale", "").lower().startswith("fr") else "en"  # as the widget chooses
    html = render_template(
        "admin_ui.html",
        api_key=settings.shopify_api_key,
        shop=shop,
        locale=locale,
        import_sources=[{"key": key, "title": layout.title} for key, layout in sorted(LAYOUTS.items())],
        app_bridge=bool(request.args.get("host")),
        js_url=url_for("static", filename="admin-ui/app.js"),
        css_url=url_for("static", filename="admin-ui/app.css"),
    )
    response = Response(html, mimetype="text/html")
    # Only this shop's admin may frame the page.
    response.headers["Content-Security-Policy"] = (
        f"frame-ancestors https://{shop} https://admin.shopify.com; "
        "script-src 'self' https://cdn.shopify.com; object-src 'none'; base-uri 'self'"
    )
    return response
