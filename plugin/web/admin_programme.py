"""Admin API for the earning rules: the current rule set, its versions, saving a version, and the preview.

Routes join the admin blueprint (/api/admin/...), behind its session-token check.
"""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields

from plugin.db import transaction
from plugin.models import Shop
from plugin.services import preview as previews
from plugin.services import rule_sets, shop_locale
from plugin.web.admin import _Refused, _settings, _staff_shop_id, blp


class RuleSetEnvelopeSchema(Schema):
    version = fields.Integer(required=True)
    time_zone = fields.String(required=True)
    campaign_stack_cap = fields.String(required=True)
    rules = fields.List(fields.Dict(), required=True, metadata={"description": "see docs/earning-rules.md"})


class RuleSetVersionSchema(Schema):
    version = fields.Integer(required=True)
    actor = fields.String(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    rules = fields.Dict(required=True, metadata={"description": "the rule set as saved: see docs/earning-rules.md"})


class RuleSetHistorySchema(Schema):
    versions = fields.List(fields.Nested(RuleSetVersionSchema), required=True)


class PreviewSchema(Schema):
    days = fields.Integer(required=True)
    complete = fields.Boolean(required=True, metadata={"description": "false when the time bound cut it short"})
    orders_replayed = fields.Integer(required=True)
    points_issued = fields.Dict(required=True)
    money_value = fields.Dict(required=True)
    members_affected = fields.Integer(required=True)
    largest_changes = fields.List(fields.Dict(), required=True)


def _body() -> Any:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Refused(400, "invalid_json", "the body must be a JSON object")
    return body


def _invalid(error: ValidationError) -> _Refused:
    return _Refused(422, "invalid_rules", "some rules are not valid", error.messages)


@blp.route("/rules")
class RulesResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, RuleSetEnvelopeSchema)
    def get(self):
        """The shop's earning rules and their version (0 before the first save)."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(rule_sets.current(db.get(Shop, shop_id)))

    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, RuleSetEnvelopeSchema)
    def put(self):
        """Save the rules as a new version. Orders already paid keep what they earned and how it is reversed."""
        shop_id = _staff_shop_id()
        body = _body()
        confirmed = rule_sets.confirm_collections(_settings(), shop_id, body)  # asks the shop: before the transaction
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(rule_sets.save(db, db.get(Shop, shop_id), body, "admin", confirmed))
            except ValidationError as error:
                raise _invalid(error) from None


@blp.route("/rules/history")
class RulesHistoryResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, RuleSetHistorySchema)
    def get(self):
        """Every saved version of the rules, newest first."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify({"versions": rule_sets.history(db, shop_id)})


@blp.route("/rules/preview")
class RulesPreviewResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, PreviewSchema)
    def post(self):
        """Replay the last `days` (default 30) of orders under `rules` and under the current rules; saves nothing."""
        shop_id = _staff_shop_id()
        body = _body()
        days = body.get("days", 30)
        if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= previews.MAX_DAYS:
            raise _Refused(
                422, "invalid_rules", "days is not valid", {"days": [f"a whole number, 1 to {previews.MAX_DAYS}"]}
            )
        confirmed = rule_sets.confirm_collections(_settings(), shop_id, body.get("rules"))
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(
                    previews.preview(db, db.get(Shop, shop_id), body.get("rules"), days, confirmed=confirmed)
                )
            except ValidationError as error:
                raise _Refused(422, "invalid_rules", "some rules are not valid", {"rules": error.messages}) from None


class LocaleSchema(Schema):
    locale = fields.String(required=True, metadata={"description": "the shop's locale, e.g. en, fr or en-GB"})
    language = fields.String(required=True, metadata={"description": "the catalogue language explanations use"})
    languages = fields.List(fields.String(), required=True, metadata={"description": "languages with a catalogue"})


@blp.route("/locale")
class LocaleResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, LocaleSchema)
    def get(self):
        """The language postings' explanations are shown in (widget history, support history and its CSV)."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(shop_locale.describe(db.get(Shop, shop_id)))

    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, LocaleSchema)
    def put(self):
        """Set the shop's locale (`{"locale": "fr"}`); every posting, old or new, then reads in it."""
        shop_id = _staff_shop_id()
        body = _body()
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(shop_locale.set_locale(db, db.get(Shop, shop_id), body.get("locale")))
            except ValidationError as error:
                raise _Refused(422, "invalid_locale", "the locale is not valid", error.messages) from None
