"""Support API under /api/support/: per-shop API keys (read or write), JSON shaped for a helpdesk sidebar."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy import select

from plugin import inbox
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Delivery, Member, Shop, SupportAction
from plugin.services import redemption, support
from plugin.web.errors import json_error

bp = Blueprint("support_api", __name__, url_prefix="/api/support")


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def needs(scope: str):
    """Authenticate the key (Authorization: Bearer lsk_...) and require `scope`; write keys may also read."""

    def decorate(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            header = request.headers.get("Authorization", "")
            raw = header[len("Bearer ") :] if header.startswith("Bearer ") else request.headers.get("X-Support-Key", "")
            with transaction(_settings().database_url) as session:
                holder = support.authenticate(session, raw)
                shop = session.get(Shop, holder.shop_id) if holder else None
            if holder is None or shop is None or not shop.active:
                return json_error(401, "invalid_key", "a valid support key is required")
            if scope == "write" and holder.scope != "write":
                return json_error(403, "read_only_key", "this key can only read")
            g.support_key, g.shop_id = holder, shop.id
            try:
                return view(*args, **kwargs)
            except support.SupportError as error:
                return json_error(error.status, error.code, str(error))
            except redemption.RedemptionError as error:
                return json_error(409, error.code, str(error))

        return wrapper

    return decorate


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise support.Invalid("send a JSON object")
    return data


def _actor() -> str:
    return f"key:{g.support_key.name}"


@bp.get("/members")
@needs("read")
def lookup() -> Response:
    """GET /api/support/members?email=... or ?customer_id=...: the whole card in one call."""
    customer = request.args.get("customer_id")
    with transaction(_settings().database_url) as session:
        shop = session.get(Shop, g.shop_id)
        member = support.find_member(
            session,
            shop,
            email=request.args.get("email"),
            customer_id=int(customer) if customer and customer.isdigit() else None,
        )
        return jsonify(support.member_card(session, shop, member))


@bp.get("/members/<int:customer_id>/history")
@needs("read")
def member_history(customer_id: int) -> Response:
    """Every posting explained; ?format=csv for a spreadsheet."""
    with transaction(_settings().database_url) as session:
        shop = session.get(Shop, g.shop_id)
        lines = support.history(session, shop, support.find_member(session, shop, customer_id=customer_id))
    if request.args.get("format") == "csv":
        return Response(
            support.history_csv(lines),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename=points-{customer_id}.csv"},
        )
    return jsonify({"customer_id": customer_id, "history": lines})


@bp.post("/members/<int:target>/adjustments", defaults={"action": "adjust"})
@bp.post("/orders/<int:target>/reversals", defaults={"action": "reverse"})
@bp.post("/actions/<int:target>/undo", defaults={"action": "undo"})
@needs("write")
def write_action(action: str, target: int) -> Response:
    """Adjust a member, reverse an order, or undo an action: reason_code and note required; Idempotency-Key."""
    body = _body()
    with transaction(_settings().database_url) as session:
        done = support.perform(
            session,
            session.get(Shop, g.shop_id),
            action,
            target,
            body,
            _actor(),
            request.headers.get("Idempotency-Key"),
        )
        return _created(done)


@bp.get("/actions")
@needs("read")
def actions() -> Response:
    """The audit trail, newest first (?customer_id= for one member)."""
    customer = request.args.get("customer_id")
    with transaction(_settings().database_url) as session:
        query = select(SupportAction).where(SupportAction.shop_id == g.shop_id).order_by(SupportAction.id.desc())
        if customer and customer.isdigit():
            query = query.join(Member, Member.id == SupportAction.member_id).where(Member.customer_id == int(customer))
        return jsonify({"actions": [support.action_json(a) for a in session.scalars(query.limit(200))]})


@bp.post("/redemptions/<int:redemption_id>/cancel")
@needs("write")
def cancel_reward(redemption_id: int) -> Response:
    """Cancel an unused reward: its code is deleted in the shop and the points come back."""
    body = _body()
    with transaction(_settings().database_url) as session:
        found = session.get(redemption.Redemption, redemption_id)
        if found is None or found.shop_id != g.shop_id:
            raise support.NotFound(f"no redemption {redemption_id}")
    reason = f"{body.get('reason_code', 'other')}: {body.get('note', '').strip() or 'cancelled by support'}"
    cancelled = redemption.cancel(_settings(), redemption_id, reason, _actor())
    return jsonify({"id": cancelled.id, "status": cancelled.status, "reason": cancelled.reason})


@bp.get("/parked")
@needs("read")
def parked() -> Response:
    with transaction(_settings().database_url) as session:
        return jsonify({"parked": support.parked(session, session.get(Shop, g.shop_id))})


@bp.get("/parked/<int:delivery_id>")
@needs("read")
def parked_delivery(delivery_id: int) -> Response:
    """Inspect one delivery: its reason, what Shopify sent, as received."""
    with transaction(_settings().database_url) as session:
        return jsonify(support.parked_delivery(session, session.get(Shop, g.shop_id), delivery_id))


@bp.post("/parked/<int:delivery_id>/replay")
@needs("write")
def replay(delivery_id: int) -> Response:
    with transaction(_settings().database_url) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.shop_domain != session.get(Shop, g.shop_id).domain:
            raise support.NotFound(f"no parked delivery {delivery_id}")
    try:
        status = inbox.replay(_settings().database_url, delivery_id)
    except ValueError as error:
        raise support.SupportError(str(error)) from None
    return jsonify({"id": delivery_id, "status": status})


def _created(action: SupportAction) -> Response:
    response = jsonify(support.action_json(action))
    response.status_code = 201
    return response
