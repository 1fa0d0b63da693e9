"""gunicorn's access log without a line for a webhook delivery the inbox has just stored: its row is the record."""

from __future__ import annotations

from gunicorn import glogging

# WSGI environ key the webhook intake sets once a new delivery is committed to the inbox (webhooks/intake.py).
STORED_DELIVERY = "loyalty.stored_delivery"


class AccessLogger(glogging.Logger):
    """gunicorn's Logger, leaving out the access line of a request that stored a new webhook delivery (decision
    0087). Every other request keeps its line: a duplicate, a refusal, an error, the widget, the admin."""

    def access(self, resp, req, environ, request_time) -> None:
        if environ.get(STORED_DELIVERY):
            return
        super().access(resp, req, environ, request_time)
