"""Admin API for outgoing events (endpoints, the delivery log, replay) and for points expiry settings.

Routes join the admin blueprint (/api/admin/...), behind its session-token check; docs/events.md explains them.
"""

from __future__ import annotations

from flask import Response, g, jsonify, request
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from plugin.db import transaction
from plugin.programme.text import no_control
from plugin.services import event_delivery, event_endpoints, expiry
from plugin.services.outbox import EVENT_TYPES
from plugin.services.schemas import MAX_ID
from plugin.web.admin import _settings, blp

SECURITY = [{"sessionToken": []}]


class EventEndpointRequest(Schema):
    url = fields.String(required=True, metadata={"description": "https:// and publicly routable"})
    event_types = fields.List(
        fields.String(validate=validate.OneOf(sorted(EVENT_TYPES))),
        allow_none=True,
        load_default=None,
        validate=validate.Length(min=1),
        metadata={"description": "the types to receive; null for every type"},
    )
    description = fields.String(allow_none=True, load_default=None, validate=validate.Length(max=200))


class EventEndpointSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, metadata={"description": "webhook, or flow (Shopify Flow triggers)"})
    url = fields.String(required=True)
    event_types = fields.List(fields.String(), allow_none=True)
    description = fields.String(allow_none=True)
    created_at = fields.String(required=True)
    active = fields.Boolean(required=True)
    disabled_at = fields.String(allow_none=True)
    disabled_reason = fields.String(allow_none=True, metadata={"description": "why it stopped (410, 3 days failing)"})
    failing_since = fields.String(allow_none=True)
    last_success_at = fields.String(allow_none=True)


class CreatedEventEndpointSchema(Schema):
    endpoint = fields.Nested(EventEndpointSchema, required=True)
    secret = fields.String(required=True, metadata={"description": "the signing secret, shown this once only"})


class EventEndpointListSchema(Schema):
    endpoints = fields.List(fields.Nested(EventEndpointSchema), required=True)
    notices = fields.List(fields.String(), required=True, metadata={"description": "disabled endpoints, in words"})


class EventDeliveryLogArgs(Schema):
    endpoint_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))  # past BIGINT was a 500
    status = fields.String(validate=validate.OneOf(["pending", "delivered", "gave_up"]))
    event_id = fields.String(validate=[validate.Length(min=1, max=36), no_control])  # NUL was a 500
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class EventDeliverySchema(Schema):
    id = fields.Integer(required=True)
    endpoint_id = fields.Integer(required=True)
    event_id = fields.String(required=True)
    event_type = fields.String(required=True)
    sequence = fields.Integer(required=True)
    occurred_at = fields.String(required=True)
    status = fields.String(required=True)
    attempts = fields.Integer(required=True)
    last_status = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.String(allow_none=True)
    delivered_at = fields.String(allow_none=True)


class EventDeliveryLogSchema(Schema):
    deliveries = fields.List(fields.Nested(EventDeliverySchema), required=True)


class EventReplayRequest(Schema):
    event_id = fields.String(validate=[validate.Length(min=1, max=36), no_control])  # NUL was a 500
    since = fields.AwareDateTime(metadata={"description": "with until: every event recorded in [since, until)"})
    until = fields.AwareDateTime()
    endpoint_id = fields.Integer(
        validate=validate.Range(min=1, max=MAX_ID), metadata={"description": "default: every endpoint"}
    )

    @validates_schema
    def _one_target(self, data, **_):
        if "event_id" in data and ("since" in data or "until" in data):
            raise ValidationError("give event_id, or since and until, not both", "event_id")
        if "event_id" not in data and ("since" not in data or "until" not in data):
            raise ValidationError("give event_id, or both since and until", "since")
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ValidationError("must be after since", "until")


class EventReplaySchema(Schema):
    queued = fields.Integer(required=True, metadata={"description": "deliveries queued again"})


def notices(endpoints) -> list[str]:
    return [f"{e.url} is disabled: {e.disabled_reason}" for e in endpoints if e.disabled_at is not None]


@blp.route("/events/endpoints", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200, EventEndpointListSchema)
def endpoints_list() -> Response:
    """The shop's event endpoints (never their secrets), with a notice for each disabled one."""
    with transaction(_settings().database_url) as db:
        rows = event_endpoints.endpoints(db, g.admin_shop_id)
        return jsonify({"endpoints": [event_endpoints.to_json(e) for e in rows], "notices": notices(rows)})


@blp.route("/events/endpoints", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(EventEndpointRequest)
@blp.response(201, CreatedEventEndpointSchema)
def endpoints_add(body: dict) -> Response:
    """Register an endpoint: https only, never a private address. The answer carries its secret, once."""
    settings = _settings()
    with transaction(settings.database_url) as db:
        endpoint, secret = event_endpoints.register(
            db,
            g.admin_shop_id,
            body["url"],
            settings.encryption_keys,
            event_types=body["event_types"],
            description=body["description"],
            allow_loopback=settings.events_allow_loopback,
        )
        response = jsonify({"endpoint": event_endpoints.to_json(endpoint), "secret": secret})
    response.status_code = 201
    return response


@blp.route("/events/endpoints/<int:endpoint_id>/enable", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, EventEndpointSchema)
def endpoints_enable(endpoint_id: int) -> Response:
    """Turn a disabled endpoint back on; deliveries waiting for it resume."""
    with transaction(_settings().database_url) as db:
        return jsonify(event_endpoints.to_json(event_endpoints.enable(db, g.admin_shop_id, endpoint_id)))


@blp.route("/events/endpoints/<int:endpoint_id>/disable", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, EventEndpointSchema)
def endpoints_disable(endpoint_id: int) -> Response:
    """Stop sending to an endpoint; its deliveries wait until it is enabled."""
    with transaction(_settings().database_url) as db:
        endpoint = event_endpoints.get(db, g.admin_shop_id, endpoint_id, lock=True)
        event_endpoints.disable(db, endpoint, "disabled by the merchant")
        return jsonify(event_endpoints.to_json(endpoint))


@blp.route("/events/endpoints/<int:endpoint_id>", methods=["DELETE"])
@blp.doc(security=SECURITY)
@blp.response(204)
def endpoints_delete(endpoint_id: int) -> Response:
    """Remove an endpoint (its delivery log stays)."""
    with transaction(_settings().database_url) as db:
        event_endpoints.delete(db, g.admin_shop_id, endpoint_id)
    return Response(status=204)


@blp.route("/events/flow", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, EventEndpointSchema)
def flow_enable() -> Response:
    """Send the shop's events to Shopify Flow too (a Flow "endpoint"; disable it like any endpoint)."""
    settings = _settings()
    with transaction(settings.database_url) as db:
        return jsonify(
            event_endpoints.to_json(event_endpoints.enable_flow(db, g.admin_shop_id, settings.encryption_keys))
        )


@blp.route("/events/deliveries", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.arguments(EventDeliveryLogArgs, location="query")
@blp.response(200, EventDeliveryLogSchema)
def deliveries_log(args: dict) -> Response:
    """The delivery log, newest first: each event's status per endpoint, attempts and the receiver's answer."""
    with transaction(_settings().database_url) as db:
        return jsonify({"deliveries": event_delivery.delivery_log(db, g.admin_shop_id, **args)})


@blp.route("/events/replay", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.arguments(EventReplayRequest)
@blp.response(200, EventReplaySchema)
def events_replay(body: dict) -> Response:
    """Send again one event (event_id) or every event of a time range, with the same event ids."""
    with transaction(_settings().database_url) as db:
        return jsonify({"queued": event_delivery.replay(db, g.admin_shop_id, **body)})


class ExpirySettingsSchema(Schema):
    policy = fields.String(required=True, metadata={"description": "off, per_lot or inactivity"})
    months = fields.Integer(allow_none=True, metadata={"description": "1 to 120; required unless off"})
    reminder_days = fields.List(fields.Integer(), required=True, metadata={"description": "days before, at most 5"})


@blp.route("/expiry", methods=["GET"])
@blp.doc(security=SECURITY)
@blp.response(200, ExpirySettingsSchema)
def expiry_get() -> Response:
    """The shop's points expiry (off by default)."""
    with transaction(_settings().database_url) as db:
        return jsonify(expiry.policy_json(expiry.policy_of(db, g.admin_shop_id)))


@blp.route("/expiry", methods=["PUT"])
@blp.doc(security=SECURITY)
@blp.response(200, ExpirySettingsSchema)
def expiry_put() -> Response:
    """Set the expiry policy; contradictory settings are refused with a message on the field they break."""
    body = request.get_json(silent=True)
    with transaction(_settings().database_url) as db:
        return jsonify(expiry.policy_json(expiry.save_policy(db, g.admin_shop_id, body)))
