"""The embedded admin's support desk: /api/admin/support/..., the support API's operations for signed-in staff."""

from __future__ import annotations

from flask import Response, jsonify, request
from sqlalchemy import select

from plugin import inbox
from plugin.db import transaction
from plugin.models import Delivery, Member, Shop, SupportAction, SupportKey
from plugin.platforms.shopify import session as shopify_session
from plugin.services import redemption, support
from plugin.web.admin import _Refused, _settings, _staff_shop_id, blp, page

SECURITY = [{"sessionToken": []}]


@page.context_processor
def _reason_codes() -> dict:
    """The page's reason selects list the service's codes."""
    return {"reason_codes": support.REASON_CODES}


@blp.errorhandler(support.SupportError)
def _support_error(error: support.SupportError) -> Response:
    return _Refused(error.status, error.code, str(error)).response


@blp.errorhandler(redemption.RedemptionError)
def _redemption_error(error: redemption.RedemptionError) -> Response:
    return _Refused(409, error.code, str(error)).response


def _staff() -> tuple[int, str]:
    """The shop a valid session token speaks for, and the actor to record: "staff:<the token's sub>"."""
    shop_id = _staff_shop_id()  # refuses anything but a valid token of an installed shop
    settings = _settings()
    token = request.headers.get("Authorization", "")[len("Bearer ") :]
    user = shopify_session.verify(token, settings.shopify_api_key, settings.webhook_secrets).user_id
    return shop_id, f"staff:{user}"


def _body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise support.Invalid("send a JSON object")
    return data


def _idempotency_key() -> str | None:
    return request.headers.get("Idempotency-Key") or None


def _created(payload: dict) -> Response:
    response = jsonify(payload)
    response.status_code = 201
    return response


def _key_json(key: SupportKey) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


@blp.route("/support/members", methods=["GET"])
@blp.doc(security=SECURITY)
def support_lookup() -> Response:
    """A member's card by ?email= or ?customer_id=: balance, explained recent history, rewards."""
    shop_id, _ = _staff()
    customer = request.args.get("customer_id", "").strip()
    with transaction(_settings().database_url) as session:
        shop = session.get(Shop, shop_id)
        member = support.find_member(
            session,
            shop,
            email=request.args.get("email"),
            customer_id=int(customer) if customer.isdigit() else None,
        )
        return jsonify(support.member_card(session, shop, member))


@blp.route("/support/members/<int:customer_id>/history", methods=["GET"])
@blp.doc(security=SECURITY)
def support_history(customer_id: int) -> Response:
    """Every posting explained, newest first; ?format=csv for a spreadsheet."""
    shop_id, _ = _staff()
    with transaction(_settings().database_url) as session:
        shop = session.get(Shop, shop_id)
        lines = support.history(session, shop, support.find_member(session, shop, customer_id=customer_id))
    if request.args.get("format") == "csv":
        return Response(
            support.history_csv(lines),
            mimetype="text/csv",
            headers={"Content-Disposition": f"attachment; filename=points-{customer_id}.csv"},
        )
    return jsonify({"customer_id": customer_id, "history": lines})


def _perform(action: str, target: int) -> Response:
    shop_id, actor = _staff()
    body = _body()
    with transaction(_settings().database_url) as session:
        done = support.perform(session, session.get(Shop, shop_id), action, target, body, actor, _idempotency_key())
        return _created(support.action_json(done))


@blp.route("/support/members/<int:customer_id>/adjustments", methods=["POST"])
@blp.doc(security=SECURITY)
def support_adjust(customer_id: int) -> Response:
    """Add or take away points by hand, with a reason code and a note; Idempotency-Key makes a retry safe."""
    return _perform("adjust", customer_id)


@blp.route("/support/orders/<int:order_id>/reversals", methods=["POST"])
@blp.doc(security=SECURITY)
def support_reverse(order_id: int) -> Response:
    """Take back an order's points (all it still holds, or `points`)."""
    return _perform("reverse", order_id)


@blp.route("/support/actions/<int:action_id>/undo", methods=["POST"])
@blp.doc(security=SECURITY)
def support_undo(action_id: int) -> Response:
    """Undo a support action with a further audited action."""
    return _perform("undo", action_id)


@blp.route("/support/actions", methods=["GET"])
@blp.doc(security=SECURITY)
def support_actions() -> Response:
    """The audit trail, newest first (?customer_id= for one member)."""
    shop_id, _ = _staff()
    customer = request.args.get("customer_id", "").strip()
    with transaction(_settings().database_url) as session:
        query = select(SupportAction).where(SupportAction.shop_id == shop_id).order_by(SupportAction.id.desc())
        if customer.isdigit():
            query = query.join(Member, Member.id == SupportAction.member_id).where(Member.customer_id == int(customer))
        return jsonify({"actions": [support.action_json(a) for a in session.scalars(query.limit(200))]})


@blp.route("/support/redemptions/<int:redemption_id>/cancel", methods=["POST"])
@blp.doc(security=SECURITY)
def support_cancel_reward(redemption_id: int) -> Response:
    """Cancel an unused reward: its code is deleted in the shop and the points come back."""
    shop_id, actor = _staff()
    body = _body()
    with transaction(_settings().database_url) as session:
        found = session.get(redemption.Redemption, redemption_id)
        if found is None or found.shop_id != shop_id:
            raise support.NotFound(f"no redemption {redemption_id}")
    reason = f"{body.get('reason_code', 'other')}: {str(body.get('note', '')).strip() or 'cancelled by support'}"
    cancelled = redemption.cancel(_settings(), redemption_id, reason, actor)
    return jsonify({"id": cancelled.id, "status": cancelled.status, "reason": cancelled.reason})


@blp.route("/support/parked", methods=["GET"])
@blp.doc(security=SECURITY)
def support_parked() -> Response:
    """This shop's parked webhook deliveries, oldest first."""
    shop_id, _ = _staff()
    with transaction(_settings().database_url) as session:
        return jsonify({"parked": support.parked(session, session.get(Shop, shop_id))})


@blp.route("/support/parked/<int:delivery_id>", methods=["GET"])
@blp.doc(security=SECURITY)
def support_parked_delivery(delivery_id: int) -> Response:
    """Inspect one delivery: its reason, what Shopify sent, as received."""
    shop_id, _ = _staff()
    with transaction(_settings().database_url) as session:
        return jsonify(support.parked_delivery(session, session.get(Shop, shop_id), delivery_id))


@blp.route("/support/parked/<int:delivery_id>/replay", methods=["POST"])
@blp.doc(security=SECURITY)
def support_replay(delivery_id: int) -> Response:
    """Process a parked delivery again, now; answers its new status."""
    shop_id, _ = _staff()
    with transaction(_settings().database_url) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.shop_domain != session.get(Shop, shop_id).domain:
            raise support.NotFound(f"no parked delivery {delivery_id}")
    try:
        status = inbox.replay(_settings().database_url, delivery_id)
    except ValueError as error:
        raise support.SupportError(str(error)) from None
    return jsonify({"id": delivery_id, "status": status})


@blp.route("/support/keys", methods=["GET", "POST"])
@blp.doc(security=SECURITY)
def support_keys() -> Response:
    """GET: this shop's support API keys (never the keys themselves). POST {name, scope}: a new key, shown once."""
    shop_id, _ = _staff()
    if request.method == "GET":
        with transaction(_settings().database_url) as session:
            keys = session.scalars(select(SupportKey).where(SupportKey.shop_id == shop_id).order_by(SupportKey.id))
            return jsonify({"keys": [_key_json(k) for k in keys]})
    body = _body()
    name = str(body.get("name") or "").strip()
    if not name or len(name) > 120:
        raise support.Invalid("a name of 1 to 120 characters is required")
    with transaction(_settings().database_url) as session:
        key, raw = support.create_key(session, session.get(Shop, shop_id), name, body.get("scope", "read"))
        return _created({**_key_json(key), "key": raw})


@blp.route("/support/keys/<int:key_id>/revoke", methods=["POST"])
@blp.doc(security=SECURITY)
def support_revoke_key(key_id: int) -> Response:
    """Revoke a key at once; revoking twice changes nothing."""
    shop_id, _ = _staff()
    with transaction(_settings().database_url) as session:
        return jsonify(_key_json(support.revoke_key(session, session.get(Shop, shop_id), key_id)))
