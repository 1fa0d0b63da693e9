"""Admin API for the programme's reports: liability, breakage, journal (JSON or GL CSV), KPIs, and the point value.

Routes join the admin blueprint (/api/admin/reports/...), behind its session-token check; every refusal is a 400
with a message per field (services/errors.py).
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, request
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from plugin.db import transaction
from plugin.models import Shop
from plugin.services import reports
from plugin.web.admin import _settings, _staff_shop_id, blp

SECURITY = [{"sessionToken": []}]


class ReportArgs(reports.ReportQuerySchema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class ReportSchema(Schema):
    shop = fields.String(required=True)
    currency = fields.String(allow_none=True)
    period = fields.Dict(required=True, metadata={"description": "start, end (shop-local dates), time_zone"})


class LiabilitySchema(ReportSchema):
    point_value = fields.String(required=True)
    point_value_source = fields.String(required=True, metadata={"description": "query, merchant, redemptions, ..."})
    opening = fields.Dict(required=True)
    issued = fields.Dict(required=True)
    lines = fields.List(fields.Dict(), required=True)
    closing = fields.Dict(required=True)
    pending = fields.Dict(required=True)
    tie_out = fields.Dict(required=True)


class BreakageSchema(ReportSchema):
    point_value = fields.String(required=True)
    point_value_source = fields.String(required=True)
    breakage_12 = fields.String(allow_none=True)
    breakage_24 = fields.String(allow_none=True)
    expected_breakage = fields.String(required=True)
    basis = fields.String(required=True)
    outstanding_points = fields.Integer(required=True)
    contract_liability = fields.String(required=True)
    cohorts = fields.List(fields.Dict(), required=True)


class JournalSchema(ReportSchema):
    point_value = fields.String(required=True)
    point_value_source = fields.String(required=True)
    expected_breakage = fields.String(required=True)
    lines = fields.List(fields.Dict(), required=True, metadata={"description": "date, account, debit, credit, memo"})


class KpisSchema(ReportSchema):
    totals = fields.Dict(required=True)
    months = fields.List(fields.Dict(), required=True)
    tiers = fields.Dict(required=True, metadata={"description": "members per tier now, and moves in the period"})
    referrals = fields.Dict(required=True, metadata={"description": "the referral funnel in the period"})


def _run(report, args: dict[str, Any]) -> dict[str, Any]:
    query = {key: value for key, value in args.items() if key != "format"}
    with transaction(_settings().database_url) as db:
        return report(db, db.get(Shop, _staff_shop_id()), query)


def _csv(text: str, name: str) -> Response:
    return Response(text, mimetype="text/csv", headers={"Content-Disposition": f"attachment; filename={name}.csv"})


@blp.route("/reports/liability")
class LiabilityResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(ReportArgs, location="query", error_status_code=400)
    @blp.response(200, LiabilitySchema)
    def get(self, args):
        """The liability roll-forward: opening, issued by source, reversed, redeemed, expired, forgiven, closing."""
        result = _run(reports.liability, args)
        if args["format"] == "csv":
            rows = [{"line": "opening", "label": "Opening", **result["opening"]}, *result["lines"]]
            rows += [{"line": "closing", "label": "Closing", **result["closing"]}]
            rows += [{"line": "pending", "label": "Of which pending", **result["pending"]}]
            return _csv(reports.to_csv(rows, ("line", "label", "points", "money")), "liability")
        return jsonify(result)


@blp.route("/reports/breakage")
class BreakageResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(ReportArgs, location="query", error_status_code=400)
    @blp.response(200, BreakageSchema)
    def get(self, args):
        """Breakage cohorts (12 and 24 months) and the contract liability (deferred revenue) at the period's end."""
        result = _run(reports.breakage, args)
        if args["format"] == "csv":
            columns = ("month", "issued", "redeemed_12", "redeemed_24", "breakage_12", "breakage_24")
            return _csv(reports.to_csv(result["cohorts"], columns), "breakage-cohorts")
        return jsonify(result)


@blp.route("/reports/journal")
class JournalResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(ReportArgs, location="query", error_status_code=400)
    @blp.response(200, JournalSchema)
    def get(self, args):
        """The monthly journal; ?format=csv for the general-ledger layout (date, account, debit, credit, memo)."""
        result = _run(reports.journal, args)
        if args["format"] == "csv":
            return _csv(reports.to_csv(result["lines"], reports.JOURNAL_COLUMNS), "loyalty-journal")
        return jsonify(result)


@blp.route("/reports/kpis")
class KpisResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.arguments(ReportArgs, location="query", error_status_code=400)
    @blp.response(200, KpisSchema)
    def get(self, args):
        """The programme's figures for the period and month by month (docs/reports.md defines each)."""
        result = _run(reports.kpis, args)
        if args["format"] == "csv":
            return _csv(reports.to_csv(result["months"], reports.KPI_COLUMNS), "loyalty-kpis")
        return jsonify(result)


@blp.route("/reports/settings")
class ReportSettingsResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, reports.ReportSettingsSchema)
    def get(self):
        """The merchant's point value for reports (null: implied by the rewards redeemed)."""
        with transaction(_settings().database_url) as db:
            return jsonify(reports.settings_of(db, db.get(Shop, _staff_shop_id())))

    @blp.doc(security=SECURITY)
    @blp.response(200, reports.ReportSettingsSchema)
    def put(self):
        """Set the point value (a positive decimal) or null; anything else is a 400 with a message."""
        with transaction(_settings().database_url) as db:
            return jsonify(reports.save_settings(db, db.get(Shop, _staff_shop_id()), request.get_json(silent=True)))
