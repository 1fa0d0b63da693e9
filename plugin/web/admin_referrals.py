"""Admin API for referrals: settings, the referrals support reviews (blocked ones with reasons), approval, figures.

Routes join the admin blueprint (/api/admin/...), behind its session-token check.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate

from plugin.db import transaction
from plugin.models import Shop
from plugin.programme import referrals as rules
from plugin.programme.text import no_control
from plugin.services import referrals
from plugin.web.admin import _Refused, _settings, _staff_shop_id, blp

REASON_MAX = 500
# The figures' 200 as JSON (ReferralStats) or, with ?format=csv, as CSV.
STATS_CSV_TOO = {
    "200": {
        "description": "JSON; text/csv with ?format=csv",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ReferralStats"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


class ReferralSettingsEnvelopeSchema(Schema):
    version = fields.Integer(required=True)
    settings = fields.Nested(rules.ReferralSettingsSchema, required=True)
    reasons = fields.Dict(required=True, metadata={"description": "each block reason's code and sentence"})


class ReferralSchema(Schema):
    order_id = fields.Integer(required=True)
    advocate_member_id = fields.Integer(required=True)
    friend_member_id = fields.Integer(allow_none=True)
    matched_by = fields.String(required=True, metadata={"description": "friend_code or cookie"})
    ordered_at = fields.String(required=True, metadata={"format": "date-time"})
    status = fields.String(required=True, validate=validate.OneOf(rules.STATUSES))
    block_reason = fields.String(allow_none=True, validate=validate.OneOf(tuple(rules.REASONS)))
    block_explanation = fields.String(allow_none=True)
    points_held = fields.Integer(required=True)
    points_owed = fields.Integer(required=True)
    available_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    approved_by = fields.String(allow_none=True)
    approved_reason = fields.String(allow_none=True)
    approved_at = fields.String(allow_none=True, metadata={"format": "date-time"})


class ReferralListSchema(Schema):
    referrals = fields.List(fields.Nested(ReferralSchema), required=True)


class ReferralListArgs(Schema):
    status = fields.String(validate=validate.OneOf(rules.STATUSES))
    advocate_member_id = fields.Integer(validate=validate.Range(1, 2**63 - 1))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))


class ApproveSchema(Schema):
    # NUL reached the reason's text column and was a 500.
    reason = fields.String(required=True, validate=[validate.Length(min=3, max=REASON_MAX), no_control])


class ReferralStatsArgs(Schema):
    by = fields.String(load_default="shop", validate=validate.OneOf(("shop", "advocate")))
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))
    advocate_member_id = fields.Integer(validate=validate.Range(1, 2**63 - 1))


class ReferralStatsSchema(Schema):
    shop = fields.Dict(metadata={"description": "the shop's totals (by=shop)"})
    advocates = fields.List(fields.Dict(), metadata={"description": "one row per advocate (by=advocate)"})


@blp.route("/referrals/settings")
class ReferralSettingsResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, ReferralSettingsEnvelopeSchema)
    def get(self):
        """The referral programme: on or off, the advocate's points, the friend's reward, each fraud guard."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(_envelope(db, shop_id))

    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, ReferralSettingsEnvelopeSchema)
    def put(self):
        """Change some settings (absent keys keep their values); refused field by field, saving nothing."""
        shop_id = _staff_shop_id()
        body = request.get_json(silent=True)
        with transaction(_settings().database_url) as db:
            try:
                referrals.update_settings(db, db.get(Shop, shop_id), body, "admin")
            except ValidationError as error:
                raise _Refused(422, "invalid_settings", "some settings are not valid", error.messages) from None
            return jsonify(_envelope(db, shop_id))


def _envelope(db, shop_id: int) -> dict[str, Any]:
    row = referrals.settings_row(db, shop_id)
    return {"version": row.version, "settings": rules.read_settings(row.settings).to_json(), "reasons": rules.REASONS}


@blp.route("/referrals")
class ReferralListResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.arguments(ReferralListArgs, location="query")
    @blp.response(200, ReferralListSchema)
    def get(self, args: dict[str, Any]):
        """Referrals, newest first; `status=blocked` lists what support reviews, each with its reason."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            found = referrals.listed(db, shop_id, args.get("status"), args.get("advocate_member_id"), args["limit"])
            return jsonify({"referrals": found})


@blp.route("/referrals/<int:order_id>/approve")
class ReferralApproveResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.arguments(ApproveSchema)
    @blp.response(200, ReferralSchema)
    def post(self, body: dict[str, Any], order_id: int):
        """Approve a blocked referral, with a reason (kept with who and when); approving it again changes nothing."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            try:
                row = referrals.approve(db, db.get(Shop, shop_id), order_id, "admin", body["reason"].strip())
            except LookupError as error:
                raise _Refused(404, "not_found", str(error)) from None
            except ValueError as error:
                raise _Refused(409, "not_blocked", str(error)) from None
            return jsonify(referrals.describe(row))


@blp.route("/referrals/stats")
class ReferralStatsResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.arguments(ReferralStatsArgs, location="query")
    @blp.response(200, ReferralStatsSchema, description="JSON; text/csv with ?format=csv")
    @blp.doc(responses=STATS_CSV_TOO)
    def get(self, args: dict[str, Any]):
        """Links opened, friend codes issued, first orders, rewards given and blocked per reason (JSON or CSV)."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            if args["by"] == "advocate":
                rows = referrals.by_advocate(db, shop_id, args.get("advocate_member_id"))
                if args["format"] == "csv":
                    return _csv(referrals.to_csv(rows, referrals.stats.COLUMNS), "referrals-by-advocate.csv")
                return jsonify({"advocates": rows})
            totals = referrals.for_shop(db, shop_id)
            if args["format"] == "csv":
                return _csv(referrals.to_csv([totals]), "referrals.csv")
            return jsonify({"shop": totals})


def _csv(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'})
