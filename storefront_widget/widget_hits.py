"""Cached widget reads answered at the WSGI layer: a signed GET /proxy/widget whose entry is current, before Flask.

A cache hit needs the App Proxy signature check (the same `verify_proxy`, on the query parsed exactly as Flask's
`request.args` parses it) and one Redis round trip, then sends the stored bytes. Flask's request context, routing
and response objects cost about as much again as that on this machine (decision 0053), and on this path they run
no code of the app's: so a hit is answered here, with the status and headers the view answers it with. Everything
else goes to Flask unchanged: any other path or method, a refused signature (Flask refuses it, with its reason), a
miss (the view computes and fills, reusing this read so Redis is not asked twice), Redis unavailable, or an app
that registered any per-request hook, signal receiver or session use this path would otherwise skip.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qsl

import werkzeug.urls  # noqa: F401 registers the "werkzeug.url_quote" codec error handler request.args uses
from flask import Flask

from plugin.platforms.shopify import adapter as shopify
from plugin.web import before_flask
from storefront_widget import widget_cache

PATH = "/proxy/widget"
LOOKED_UP = "loyalty.widget_lookup"  # environ key: (domain, customer id, widget_cache.Lookup) for the view


class WidgetHits(before_flask.AnsweredBeforeFlask):
    """WSGI middleware in front of Flask's own `wsgi_app` (create_app installs it)."""

    path, method = PATH, "GET"

    def answer(self, environ: dict[str, Any]) -> bytes | None:
        """The stored answer for this request if it may be sent as it is; else None, after noting the lookup."""
        if not flask_runs_nothing_around_the_widget(self.app):
            return None
        settings = self.app.extensions["loyalty"]  # read per request, as the view reads current_app's: never stale
        # As werkzeug's Request.args: the query string as latin-1 bytes, decoded as UTF-8, blanks kept, and bytes
        # that are not UTF-8 left percent-encoded. Repeated keys are refused by verify_proxy, so the pairs are the
        # ones request.args.items(multi=True) gives the view.
        try:
            query = environ.get("QUERY_STRING", "").encode("latin1").decode()
        except UnicodeError:
            return None  # Flask answers it as it answers it
        params = parse_qsl(query, keep_blank_values=True, errors="werkzeug.url_quote")
        try:
            caller = shopify.verify_proxy(params, settings.webhook_secrets, time.time())
        except shopify.ProxyAuthError:
            return None  # the view refuses it with the reason
        looked = widget_cache.look_up(settings, caller.shop_domain, caller.customer_id)
        body = widget_cache.cached_body(looked)
        if body is None:
            environ[LOOKED_UP] = (caller.shop_domain, caller.customer_id, looked)
        return body


def looked_up(environ: dict[str, Any], domain: str, customer_id: int | None) -> Any:
    """The lookup WidgetHits made for this shopper in this request, or widget_cache.NOT_LOOKED_UP."""
    noted = environ.get(LOOKED_UP)
    if noted is not None and noted[0] == domain and noted[1] == customer_id:
        return noted[2]
    return widget_cache.NOT_LOOKED_UP


def flask_runs_nothing_around_the_widget(app: Flask) -> bool:
    """Whether Flask, answering /proxy/widget, would run nothing of the app's besides the view."""
    return before_flask.runs_nothing_around(app, "storefront")
