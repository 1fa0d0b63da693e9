"""The widget's answer cached in Redis per shopper, served only while a version read from PostgreSQL still matches.

Every read first asks PostgreSQL for the shopper's version (one cheap statement: row versions and the latest
posting id), then Redis for the cached answer; the answer is served only if it was stored under that same
version. The ledger's own transaction changes the version (a posting moves `members.balance` by trigger, so the
member row gets a new `xmin`, and the posting has a higher id), so no writer has to remember to invalidate, and
a Redis that lost a write or a writer that died after its commit cannot leave a stale answer standing.

Why a fill that races a posting is safe: the version is read *before* the data, and a later statement sees
everything an earlier one saw, so an answer is never older than the version it is stored under. A fill whose
read began before a posting committed is stored under the old version, which no later read matches.

What the version covers exactly: the shop row (settings, tiers, currency, language), the expiry policy, the
member row (balance, tier), the member's postings (history, pending points come with their order's posting) and
their latest redemptions (status, code). What it does not cover is bounded by the entry's lifetime (TTL_SECONDS):
the clock (a pending line becomes available: the entry ends when the first pending line does; a reward's window or
a tier period ends) and other shoppers' redemptions of a reward with a shop-wide total. PostgreSQL only; without
Redis, or on SQLite, every read is computed.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache

from flask import Response
from redis.exceptions import RedisError

from plugin import direct
from plugin.config import Settings
from plugin.db import engine_for
from plugin.jobs.dispatch import redis_client
from storefront_widget import widget_sql

log = logging.getLogger(__name__)

TTL_SECONDS = 30  # the bound on what the version does not cover (the clock, shop-wide reward totals)

# xmin is the id of the transaction that wrote the row's current version: any UPDATE gives it a new one, and a
# transaction id is never reused while an entry could live. The pair (domain, id) is checked as the widget's
# statement does (widget_sql), so a stale per-process id finds nothing.
_VERSION = """
    SELECT s.active,
           s.xmin::text,
           (SELECT e.xmin::text FROM expiry_policies e WHERE e.shop_id = %(shop_id)s),
           m.id,
           m.xmin::text,
           (SELECT p.id FROM postings p WHERE p.shop_id = %(shop_id)s AND p.member_id = m.id
             ORDER BY p.id DESC LIMIT 1),
           (SELECT string_agg(r.id || ':' || r.xmin::text, ',' ORDER BY r.id DESC)
              FROM (SELECT id, xmin FROM redemptions
                     WHERE shop_id = %(shop_id)s AND member_id = m.id ORDER BY id DESC LIMIT %(redemptions)s) r)
      FROM shops s
      LEFT JOIN members m ON m.shop_id = %(shop_id)s AND m.customer_id = %(customer_id)s
     WHERE s.domain = %(domain)s AND s.id = %(shop_id)s
"""


def served(
    settings: Settings, domain: str, customer_id: int | None, redemptions: int, compute: Callable[[], Response]
) -> Response:
    """The widget's response for this shopper: from the cache when its version still holds, else computed."""
    shop_id = widget_sql.shop_ids.get(domain)
    if not settings.redis_url or shop_id is None or engine_for(settings.database_url).dialect.name != "postgresql":
        return compute()  # the first read in this process learns the shop's id (widget_sql.read)
    version = current_version(settings.database_url, shop_id, domain, customer_id, redemptions)
    if version is None:
        return compute()  # an unknown or inactive shop: the computed path gives the 404
    key = cache_key(settings, shop_id, customer_id)
    redis = redis_client(settings.redis_url)
    try:
        cached = redis.get(key)
    except RedisError as error:
        log.warning("widget cache unavailable, reading the database (%s)", error.__class__.__name__)
        return compute()
    if cached is not None:
        stored_version, _, body = cached.partition(b"\n")
        if stored_version == version:
            return Response(body, mimetype="application/json")
    response = compute()
    ttl = lifetime(response)
    if ttl is not None:
        try:
            redis.set(key, version + b"\n" + response.get_data(), ex=ttl)
        except RedisError as error:
            log.warning("widget cache not written (%s)", error.__class__.__name__)
    return response


def current_version(
    database_url: str, shop_id: int, domain: str, customer_id: int | None, redemptions: int
) -> bytes | None:
    """The shopper's version as PostgreSQL holds it now, or None when the shop is unknown or inactive."""
    row = direct.fetch_one(
        engine_for(database_url),
        _VERSION,
        {"shop_id": shop_id, "domain": domain, "customer_id": customer_id, "redemptions": redemptions},
    )
    if row is None or not row[0]:
        return None
    return "|".join("" if value is None else str(value) for value in row[1:]).encode()


def cache_key(settings: Settings, shop_id: int, customer_id: int | None) -> str:
    """Per deployment (queue name), database and shopper: two databases sharing a Redis never share entries."""
    shopper = "visitor" if customer_id is None else str(customer_id)
    return f"loyalty:{settings.queue_name}:widget:{_database_tag(settings.database_url)}:{shop_id}:{shopper}"


@lru_cache(maxsize=8)
def _database_tag(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


def lifetime(response: Response, now: datetime | None = None) -> int | None:
    """How long this answer may be kept: TTL_SECONDS, or until its first pending line matures; None: not at all."""
    if response.status_code != 200:
        return None
    customer = (response.get_json(silent=True) or {}).get("customer") or {}
    seconds = float(TTL_SECONDS)
    now = now or datetime.now(UTC)
    for line in customer.get("pending_until") or ():
        matures = datetime.fromisoformat(line["available_at"])
        if matures.tzinfo is None:
            matures = matures.replace(tzinfo=UTC)
        seconds = min(seconds, (matures - now).total_seconds())
    return math.floor(seconds) if seconds >= 1 else None
