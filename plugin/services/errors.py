"""Refusals a service raises: a stable code, the status a web door answers with, and per-field messages."""

from __future__ import annotations


class ServiceError(Exception):
    """The operation cannot be done as asked; nothing was changed."""

    code = "support_error"
    status = 409

    def __init__(self, message: str, fields: dict | None = None):
        super().__init__(message)
        self.fields = fields


class NotFound(ServiceError):
    code, status = "not_found", 404


class Invalid(ServiceError):
    """Bad input: `fields` maps each field to its messages, as marshmallow reports them."""

    code, status = "invalid_request", 400


class IdempotencyKeyReused(ServiceError):
    """The key was first used with another request: answering the first result would hide the mistake."""

    code, status = "idempotency_key_reused", 422


class IdempotencyKeyInFlight(ServiceError):
    """Another request with this key has not finished; retrying later gets its result."""

    code, status = "idempotency_key_in_flight", 409


def summary(fields: dict) -> str:
    """One sentence naming each field and its first message, for callers that show a single line."""
    parts = []
    for name, messages in fields.items():
        while isinstance(messages, dict):  # nested (a list item, a sub-object): name its first problem
            if not messages:
                break
            key, messages = next(iter(messages.items()))
            name = f"{name}.{key}"
        text = messages[0] if isinstance(messages, list) and messages else messages
        parts.append(str(text) if name == "_schema" else f"{name}: {text}")
    return "; ".join(parts) or "invalid request"
