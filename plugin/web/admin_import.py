"""The embedded admin's imports: /api/admin/imports, upload a CSV export of another app, check, import, undo."""

from __future__ import annotations

from flask import Response, jsonify, request, stream_with_context
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import INCLUDE, Schema, fields, validate

from plugin.db import transaction
from plugin.models import Shop
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.platforms.shopify import session as shopify_session
from plugin.programme.import_formats import LAYOUTS
from plugin.services.imports import batches, matching
from plugin.web.admin import _Refused, _settings, _staff_shop_id
from plugin.web.apis import JSONBodyParser

MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # 200,000 rows of a wide export take about 20 MB
SECURITY = [{"sessionToken": []}]

blp = Blueprint("admin_import", __name__, url_prefix="/api/admin/imports", description="Import from another app")
blp.ARGUMENTS_PARSER = JSONBodyParser()  # a body nested too deep or with a lone surrogate is a 400, not a 500


class UploadSchema(Schema):
    source = fields.String(required=True, validate=validate.OneOf(sorted(LAYOUTS)))
    dry_run = fields.Boolean(load_default=True, metadata={"description": "only check (the default)"})


class FileSchema(Schema):
    file = fields.Raw(required=True, metadata={"type": "string", "format": "binary"})


class ImportUndoSchema(Schema):
    reason = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class ImportReportSchema(Schema):
    """One import's progress, counts, points and largest balances (docs/importing.md lists every field)."""

    class Meta:
        unknown = INCLUDE  # a dry run says `unmatched` where an import says `pending`; further counts may be added

    id = fields.Integer(required=True)
    source = fields.String(required=True)
    dry_run = fields.Boolean(required=True)
    status = fields.String(required=True)
    rows = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    invalid = fields.Integer(required=True)


class ImportListSchema(Schema):
    imports = fields.List(fields.Nested(ImportReportSchema), required=True)


class MatchReportSchema(Schema):
    asked = fields.Integer(required=True)
    matched = fields.Integer(required=True)
    points = fields.Integer(required=True)
    calls = fields.Integer(required=True)


@blp.errorhandler(_Refused)
def _refused(error: _Refused) -> Response:
    return error.response


@blp.errorhandler(batches.ImportRefused)
def _import_refused(error: batches.ImportRefused) -> Response:
    return _Refused(error.status, error.code, str(error)).response


@blp.errorhandler(413)
def _too_large(_error) -> Response:
    return _Refused(413, "file_too_large", f"files up to {MAX_UPLOAD_BYTES // (1024 * 1024)} MB").response


@blp.errorhandler(422)
def _unprocessable(error) -> Response:
    messages = (getattr(error, "data", None) or {}).get("messages", {})
    flat = {name: problems for where in messages.values() for name, problems in where.items()}
    return _Refused(422, "invalid_request", "some fields are not valid", flat).response


@blp.before_request
def _authenticate() -> Response | None:
    # Before the body is read: a large upload needs a valid session token first, and then may be large.
    try:
        _staff_shop_id()
    except _Refused as refused:
        return refused.response
    request.max_content_length = MAX_UPLOAD_BYTES
    return None


def _actor() -> str:
    settings = _settings()
    token = request.headers.get("Authorization", "")[len("Bearer ") :]
    return f"staff:{shopify_session.verify(token, settings.shopify_api_key, settings.webhook_secrets).user_id}"


def _report(shop_id: int, batch_id: int) -> dict:
    with transaction(_settings().database_url) as session:
        return batches.report(session, session.get(Shop, shop_id), batches.get(session, shop_id, batch_id))


@blp.route("")
class Imports(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, ImportListSchema)
    def get(self):
        """The shop's import batches, newest first."""
        shop_id = _staff_shop_id()
        with transaction(_settings().database_url) as session:
            return jsonify({"imports": batches.listing(session, shop_id)})

    @blp.doc(security=SECURITY)
    @blp.response(201, ImportReportSchema)
    @blp.alt_response(200, schema=ImportReportSchema, description="the same file again: the batch it resumed")
    @blp.arguments(UploadSchema, location="form")
    @blp.arguments(FileSchema, location="files")
    def post(self, form, upload):
        """Upload a CSV export: a dry run by default; `dry_run=false` imports. The same file again resumes it."""
        shop_id = _staff_shop_id()
        stored = upload["file"]
        try:
            outcome = batches.run(
                _settings().database_url,
                shop_id,
                stored.stream,
                source=form["source"],
                filename=stored.filename or "upload.csv",
                dry_run=form["dry_run"],
                actor=_actor(),
            )
        finally:
            stored.close()  # a large upload is a temporary file: gone as soon as it is read
        response = jsonify({"resumed": outcome.resumed, **_report(shop_id, outcome.batch_id)})
        response.status_code = 200 if outcome.resumed else 201
        return response


@blp.route("/<int:batch_id>")
class ImportBatchResource(MethodView):
    @blp.doc(security=SECURITY)
    @blp.response(200, ImportReportSchema)
    def get(self, batch_id: int):
        """One batch: progress, counts, points and money value, the ten largest balances."""
        return jsonify(_report(_staff_shop_id(), batch_id))


@blp.route("/<int:batch_id>/errors", methods=["GET"])
@blp.doc(
    security=SECURITY,
    responses={
        "200": {
            "description": "line,reason for every invalid row",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    },
)
def import_errors(batch_id: int) -> Response:
    """The per-row error file, CSV (line, reason), formulas neutralised."""
    shop_id = _staff_shop_id()

    def generate():
        with transaction(_settings().database_url) as session:
            yield from batches.error_file(session, shop_id, batch_id)

    with transaction(_settings().database_url) as session:
        batches.get(session, shop_id, batch_id)  # a 404 before the stream starts
    return Response(
        stream_with_context(generate()),
        mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename=import-{batch_id}-errors.csv"},
    )


@blp.route("/<int:batch_id>/undo", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, ImportReportSchema)
@blp.arguments(ImportUndoSchema)
def import_undo(body: dict, batch_id: int) -> Response:
    """Reverse the batch's opening balances (audited: who, when, why) and cancel its pending rows."""
    shop_id = _staff_shop_id()
    taken = batches.undo(_settings().database_url, shop_id, batch_id, _actor(), body["reason"])
    return jsonify({"points_taken_back": taken, **_report(shop_id, batch_id)})


@blp.route("/<int:batch_id>/match", methods=["POST"])
@blp.doc(security=SECURITY)
@blp.response(200, MatchReportSchema)
def import_match(batch_id: int) -> Response:
    """Ask the shop about up to 500 pending rows (call again for more); customers found get their balance."""
    shop_id = _staff_shop_id()
    with transaction(_settings().database_url) as session:
        batches.get(session, shop_id, batch_id)
    try:
        report = matching.match(_settings(), shop_id, batch_id, limit=500)
    except (AdminAPIError, AdminAPIUnavailable, RuntimeError) as error:
        raise _Refused(503, "shop_unavailable", f"the shop could not be asked: {error}") from None
    return jsonify(report.to_json())
