"""flask-smorest, set to the app's rules: our error shape in the documents, 400 for bad arguments, exact numbers."""

from __future__ import annotations

import json
from decimal import Decimal

from flask_smorest import Api, Blueprint
from marshmallow import fields
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.routing import IntegerConverter

from plugin.services.schemas import MAX_ID, ErrorEnvelope
from plugin.web import json_bodies


class DocumentedApi(Api):
    """An OpenAPI document whose error responses are the ones the app sends: {"error": {...}}."""

    ERROR_SCHEMA = ErrorEnvelope

    def init_app(self, app, *, spec_kwargs=None):
        super().init_app(app, spec_kwargs=spec_kwargs)
        # Path ids are BIGINT rows from 1: the document says so, and larger ones are refused with a 400.
        self.register_converter(
            IntegerConverter, lambda _: {"type": "integer", "format": "int64", "minimum": 1, "maximum": MAX_ID}
        )
        self.ma_plugin.converter.add_attribute_function(_decimal_as_string)


def _decimal_as_string(self, field, ret, **_):
    """Money and percentages travel as strings ("1.00"), so they are documented as such, bounds in words.

    apispec would print a Decimal bound as a string ("maximum": "1000000"), which no validator reads as a number.
    """
    if not isinstance(field, fields.Decimal):
        return {}
    bounds = [f"{word} {ret.pop(key)}" for key, word in (("minimum", "at least"), ("maximum", "at most")) if key in ret]
    ret.pop("exclusiveMinimum", None)
    ret.pop("exclusiveMaximum", None)
    ret["type"] = "string"
    ret["pattern"] = r"^-?[0-9]{1,15}(\.[0-9]{1,10})?$"
    for key in ("default", "example"):
        if isinstance(ret.get(key), Decimal):
            ret[key] = str(ret[key])
    if bounds:
        ret["description"] = "a decimal number, " + " and ".join(bounds)
    return {}


class JSONBodyParser(FlaskParser):
    """webargs' parser, reading JSON bodies through json_bodies.loads."""

    def _raw_load_json(self, req):
        """webargs' JSON reading through json_bodies.loads: too deep or a lone surrogate is "Invalid JSON body"."""
        if not is_json_request(req):
            return super()._raw_load_json(req)
        body = req.get_data(cache=True)
        try:
            return json_bodies.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs reads these itself: an empty body is "missing", the others a 400
        except ValueError as error:
            raise json.JSONDecodeError(str(error), body.decode("utf-8", "replace")[:100] or " ", 0) from None


class _Parser(JSONBodyParser):
    DEFAULT_VALIDATION_STATUS = 400  # bad input is a 400 with per-field messages; 422 is kept for settings


class DocumentedBlueprint(Blueprint):
    ARGUMENTS_PARSER = _Parser()
