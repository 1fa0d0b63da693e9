"""Well-formed, correctly signed webhook deliveries stored and acknowledged at the WSGI layer, before Flask.

An accepted delivery needs its body read, the HMAC, the header rules, the inbox's INSERT and the Redis signal: the
same `intake.delivery` and `intake.store` the view calls. Flask's request context, routing and response objects
are a measurable share of the rest (decision 0057), and on this path they run no code of the app's: so a delivery
that is committed (new or a duplicate) is answered here, with the view's status, headers and bytes. Everything else
goes to Flask's view, which answers as before: any other path or method, a body without a plain Content-Length or
over the limit, a refused signature or header (the view refuses it, with its reason), an inbox that could not take
it (the view answers 503 without trying again), an unexpected error, or an app that registered any per-request
hook, signal receiver or session use this path would otherwise skip. Nothing is answered 200 here that the inbox
has not committed: `intake.store` returns an answer only after the INSERT's commit (or its conflict).
"""

from __future__ import annotations

import io
from typing import Any

from flask import Flask

from plugin.config import MAX_WEBHOOK_BYTES
from plugin.web import before_flask
from webhooks import intake

PATH = "/webhooks/shopify"


class IntakeAcks(before_flask.AnsweredBeforeFlask):
    """WSGI middleware in front of Flask's own `wsgi_app` (create_app installs it)."""

    path, method = PATH, "POST"

    def answer(self, environ: dict[str, Any]) -> bytes | None:
        """The 200 answer's body once this request's delivery is committed; else None, for Flask to answer."""
        if not before_flask.runs_nothing_around(self.app, intake.bp.name):
            return None
        body = read_body(environ, body_limit(self.app))
        if body is None:
            return None
        settings = self.app.extensions["loyalty"]  # read per request, as the view reads current_app's: never stale
        incoming = intake.delivery(environ, body, settings)
        if isinstance(incoming, intake.Refusal):
            environ[intake.REFUSED] = incoming  # the view answers it, without a second HMAC of a forged body
            return None
        answer = intake.store(settings, incoming)
        if answer is None:
            environ[intake.INBOX_UNAVAILABLE] = True
        intake.note_stored(environ, answer)
        return answer


def body_limit(app: Flask) -> int:
    """The largest body the view takes: the webhook limit, or Flask's MAX_CONTENT_LENGTH where it is lower."""
    configured = app.config.get("MAX_CONTENT_LENGTH")
    return MAX_WEBHOOK_BYTES if configured is None else min(MAX_WEBHOOK_BYTES, configured)


def read_body(environ: dict[str, Any], limit: int = MAX_WEBHOOK_BYTES) -> bytes | None:
    """The body when it is declared by a plain Content-Length within the limit and arrived whole; else None (before
    reading anything, unless the body came short).

    Once read, the request's input is replaced by the bytes read, so Flask, if it answers the request after all,
    reads what it would have read: the same bytes, and where a client sent fewer than it declared, the same end."""
    length = environ.get("CONTENT_LENGTH", "")
    if not (length.isascii() and length.isdigit()) or "HTTP_TRANSFER_ENCODING" in environ:
        return None  # chunked, absent or odd: Werkzeug's rules, in the view
    size = int(length)
    if size > limit:
        return None  # the view's 413
    stream = environ["wsgi.input"]
    parts = []
    while size > 0:
        part = stream.read(size)
        if not part:
            break
        parts.append(part)
        size -= len(part)
    body = b"".join(parts)
    environ["wsgi.input"] = io.BytesIO(body)
    return None if size else body  # a client that sent less than it declared: Werkzeug's answer, in the view
