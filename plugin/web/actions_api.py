"""The signed server-to-server endpoint for custom actions: POST /api/actions/completions.

The merchant's systems ("review written", "survey completed") sign each call with a per-shop action key:
X-Loyalty-Key-Id, X-Loyalty-Timestamp (Unix seconds) and X-Loyalty-Signature, the hex HMAC-SHA256 of
"<timestamp>.<raw body>"; X-Loyalty-Shop-Domain names the shop and Idempotency-Key the completion.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Member, Shop
from plugin.services.errors import Invalid, NotFound, ServiceError
from plugin.services.milestones import action_keys, actions
from plugin.web.errors import json_error

bp = Blueprint("actions_api", __name__, url_prefix="/api/actions")


class BadSignature(ServiceError):
    code, status = "invalid_signature", 401


@bp.errorhandler(actions.ActionRefused)
def _refused(error: actions.ActionRefused) -> Response:
    headers = {"Retry-After": str(max(error.retry_after_seconds, 1))} if error.retry_after_seconds else {}
    return json_error(error.status, error.code, str(error), headers, error.fields)


@bp.post("/completions")
def complete() -> tuple[Response, int]:
    """Record that a member completed an action, and post its points; a replayed key posts nothing (200)."""
    settings = current_app.extensions["loyalty"]
    body = request.get_data(cache=True)
    domain = request.headers.get("X-Loyalty-Shop-Domain", "")
    with transaction(settings.database_url) as session:
        shop = session.execute(select(Shop).where(Shop.domain == domain, Shop.active.is_(True))).scalar_one_or_none()
        signed = shop is not None and action_keys.verify(
            session, shop.id, request.headers.get("X-Loyalty-Key-Id"), request.headers.get("X-Loyalty-Timestamp"),
            request.headers.get("X-Loyalty-Signature"), body, settings.encryption_keys,
        )  # fmt: skip
        if not signed:  # one answer for an unknown shop, key or a bad signature: nothing to probe with
            raise BadSignature("the request is not signed by a live action key of this shop, or is stale")
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            raise Invalid("the body must be a JSON object", {"_schema": ["a JSON object"]})
        customer_id = payload.get("customer_id")
        problems = {}
        if not isinstance(customer_id, int) or isinstance(customer_id, bool) or not 0 < customer_id < 2**63:
            problems["customer_id"] = ["the Shopify customer id, a positive whole number"]
        if not isinstance(payload.get("action"), str):
            problems["action"] = ["the action's id"]
        key = request.headers.get("Idempotency-Key", "")
        if not 1 <= len(key) <= 200:
            problems["Idempotency-Key"] = ["a header of 1 to 200 characters"]
        if problems:
            raise Invalid("some fields are not valid", problems)
        member_id = session.execute(
            select(Member.id).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
        ).scalar_one_or_none()
        if member_id is None:
            raise NotFound("no member with that customer id", {"customer_id": ["not a member of this programme"]})
        done = actions.complete(
            session, shop, member_id, payload["action"], f"server:{key}", channel="server",
            answers=payload.get("answers"),
        )  # fmt: skip
    return jsonify({"completion": done}), 200 if done["replayed"] else 201
