"""Answers before Flask: a WSGI layer that sends a view's JSON answer itself, when Flask would run nothing else."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request_finished, request_started
from flask.sessions import SecureCookieSessionInterface

from plugin.web.errors import refuse_ids_beyond_bigint

log = logging.getLogger(__name__)

# The per-request hooks that may run around a view for Flask to be skipped: this one only looks at view
# arguments, which the paths answered before Flask (/proxy/widget, /webhooks/shopify) have none of.
HARMLESS_HOOKS = (refuse_ids_beyond_bigint,)
CONTENT_TYPE = "application/json"  # what the views' Response(body, mimetype=...) sends, with Content-Length


def runs_nothing_around(app: Flask, blueprint: str) -> bool:
    """Whether Flask, answering a view of `blueprint`, would run nothing of the app's besides the view: no before,
    after or teardown hook (app-wide or the blueprint's) but HARMLESS_HOOKS, no URL value preprocessor, no request
    signal receiver, and the stock cookie session, which such a view never touches (so it sets no cookie)."""
    for hooks in (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs,
                  app.url_value_preprocessors):  # fmt: skip
        for scope in (None, blueprint):
            for hook in hooks.get(scope, ()):
                if hook not in HARMLESS_HOOKS or hooks is not app.before_request_funcs:
                    return False
    return not (
        app.teardown_appcontext_funcs
        or request_started.receivers
        or request_finished.receivers
        or type(app.session_interface) is not SecureCookieSessionInterface
    )


class AnsweredBeforeFlask:
    """WSGI middleware in front of Flask's own `wsgi_app`: a `method` request for `path` that `answer` can answer
    is sent its bytes as the view sends them (`Response(body, mimetype="application/json")`: 200, the media type,
    Content-Length); every other request, and any error in `answer`, is Flask's."""

    path: str
    method: str

    def __init__(self, app: Flask, wsgi_app: Callable[..., Iterable[bytes]]):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == self.path and environ.get("REQUEST_METHOD") == self.method:
            try:
                body = self.answer(environ)
            except Exception:  # Flask runs the same code next, and answers (and logs) its error as for any view
                # Logged here too: an error after a commit (the intake's signal) is answered by the view as a
                # duplicate, and a layer that failed on every request would only cost speed; neither is silent.
                log.exception("%s %s: answered by Flask after an error before it", self.method, self.path)
                body = None
            if body is not None:
                start_response("200 OK", [("Content-Type", CONTENT_TYPE), ("Content-Length", str(len(body)))])
                return [body]
        return self.wsgi_app(environ, start_response)

    def answer(self, environ: dict[str, Any]) -> bytes | None:
        """The view's 200 answer for this request, or None for Flask to answer it."""
        raise NotImplementedError
