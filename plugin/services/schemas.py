"""One marshmallow schema per operation, in and out: every door (admin, support API, App Proxy, CLI) uses these."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from plugin.programme.rewards import from_milli
from plugin.services.errors import Invalid, summary

MAX_ID = 2**63 - 1  # ids are BIGINT: anything larger cannot name a row
MAX_POINTS = 1_000_000_000  # one support action moves at most this many points; balances stay far from BIGINT
MAX_NOTE = 1000
MAX_IDEMPOTENCY_KEY = 200  # the width of the idempotency_key columns
REASON_CODES = ("goodwill", "correction", "refund", "fraud", "duplicate", "other")
SCOPES = ("read", "write")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # NUL and friends: PostgreSQL text refuses NUL
_ALLOWED = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
_TEXT = f"^{_ALLOWED}*$"
_TEXT_WITH_A_LETTER = rf"^{_ALLOWED}*[^\s\x00-\x1f\x7f-\x9f]{_ALLOWED}*$"  # not blank once stripped
_ASCII_DIGITS = re.compile(r"[0-9]{1,20}")  # str.isdigit() also passes "²", which int() refuses


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """`schema.load(data)`, with marshmallow's refusal turned into the services' Invalid (per-field messages)."""
    try:
        return schema.load(data if data is not None else {})
    except ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        raise Invalid(summary(messages), messages) from None


class Id(fields.Integer):
    """A row id: a JSON integer, or ASCII digits in a query string, from 1 to 2^63 - 1."""

    default_error_messages: ClassVar[dict[str, str]] = {"invalid": f"must be a whole number from 1 to {MAX_ID}"}

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, validate=validate.Range(1, MAX_ID, error=f"must be from 1 to {MAX_ID}"), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            if not _ASCII_DIGITS.fullmatch(value):
                raise self.make_error("invalid")
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class Text(fields.String):
    """A line of free text: surrounding spaces dropped, control characters (NUL first of all) refused."""

    def __init__(self, *, max_length: int, required_message: str | None = None, **kwargs: Any):
        messages = {"required": required_message} if required_message else {}
        minimum = 1 if required_message else 0
        length = validate.Length(
            minimum, max_length, error=required_message if minimum else f"at most {max_length} characters"
        )
        # The document says what is refused: control characters, and (when required) a blank text.
        pattern = _TEXT_WITH_A_LETTER if minimum else _TEXT
        metadata = {"pattern": pattern, **kwargs.pop("metadata", {})}
        super().__init__(validate=length, error_messages=messages, metadata=metadata, **kwargs)
        self.max_length = max_length

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs).strip()
        if _CONTROL.search(text):
            raise ValidationError("must not contain control characters")
        if len(text) > self.max_length:
            raise ValidationError(f"at most {self.max_length} characters")
        return text


def _reason_code(**kwargs: Any) -> fields.String:
    return fields.String(
        validate=validate.OneOf(REASON_CODES, error=f"must be one of {', '.join(REASON_CODES)}"),
        error_messages={"required": "a reason_code is required"},
        **kwargs,
    )


def _note(**kwargs: Any) -> Text:
    return Text(max_length=MAX_NOTE, required_message="a note is required", **kwargs)


_POINTS_RANGE = f"must be from -{MAX_POINTS} to {MAX_POINTS}"


def _nonzero(points: int) -> None:
    if points == 0:
        raise ValidationError("must not be 0")


class _Strict(Schema):
    class Meta:
        unknown = RAISE  # a misspelt field is refused, never silently ignored


# ------------------------------------------------------------------ requests


class MemberLookupArgs(Schema):
    """GET members: ?email= (exact, any case) or ?customer_id=."""

    email = Text(max_length=320, required_message="give an email, or leave it out")
    customer_id = Id()

    @validates_schema
    def one_of_them(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("email") and data.get("customer_id") is None:
            raise ValidationError("give an email or a customer_id", "customer_id")


class HistoryArgs(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(("json", "csv")))


class ActionsArgs(Schema):
    customer_id = Id()


class AdjustmentRequest(_Strict):
    """Add (positive) or take away (negative) points by hand."""

    points = fields.Integer(
        strict=True,
        required=True,
        validate=[validate.Range(-MAX_POINTS, MAX_POINTS, error=_POINTS_RANGE), _nonzero],
        error_messages={"required": "points are required", "invalid": "must be a whole number"},
        metadata={"not": {"enum": [0]}},
    )
    reason_code = _reason_code(required=True)
    note = _note(required=True)


class ReversalRequest(_Strict):
    """Take back an order's points: all it still holds (points absent or null), or `points` of them."""

    points = fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, MAX_POINTS, error=f"must be from 1 to {MAX_POINTS}"),
        error_messages={"invalid": "must be a whole number"},
    )
    reason_code = _reason_code(required=True)
    note = _note(required=True)


class UndoRequest(_Strict):
    reason_code = _reason_code(required=True)
    note = _note(required=True)


class CancelRewardRequest(_Strict):
    reason_code = _reason_code(load_default="other")
    note = Text(max_length=MAX_NOTE, load_default="")


class NewKeyRequest(_Strict):
    name = Text(max_length=120, required_message="a name of 1 to 120 characters is required", required=True)
    scope = fields.String(load_default="read", validate=validate.OneOf(SCOPES, error="must be read or write"))


class IdempotencyKeyHeader(Schema):
    """The Idempotency-Key header: a retry with the same key and body answers the first result."""

    key = Text(
        data_key="Idempotency-Key",
        max_length=MAX_IDEMPOTENCY_KEY,
        load_default=None,
        metadata={"description": f"1 to {MAX_IDEMPOTENCY_KEY} characters"},
    )


def _no_control_characters(text: str) -> None:
    if _CONTROL.search(text):
        raise ValidationError("must not contain control characters")


class RedeemRequest(Schema):
    """The widget's POST /proxy/redeem."""

    reward_id = fields.String(required=True, validate=[validate.Length(min=1, max=40), _no_control_characters])
    idempotency_key = fields.String(
        load_default=None, validate=[validate.Length(min=8, max=100), _no_control_characters]
    )
    # Cash back: how many points the shopper chose (whole steps within its bounds); other rewards cost their own.
    points = fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=10_000_000))


# ------------------------------------------------------------------ answers


class ErrorDetail(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    fields = fields.Dict(
        keys=fields.String(), metadata={"description": "per-field messages, for bad input"}, required=False
    )


class ErrorEnvelope(Schema):
    """Every refusal: {"error": {"code", "message", "fields"?}}."""

    error = fields.Nested(ErrorDetail, required=True)


class ActionSchema(Schema):
    id = fields.Integer(required=True)
    action = fields.String(required=True, metadata={"description": "adjust, reverse_order or undo"})
    actor = fields.String(required=True)
    reason_code = fields.String(required=True)
    note = fields.String(required=True)
    points = fields.Integer(required=True)
    balance_before = fields.Integer(required=True)
    balance_after = fields.Integer(required=True)
    order_id = fields.Integer(allow_none=True, required=True)
    undo_of = fields.Integer(allow_none=True, required=True)
    undone_by = fields.Integer(allow_none=True, required=True)
    at = fields.DateTime(attribute="created_at", required=True)


class ActionListSchema(Schema):
    actions = fields.List(fields.Nested(ActionSchema), required=True)


class HistoryLineSchema(Schema):
    """One posting, explained: what caused it, and for a support action who, why and the note."""

    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    kind = fields.String(required=True)
    points = fields.Integer(required=True)
    balance_after = fields.Integer(required=True)
    source = fields.String(required=True, metadata={"description": "order, refund, redemption, support..."})
    rule_version = fields.String(required=True)
    explanation = fields.String(allow_none=True, required=True)
    available_at = fields.DateTime(allow_none=True)
    actor = fields.String()
    order = fields.String()
    order_id = fields.Integer()
    refund_id = fields.String()
    redemption_id = fields.String()
    support_action_id = fields.Integer()
    by = fields.String()
    reason_code = fields.String()
    note = fields.String()


HISTORY_CSV_COLUMNS = [
    "id",
    "at",
    "kind",
    "points",
    "balance_after",
    "source",
    "order",
    "order_id",
    "refund_id",
    "redemption_id",
    "support_action_id",
    "by",
    "reason_code",
    "note",
    "rule_version",
    "explanation",
]


class HistorySchema(Schema):
    customer_id = fields.Integer(required=True)
    history = fields.List(fields.Nested(HistoryLineSchema), required=True)


class RedemptionSchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)
    code = fields.String(required=True)
    reward = fields.Function(lambda r: r.reward["title"], required=True, metadata={"type": "string"})
    points = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(allow_none=True, required=True)
    reason = fields.String(allow_none=True, required=True)
    store_credit = fields.Method(
        "_store_credit",
        allow_none=True,
        metadata={
            "type": "object",
            "nullable": True,
            "description": "store-credit rewards: {amount, currency, balance} (balance after the credit; null "
            "until issued); null for a discount code",
        },
    )

    def _store_credit(self, r: Any) -> dict[str, Any] | None:
        if getattr(r, "credit_milli", None) is None:
            return None
        balance = r.credit_balance_milli
        return {
            "amount": str(from_milli(r.credit_milli)),
            "currency": r.credit_currency,
            "balance": str(from_milli(balance)) if balance is not None else None,
        }


class MemberCardSchema(Schema):
    """What a helpdesk sidebar shows: who, balance, recent explained history, rewards."""

    customer_id = fields.Integer(required=True)
    email = fields.String(allow_none=True, required=True)
    name = fields.String(allow_none=True, required=True)
    balance = fields.Integer(required=True)
    pending = fields.Integer(required=True)
    available = fields.Integer(required=True)
    history = fields.List(fields.Nested(HistoryLineSchema), required=True)
    redemptions = fields.List(fields.Nested(RedemptionSchema), required=True)


class ParkedSchema(Schema):
    id = fields.Integer(required=True)
    topic = fields.String(required=True)
    received_at = fields.DateTime(required=True)
    attempts = fields.Integer(required=True)
    reason = fields.String(allow_none=True, required=True)


class ParkedListSchema(Schema):
    parked = fields.List(fields.Nested(ParkedSchema), required=True)


class ParkedDeliverySchema(ParkedSchema):
    status = fields.String(required=True)
    webhook_id = fields.String(required=True)
    triggered_at = fields.String(allow_none=True, required=True)
    api_version = fields.String(allow_none=True, required=True)
    body = fields.Function(
        lambda d: d.body.decode("utf-8", "replace")[:65536], required=True, metadata={"type": "string"}
    )


class ReplaySchema(Schema):
    id = fields.Integer(required=True)
    status = fields.String(required=True)


class KeySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    scope = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    revoked_at = fields.DateTime(allow_none=True, required=True)


class NewKeySchema(KeySchema):
    key = fields.String(required=True, metadata={"description": "shown once: only its hash is kept"})


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)
