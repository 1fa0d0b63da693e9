"""Admin API for milestones and engagement: the programme (thresholds, punch cards, signup, birthday, actions).

Routes join the admin blueprint (/api/admin/...), behind its session-token check.
"""

from __future__ import annotations

from flask import jsonify, request
from flask.views import MethodView
from marshmallow import ValidationError, fields

from plugin.db import transaction
from plugin.models import Shop
from plugin.programme.milestone_settings import MilestoneSettingsSchema
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
