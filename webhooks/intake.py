"""POST /webhooks/shopify: verify the signature on the raw body, store the delivery, signal, answer 200."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import psycopg
from flask import Blueprint, Response, current_app, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import RequestEntityTooLarge

from plugin import inbox, jobs, platforms
from plugin.config import MAX_WEBHOOK_BYTES, Settings
from plugin.db import engine_for
from plugin.web.access_log import STORED_DELIVERY
from plugin.web.errors import json_error

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

HEADER_LIMIT = 128
# The inbox columns' widths: a longer header is cut to fit, so an authenticated delivery is stored, never lost.
SHOP_DOMAIN_LIMIT, TRIGGERED_AT_LIMIT, API_VERSION_LIMIT = 255, 64, 16


@bp.post("/webhooks/shopify")
def shopify_webhook() -> Response:
    settings: Settings = current_app.extensions["loyalty"]
    body = request.get_data(cache=False)  # a declared length over the limit raises 413 before we read anything
    if len(body) > MAX_WEBHOOK_BYTES:
        raise RequestEntityTooLarge(f"webhook bodies are limited to {MAX_WEBHOOK_BYTES} bytes")
    environ = request.environ
    # A delivery the WSGI layer (webhooks/intake_acks.py) refused already: its reason, not a second HMAC.
    incoming = environ.pop(REFUSED, None) or delivery(environ, body, settings)
    if isinstance(incoming, Refusal):
        return json_error(incoming.status, incoming.code, incoming.message)
    # The WSGI layer (webhooks/intake_acks.py) tried the inbox for this request already and found it unavailable:
    # answered here without a second attempt (or a second log line).
    answer = None if environ.pop(INBOX_UNAVAILABLE, False) else store(settings, incoming)
    note_stored(environ, answer)
    if answer is None:
        return json_error(
            503, "inbox_unavailable", "the delivery could not be stored; retry later", headers={"Retry-After": "30"}
        )
    return Response(answer, mimetype="application/json")


@dataclass(frozen=True)
class Refusal:
    """Why a delivery is refused before anything is stored: the view answers it with json_error."""

    status: int
    code: str
    message: str


FORGED = Refusal(401, "invalid_signature", "X-Shopify-Hmac-Sha256 is missing or does not match the body")
BAD_DOMAIN = Refusal(400, "invalid_shop_domain", "X-Shopify-Shop-Domain must be a *.myshopify.com domain")
BAD_TOPIC = Refusal(400, "invalid_topic", "X-Shopify-Topic is missing or too long")


def delivery(environ: dict[str, Any], body: bytes, settings: Settings) -> inbox.IncomingDelivery | Refusal:
    """The delivery a request within the size limit carries, once its signature and headers hold; else why not.

    The headers come straight from the WSGI environ: what request.headers.get answers for each, without the
    request proxy's and the header map's per-call work (seven headers per delivery)."""
    shopify = platforms.get("shopify")
    if not shopify.verify_webhook(body, environ.get("HTTP_X_SHOPIFY_HMAC_SHA256"), settings.webhook_secrets):
        return FORGED
    shop_domain = environ.get("HTTP_X_SHOPIFY_SHOP_DOMAIN", "")
    if not shopify.is_valid_shop_domain(shop_domain):
        return BAD_DOMAIN
    topic = environ.get("HTTP_X_SHOPIFY_TOPIC", "")
    if not topic or len(topic) > 64:
        return BAD_TOPIC
    # Shopify always sends a webhook id; if a caller did not, the body's digest still deduplicates it.
    webhook_id = (
        environ.get("HTTP_X_SHOPIFY_WEBHOOK_ID")
        or "sha256:" + hashlib.sha256(topic.encode() + b"\n" + body).hexdigest()
    )
    # No real shop's domain is this long (a DNS label is at most 63 characters): keep it, cut, and park it.
    too_long = len(shop_domain) > SHOP_DOMAIN_LIMIT
    return inbox.IncomingDelivery(
        shop_domain=shop_domain[:SHOP_DOMAIN_LIMIT],
        topic=topic,
        webhook_id=webhook_id[:HEADER_LIMIT],
        body=body,
        event_id=_header(environ, "HTTP_X_SHOPIFY_EVENT_ID"),
        triggered_at=_header(environ, "HTTP_X_SHOPIFY_TRIGGERED_AT", TRIGGERED_AT_LIMIT),
        api_version=_header(environ, "HTTP_X_SHOPIFY_API_VERSION", API_VERSION_LIMIT),
        parked_reason=f"X-Shopify-Shop-Domain is over {SHOP_DOMAIN_LIMIT} characters" if too_long else None,
    )


def store(settings: Settings, incoming: inbox.IncomingDelivery) -> bytes | None:
    """The 200 answer's body once the delivery is committed (new, and signalled, or a duplicate); None, logged,
    when the inbox could not take it."""
    try:
        delivery_id = inbox.store(engine_for(settings.database_url), incoming)
    except (SQLAlchemyError, psycopg.Error) as error:  # the pool's connect, or the statement on its connection
        log.error("inbox unavailable, asking the shop to retry: %s", error.__class__.__name__)
        return None
    if delivery_id is None:
        return DUPLICATE
    jobs.signal_inbox(settings)
    return ACCEPTED % delivery_id


def note_stored(environ: dict[str, Any], answer: bytes | None) -> None:
    """Mark a request whose delivery was new and is now committed: its inbox row (shop, topic, webhook id, time,
    body) is its record, so gunicorn writes no access line for it (plugin/web/access_log.py, decision 0087)."""
    if answer is not None and answer != DUPLICATE:
        environ[STORED_DELIVERY] = True


# The two answers, as jsonify wrote them (sorted keys, compact, a newline), written without its JSON provider.
ACCEPTED = b'{"delivery_id":%d,"status":"accepted"}\n'
DUPLICATE = b'{"status":"duplicate"}\n'
INBOX_UNAVAILABLE = "loyalty.inbox_unavailable"  # environ key: the WSGI layer's store failed for this request
REFUSED = "loyalty.refused"  # environ key: the WSGI layer's Refusal of this request (no client sets such a key)


def _header(environ: dict, key: str, limit: int = HEADER_LIMIT) -> str | None:
    value = environ.get(key)
    return value[:limit] if value else None
