"""App Proxy endpoints for milestones: progress and actions (GET /proxy/milestones), the birthday form, actions."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from plugin import jobs
from plugin.db import transaction
from plugin.programme.text import has_control
from plugin.services import shops
from plugin.services.errors import Invalid, ServiceError
from plugin.services.milestones import actions, birthdays
from plugin.services.milestones import widget as milestone_widget
from plugin.web.errors import json_error
from storefront_widget.proxy import NO_REDIRECT, _caller, _Refused, _settings, _shop

bp = Blueprint("storefront_milestones", __name__, url_prefix="/proxy")


@bp.errorhandler(_Refused)
def _refused(error: _Refused) -> Response:
    return error.response


@bp.errorhandler(ServiceError)
def _service_error(error: ServiceError) -> Response:
    seconds = getattr(error, "retry_after_seconds", None)
    headers = {"Retry-After": str(max(seconds, 1))} if seconds else None
    return json_error(error.status, error.code, str(error), headers, error.fields)


def _member_id(session, shop, customer_id: int | None) -> int:
    if customer_id is None:
        raise _Refused(401, "not_signed_in", "sign in to take part")
    member = shops.member(session, shop, customer_id)
    if member is None:
        raise _Refused(409, "not_a_member", "you are not a member of this programme yet")
    return member.id


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Invalid("the body must be a JSON object", {"_schema": ["a JSON object"]})
    return body


@bp.get("/milestones", **NO_REDIRECT)
def progress() -> Response:
    """Progress to the next threshold, punches, the birthday form's state and the actions, for this shopper."""
    caller = _caller()
    with transaction(_settings().database_url) as session:
        shop = _shop(session, caller.shop_domain)
        member = shops.member(session, shop, caller.customer_id) if caller.customer_id else None
        return jsonify(milestone_widget.view(session, shop, member.id if member else None))


@bp.post("/birthday", **NO_REDIRECT)
def birthday() -> Response:
    """The shopper gives (or, once a year, changes) their birthday's month and day."""
    caller = _caller()
    body = _body()
    with transaction(_settings().database_url) as session:
        shop = _shop(session, caller.shop_domain)
        member_id = _member_id(session, shop, caller.customer_id)
        row = birthdays.give(session, shop.id, member_id, body.get("month"), body.get("day"), "widget")
        return jsonify({"birthday": birthdays.describe(row)})


@bp.post("/actions/<string:action_id>", **NO_REDIRECT)
def complete(action_id: str) -> tuple[Response, int]:
    """The shopper completes a follow, visit or survey action; `idempotency_key` makes a retry post nothing."""
    caller = _caller()
    body = _body()
    key = body.get("idempotency_key")
    if not isinstance(key, str) or not 1 <= len(key) <= 100 or has_control(key):  # NUL: a 500 at the column
        raise Invalid(
            "an idempotency key is needed", {"idempotency_key": ["1 to 100 characters, none a control character"]}
        )
    with transaction(_settings().database_url) as session:
        shop = _shop(session, caller.shop_domain)
        member_id = _member_id(session, shop, caller.customer_id)
        # Keys are per shopper, so one shopper's key can never collide with another's.
        done = actions.complete(
            session, shop, member_id, action_id[:40], f"widget:{caller.customer_id}:{key}", channel="widget",
            answers=body.get("answers"),
        )  # fmt: skip
    if not done["replayed"]:
        jobs.signal_balances(_settings())
    return jsonify({"completion": done}), 200 if done["replayed"] else 201
