"""Whether Flask would run anything of the app's around a view: when not, a WSGI layer may answer in its place."""

from __future__ import annotations

from flask import Flask, request_finished, request_started
from flask.sessions import SecureCookieSessionInterface

from plugin.web.errors import refuse_ids_beyond_bigint

# The per-request hooks that may run around a view for Flask to be skipped: this one only looks at view
# arguments, which the paths answered before Flask (/proxy/widget, /webhooks/shopify) have none of.
HARMLESS_HOOKS = (refuse_ids_beyond_bigint,)


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
