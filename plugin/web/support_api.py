"""Support API under /api/support/: per-shop API keys (read or write), JSON shaped for a helpdesk sidebar.

Each route authenticates, loads its request with the operation's schema, calls one plugin.services.desk function
and dumps the answer with the same schemas as the embedded admin and the CLI. Documented at
/api/support/openapi.json.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, jsonify, request

from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop
from plugin.services import desk, support
from plugin.services import schemas as s
from plugin.web.apis import DocumentedApi, DocumentedBlueprint
from plugin.web.errors import json_error

api = DocumentedApi(config_prefix="SUPPORT")
bp = DocumentedBlueprint(
    "support_api", __name__, url_prefix="/api/support", description="Look up members and fix their points"
)
SECURITY = [{"supportKey": []}]
# The history's 200 as JSON (the History schema, registered by @response) or, with ?format=csv, as CSV.
CSV_TOO = {
    "200": {
        "description": "JSON; text/csv with ?format=csv",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/History"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def init_app(app: Flask) -> None:
    """Register the blueprint through its own OpenAPI document (call before the app's error handlers are set)."""
    app.config.update(
        SUPPORT_API_TITLE="Loyalty support API",
        SUPPORT_API_VERSION="1",
        SUPPORT_OPENAPI_VERSION="3.0.3",
        SUPPORT_OPENAPI_URL_PREFIX="/api/support",
        SUPPORT_OPENAPI_JSON_PATH="openapi.json",
    )
    api.init_app(app)
    api.spec.components.security_scheme(
        "supportKey", {"type": "http", "scheme": "bearer", "description": "a support key, lsk_<prefix>_<secret>"}
    )
    api.register_blueprint(bp)


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


@bp.before_request
def _authenticate() -> Response | None:
    """Authenticate the key (Authorization: Bearer lsk_..., or X-Support-Key) before any input is read.

    Reading needs a read or write key; every POST writes, and needs a write key.
    """
    header = request.headers.get("Authorization", "")
    raw = header[len("Bearer ") :] if header.startswith("Bearer ") else request.headers.get("X-Support-Key", "")
    with transaction(_settings().database_url) as session:
        holder = support.authenticate(session, raw)
        shop = session.get(Shop, holder.shop_id) if holder else None
    if holder is None or shop is None or not shop.active:
        return json_error(401, "invalid_key", "a valid support key is required")
    if request.method not in ("GET", "HEAD") and holder.scope != "write":
        return json_error(403, "read_only_key", "this key can only read")
    g.support_key, g.shop_id = holder, shop.id
    return None


def _actor() -> str:
    return f"key:{g.support_key.name}"


def _answer(schema, data, status: int = 200) -> Response:
    response = jsonify(schema.dump(data))
    response.status_code = status
    return response


@bp.route("/members", methods=["GET"])
@bp.doc(security=SECURITY)
@bp.arguments(s.MemberLookupArgs, location="query", as_kwargs=True)
@bp.response(200, s.MemberCardSchema)
def lookup(email: str | None = None, customer_id: int | None = None) -> Response:
    """A member's card by ?email= (exact, any case) or ?customer_id=: the whole card in one call."""
    card = desk.lookup_member(_settings(), g.shop_id, email=email, customer_id=customer_id)
    return _answer(s.MemberCardSchema(), card)


@bp.route("/members/<int:customer_id>/history", methods=["GET"])
@bp.doc(security=SECURITY)
@bp.arguments(s.HistoryArgs, location="query", as_kwargs=True)
@bp.response(200, s.HistorySchema, description="JSON; text/csv with ?format=csv")
@bp.doc(responses=CSV_TOO)
def member_history(customer_id: int, format: str) -> Response:
    """Every posting explained, newest first; ?format=csv for a spreadsheet."""
    return history_answer(desk.member_history(_settings(), g.shop_id, customer_id), customer_id, format)


def history_answer(lines: list[dict], customer_id: int, format: str) -> Response:
    """The history as JSON, or as a CSV attachment (shared with the embedded admin)."""
    dumped = s.HistoryLineSchema(many=True).dump(lines)
    if format == "csv":
        return Response(
            support.history_csv(dumped),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename=points-{customer_id}.csv"},
        )
    return jsonify({"customer_id": customer_id, "history": dumped})


@bp.route("/members/<int:customer_id>/adjustments", methods=["POST"])
@bp.doc(security=SECURITY)
@bp.arguments(s.IdempotencyKeyHeader, location="headers")
@bp.arguments(s.AdjustmentRequest)
@bp.response(201, s.ActionSchema)
def adjust(headers: dict, body: dict, customer_id: int) -> Response:
    """Add or take away points by hand, with a reason code and a note; Idempotency-Key makes a retry safe."""
    action = desk.adjust(_settings(), g.shop_id, customer_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@bp.route("/orders/<int:order_id>/reversals", methods=["POST"])
@bp.doc(security=SECURITY)
@bp.arguments(s.IdempotencyKeyHeader, location="headers")
@bp.arguments(s.ReversalRequest)
@bp.response(201, s.ActionSchema)
def reverse(headers: dict, body: dict, order_id: int) -> Response:
    """Take back an order's points (all it still holds, or `points`)."""
    action = desk.reverse_order(_settings(), g.shop_id, order_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@bp.route("/actions/<int:action_id>/undo", methods=["POST"])
@bp.doc(security=SECURITY)
@bp.arguments(s.IdempotencyKeyHeader, location="headers")
@bp.arguments(s.UndoRequest)
@bp.response(201, s.ActionSchema)
def undo(headers: dict, body: dict, action_id: int) -> Response:
    """Undo a support action with a further audited action."""
    action = desk.undo(_settings(), g.shop_id, action_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@bp.route("/actions", methods=["GET"])
@bp.doc(security=SECURITY)
@bp.arguments(s.ActionsArgs, location="query", as_kwargs=True)
@bp.response(200, s.ActionListSchema)
def actions(customer_id: int | None = None) -> Response:
    """The audit trail, newest first (?customer_id= for one member)."""
    return _answer(s.ActionListSchema(), {"actions": desk.list_actions(_settings(), g.shop_id, customer_id)})


@bp.route("/redemptions/<int:redemption_id>/cancel", methods=["POST"])
@bp.doc(security=SECURITY)
@bp.arguments(s.CancelRewardRequest)
@bp.response(200, s.RedemptionSchema)
def cancel_reward(body: dict, redemption_id: int) -> Response:
    """Cancel an unused reward: its code is deleted in the shop and the points come back."""
    cancelled = desk.cancel_reward(_settings(), g.shop_id, redemption_id, body, _actor())
    return _answer(s.RedemptionSchema(), cancelled)


@bp.route("/parked", methods=["GET"])
@bp.doc(security=SECURITY)
@bp.response(200, s.ParkedListSchema)
def parked() -> Response:
    """This shop's parked webhook deliveries, oldest first."""
    return _answer(s.ParkedListSchema(), {"parked": desk.list_parked(_settings(), g.shop_id)})


@bp.route("/parked/<int:delivery_id>", methods=["GET"])
@bp.doc(security=SECURITY)
@bp.response(200, s.ParkedDeliverySchema)
def parked_delivery(delivery_id: int) -> Response:
    """Inspect one delivery: its reason, what Shopify sent, as received."""
    return _answer(s.ParkedDeliverySchema(), desk.show_parked(_settings(), g.shop_id, delivery_id))


@bp.route("/parked/<int:delivery_id>/replay", methods=["POST"])
@bp.doc(security=SECURITY)
@bp.response(200, s.ReplaySchema)
def replay(delivery_id: int) -> Response:
    """Process a parked delivery again, now; answers its new status."""
    return _answer(s.ReplaySchema(), desk.replay_parked(_settings(), g.shop_id, delivery_id))
