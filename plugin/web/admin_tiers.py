"""Admin API for VIP tiers: the programme with member counts, its versions, saving one, the "who moves" preview,
and a member's tier with the history of their moves.

Routes join the admin blueprint (/api/admin/...), behind its session-token check.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import select

from plugin import jobs
from plugin.db import transaction
from plugin.models import Member, Shop
from plugin.services import tier_preview, tier_sets, tiers
from plugin.services.errors import Invalid
from plugin.web.admin import _Refused, _settings, _staff_shop_id, blp


class TierProgrammeSchema(Schema):
    version = fields.Integer(required=True, metadata={"description": "0 before the first save"})
    metric = fields.String(required=True, metadata={"description": "points, spend or orders"})
    period = fields.String(required=True, metadata={"description": "lifetime, calendar_year or rolling_12_months"})
    grace_days = fields.Integer(required=True)
    free_shipping_on_leave = fields.String(metadata={"description": "deactivate (default) or keep"})
    tiers = fields.List(fields.Dict(), required=True, metadata={"description": "see docs/tiers.md; with `members`"})
    paid = fields.Dict(allow_none=True, metadata={"description": "the paid membership, or null"})
    members_without_tier = fields.Integer(required=True)


class TierPreviewSchema(Schema):
    complete = fields.Boolean(required=True)
    members = fields.Integer(required=True)
    members_computed = fields.Integer(required=True)
    tiers = fields.List(fields.Dict(), required=True, metadata={"description": "now, after, up, down, unchanged"})
    moves = fields.List(fields.Dict(), required=True)


class TierVersionsSchema(Schema):
    versions = fields.List(fields.Dict(), required=True, metadata={"description": "every saved version, newest first"})


class MemberTierSchema(Schema):
    customer_id = fields.Integer(required=True)
    tier = fields.String(allow_none=True)
    tier_until = fields.String(allow_none=True)
    paid_until = fields.String(allow_none=True)
    history = fields.List(fields.Dict(), required=True, metadata={"description": "newest first, with the reason"})


def _body() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Refused(400, "invalid_json", "the body must be a JSON object")
    return body


def _refused(error: Invalid) -> _Refused:
    return _Refused(422, "invalid_tiers", str(error), error.fields)


@blp.route("/tiers")
class TiersResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, TierProgrammeSchema)
    def get(self):
        """The shop's tier programme, each tier with its member count."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(tier_sets.with_counts(db, db.get(Shop, shop_id)))

    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, TierProgrammeSchema)
    def put(self):
        """Save the programme as a new version, then move members to it in the background (nothing pauses)."""
        shop_id = _staff_shop_id()
        body = _body()
        settings = _settings()
        with transaction(settings.database_url) as db:
            try:
                tier_sets.save(db, db.get(Shop, shop_id), body, "admin")
            except Invalid as error:
                raise _refused(error) from None
        jobs.tasks.enqueue_apply_tiers(settings, shop_id)
        with transaction(settings.database_url) as db:
            return jsonify(tier_sets.with_counts(db, db.get(Shop, shop_id)))


@blp.route("/tiers/preview")
class TiersPreviewResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, TierPreviewSchema)
    def post(self):
        """Who moves: members up, down and unchanged per tier if `tiers` (a programme) were saved now."""
        shop_id = _staff_shop_id()
        body = _body()
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(tier_preview.preview(db, db.get(Shop, shop_id), body.get("tiers")))
            except Invalid as error:
                raise _Refused(422, "invalid_tiers", str(error), {"tiers": error.fields}) from None


@blp.route("/tiers/history")
class TiersHistoryResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, TierVersionsSchema)
    def get(self):
        """Every saved version of the tier programme, newest first."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify({"versions": tier_sets.history(db, shop_id)})


@blp.route("/members/<int:customer_id>/tier")
class MemberTierResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, MemberTierSchema)
    def get(self, customer_id: int):
        """A member's tier, the dates it is kept or paid until, and every move with its reason."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(member_tier(db, shop_id, customer_id))


def member_tier(session, shop_id: int, customer_id: int) -> dict[str, Any]:
    member = session.execute(
        select(Member).where(Member.shop_id == shop_id, Member.customer_id == customer_id)
    ).scalar_one_or_none()
    if member is None:
        raise _Refused(404, "not_found", f"no member with customer id {customer_id}")
    return {
        "customer_id": customer_id,
        "tier": member.tier,
        "tier_until": member.tier_until.isoformat() if member.tier_until else None,
        "paid_until": member.tier_paid_until.isoformat() if member.tier_paid_until else None,
        "history": tiers.history(session, shop_id, member.id),
    }
