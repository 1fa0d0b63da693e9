"""JSON error responses: {"error": {"code", "message", "fields"?}} for every failure the app returns."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.services import redemption
from plugin.services.errors import Invalid, ServiceError, summary
from plugin.services.schemas import MAX_ID


def json_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, fields: dict | None = None
) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    response = jsonify({"error": error})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _argument_fields(error: HTTPException) -> dict | None:
    """webargs' per-location messages ({"json": {...}, "query": {...}}) as one {field: [messages]} map."""
    messages = (getattr(error, "data", None) or {}).get("messages")
    if not isinstance(messages, dict):
        return None
    merged: dict[str, Any] = {}
    for per_location in messages.values():
        if isinstance(per_location, dict):
            merged.update(per_location)
        else:
            merged.setdefault("_schema", []).extend(per_location if isinstance(per_location, list) else [per_location])
    return merged


def refuse_ids_beyond_bigint() -> None:
    """Ids in a path are BIGINT in the database: a larger one is bad input (400), not a crash."""
    for name, value in (request.view_args or {}).items():
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_ID:
            raise Invalid(f"{name}: must be from 1 to {MAX_ID}", {name: [f"must be from 1 to {MAX_ID}"]})


def register(app: Flask) -> None:
    app.before_request(refuse_ids_beyond_bigint)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_")
        # Keep what the exception says about itself: a 405's Allow, a 401's WWW-Authenticate.
        headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        fields = _argument_fields(error)
        if fields is not None:
            return json_error(error.code or 400, "invalid_request", summary(fields), headers, fields)
        return json_error(error.code or 500, code, error.description or error.name, headers)

    @app.errorhandler(ServiceError)
    def _service_error(error: ServiceError) -> Response:
        return json_error(error.status, error.code, str(error), fields=error.fields)

    @app.errorhandler(redemption.RedemptionError)
    def _redemption_error(error: redemption.RedemptionError) -> Response:
        return json_error(409, error.code, str(error))

    @app.errorhandler(AdminAPIUnavailable)
    def _shop_unavailable(error: AdminAPIUnavailable) -> Response:
        message = f"the shop's Admin API did not answer: {error}"
        return json_error(503, "shop_unavailable", message, {"Retry-After": "30"})

    @app.errorhandler(AdminAPIError)
    def _shop_refused(error: AdminAPIError) -> Response:
        return json_error(502, "shop_refused", f"the shop's Admin API refused: {error}")
