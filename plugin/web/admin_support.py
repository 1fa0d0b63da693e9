"""The embedded admin's support desk: /api/admin/support/..., the support API's operations for signed-in staff.

Same schemas, same desk functions as /api/support/; only the authentication (a session token) and the actor
("staff:<the token's sub>") differ.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request

from plugin.platforms.shopify import session as shopify_session
from plugin.services import desk
from plugin.services import schemas as s
from plugin.web.admin import _settings, blp, page
from plugin.web.support_api import CSV_TOO, history_answer

SECURITY = [{"sessionToken": []}]


@page.context_processor
def _reason_codes() -> dict:
    """The page's reason selects list the service's codes."""
    return {"reason_codes": s.REASON_CODES}


def _actor() -> str:
    """The actor to record: "staff:<the token's sub>" (the token was checked by the blueprint's before_request)."""
    settings = _settings()
    token = request.headers.get("Authorization", "")[len("Bearer ") :]
    user = shopify_session.verify(token, settings.shopify_api_key, settings.webhook_secrets).user_id
    return f"staff:{user}"


def _answer(schema, data, status: int = 200) -> Response:
    response = jsonify(schema.dump(data))
    response.status_code = status
    return response


@blp.route("/support/members", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.arguments(s.MemberLookupArgs, location="query", as_kwargs=True)
@blp.response(200, s.MemberCardSchema)
def support_lookup(email: str | None = None, customer_id: int | None = None) -> Response:
    """A member's card by ?email= (exact, any case) or ?customer_id=: balance, explained history, rewards."""
    card = desk.lookup_member(_settings(), g.admin_shop_id, email=email, customer_id=customer_id)
    return _answer(s.MemberCardSchema(), card)


@blp.route("/support/members/<int:customer_id>/history", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.arguments(s.HistoryArgs, location="query", as_kwargs=True)
@blp.response(200, s.HistorySchema, description="JSON; text/csv with ?format=csv")
@blp.doc(responses=CSV_TOO)
def support_history(customer_id: int, format: str) -> Response:
    """Every posting explained, newest first; ?format=csv for a spreadsheet."""
    return history_answer(desk.member_history(_settings(), g.admin_shop_id, customer_id), customer_id, format)


@blp.route("/support/members/<int:customer_id>/adjustments", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(s.IdempotencyKeyHeader, location="headers")
@blp.arguments(s.AdjustmentRequest)
@blp.response(201, s.ActionSchema)
def support_adjust(headers: dict, body: dict, customer_id: int) -> Response:
    """Add or take away points by hand, with a reason code and a note; Idempotency-Key makes a retry safe."""
    action = desk.adjust(_settings(), g.admin_shop_id, customer_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@blp.route("/support/orders/<int:order_id>/reversals", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(s.IdempotencyKeyHeader, location="headers")
@blp.arguments(s.ReversalRequest)
@blp.response(201, s.ActionSchema)
def support_reverse(headers: dict, body: dict, order_id: int) -> Response:
    """Take back an order's points (all it still holds, or `points`)."""
    action = desk.reverse_order(_settings(), g.admin_shop_id, order_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@blp.route("/support/actions/<int:action_id>/undo", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(s.IdempotencyKeyHeader, location="headers")
@blp.arguments(s.UndoRequest)
@blp.response(201, s.ActionSchema)
def support_undo(headers: dict, body: dict, action_id: int) -> Response:
    """Undo a support action with a further audited action."""
    action = desk.undo(_settings(), g.admin_shop_id, action_id, body, _actor(), headers["key"])
    return _answer(s.ActionSchema(), action, 201)


@blp.route("/support/actions", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.arguments(s.ActionsArgs, location="query", as_kwargs=True)
@blp.response(200, s.ActionListSchema)
def support_actions(customer_id: int | None = None) -> Response:
    """The audit trail, newest first (?customer_id= for one member)."""
    return _answer(s.ActionListSchema(), {"actions": desk.list_actions(_settings(), g.admin_shop_id, customer_id)})


@blp.route("/support/redemptions/<int:redemption_id>/cancel", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(s.CancelRewardRequest)
@blp.response(200, s.RedemptionSchema)
def support_cancel_reward(body: dict, redemption_id: int) -> Response:
    """Cancel an unused reward: its code is deleted in the shop and the points come back."""
    cancelled = desk.cancel_reward(_settings(), g.admin_shop_id, redemption_id, body, _actor())
    return _answer(s.RedemptionSchema(), cancelled)


@blp.route("/support/parked", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200, s.ParkedListSchema)
def support_parked() -> Response:
    """This shop's parked webhook deliveries, oldest first."""
    return _answer(s.ParkedListSchema(), {"parked": desk.list_parked(_settings(), g.admin_shop_id)})


@blp.route("/support/parked/<int:delivery_id>", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200, s.ParkedDeliverySchema)
def support_parked_delivery(delivery_id: int) -> Response:
    """Inspect one delivery: its reason, what Shopify sent, as received."""
    return _answer(s.ParkedDeliverySchema(), desk.show_parked(_settings(), g.admin_shop_id, delivery_id))


@blp.route("/support/parked/<int:delivery_id>/replay", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, s.ReplaySchema)
def support_replay(delivery_id: int) -> Response:
    """Process a parked delivery again, now; answers its new status."""
    return _answer(s.ReplaySchema(), desk.replay_parked(_settings(), g.admin_shop_id, delivery_id))


@blp.route("/support/keys", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200, s.KeyListSchema)
def support_keys() -> Response:
    """This shop's support API keys (never the keys themselves)."""
    return _answer(s.KeyListSchema(), {"keys": desk.list_keys(_settings(), g.admin_shop_id)})


@blp.route("/support/keys", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(s.NewKeyRequest)
@blp.response(201, s.NewKeySchema)
def support_new_key(body: dict) -> Response:
    """A new key {name, scope}, shown once: only its hash is kept."""
    key, raw = desk.create_key(_settings(), g.admin_shop_id, body)
    response = jsonify({**s.KeySchema().dump(key), "key": raw})
    response.status_code = 201
    return response


@blp.route("/support/keys/<int:key_id>/revoke", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, s.KeySchema)
def support_revoke_key(key_id: int) -> Response:
    """Revoke a key at once; revoking twice changes nothing."""
    return _answer(s.KeySchema(), desk.revoke_key(_settings(), g.admin_shop_id, key_id))
