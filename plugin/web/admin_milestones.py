"""Admin API for milestones and engagement: the programme (thresholds, punch cards, signup, birthday, actions).

Routes join the admin blueprint (/api/admin/...), behind its session-token check.
"""

from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields

from plugin.db import transaction
from plugin.models import Shop
from plugin.programme.milestone_settings import MilestoneSettingsSchema
from plugin.services.errors import ServiceError
from plugin.services.milestones import action_keys, surveys
from plugin.services.milestones import settings as milestone_settings
from plugin.web.admin import _Refused, _settings, _staff_shop_id, blp


class MilestoneProgrammeSchema(MilestoneSettingsSchema):
    version = fields.Integer(required=True, metadata={"description": "0 before the first save"})


def _body():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise _Refused(400, "invalid_json", "the body must be a JSON object")
    return body


@blp.route("/milestones")
class MilestonesResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, MilestoneProgrammeSchema)
    def get(self):
        """The shop's milestone programme: thresholds, punch cards, signup and birthday bonuses, custom actions."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(milestone_settings.current(db, shop_id))

    @blp.doc(
        security=[{"sessionToken": []}],
        requestBody={"content": {"application/json": {"schema": MilestoneSettingsSchema}}},
    )
    @blp.response(200, MilestoneProgrammeSchema)
    def put(self):
        """Save the whole programme as a new version; a refusal names each bad field (422)."""
        shop_id = _staff_shop_id()
        body = _body()
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(milestone_settings.save(db, db.get(Shop, shop_id), body, "admin"))
            except ValidationError as error:
                raise _Refused(
                    422, "invalid_milestones", "some milestone settings are not valid", error.messages
                ) from None


class ActionKeySchema(Schema):
    key_id = fields.String(required=True)
    name = fields.String(required=True)
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    revoked_at = fields.String(allow_none=True, metadata={"format": "date-time"})
    secret = fields.String(metadata={"description": "only in the answer to its creation: store it then"})


class ActionKeyListSchema(Schema):
    keys = fields.List(fields.Nested(ActionKeySchema), required=True)


class ActionKeyInSchema(Schema):
    name = fields.String(required=True, metadata={"description": "who uses it: 'reviews app'"})


@blp.route("/action-keys")
class ActionKeysResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, ActionKeyListSchema)
    def get(self):
        """The shop's keys for the signed action endpoint (never their secrets)."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify({"keys": action_keys.listed(db, shop_id)})

    @blp.doc(
        security=[{"sessionToken": []}],
        requestBody={"content": {"application/json": {"schema": ActionKeyInSchema}}},
    )
    @blp.response(201, ActionKeySchema)
    def post(self):
        """A new key; its secret is in this answer only."""
        shop_id = _staff_shop_id()
        body = _body()
        with transaction(_settings().database_url) as db:
            try:
                created = action_keys.create(db, shop_id, body.get("name"), _settings().encryption_keys)
            except ServiceError as error:
                raise _Refused(error.status, error.code, str(error), error.fields) from None
        return jsonify(created), 201


@blp.route("/action-keys/<string:key_id>")
class ActionKeyResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, ActionKeySchema)
    def delete(self, key_id: str):
        """Revoke a key: calls signed with it are refused from now on (401)."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            try:
                return jsonify(action_keys.revoke(db, shop_id, key_id))
            except ServiceError as error:
                raise _Refused(error.status, error.code, str(error), error.fields) from None


class SurveyAnswersSchema(Schema):
    answers = fields.List(fields.Dict(), required=True)
    nps = fields.Dict(
        required=True, metadata={"description": "per 0-10 question: answers, promoters, detractors, score"}
    )


@blp.route("/surveys/<string:survey_id>/answers")
class SurveyAnswersResource(MethodView):
    @blp.doc(security=[{"sessionToken": []}])
    @blp.response(200, SurveyAnswersSchema)
    def get(self, survey_id: str):
        """A survey's latest answers (up to 200) and, per 0-10 question, its Net Promoter Score."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as db:
            return jsonify(surveys.summary(db, shop_id, survey_id))
