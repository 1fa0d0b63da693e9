"""The widget's answer cached in Redis per shopper, served only under the generations its writers bump.

One Redis round trip (plugin.generations.read) returns the shopper's entry if it was stored under exactly the
current generations of the shop and of the shopper with no writer between its bump and its commit; a hit asks
PostgreSQL nothing. A miss computes the answer and stores it with a compare-and-set on the generations noted
*before* the database was read, so a fill that raced a commit is never stored under a generation a later reader
accepts (decision 0044, which says why each hole of a delete-after-commit scheme is closed).

What the generations cover: the rows the triggers of migration 0031 watch (the shop, its expiry policy, the
member, the member's postings and redemptions). What they do not is bounded by the entry's lifetime
(TTL_SECONDS): the clock (a pending line becomes available: the entry ends when the first pending line does; a
reward's window or a tier period ends), other shoppers' redemptions of a reward with a shop-wide total, and a
write made outside the app's hooked transactions (psql by hand). PostgreSQL only; without Redis, or on SQLite,
every read is computed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Response, jsonify
from redis.exceptions import RedisError

from plugin import generations
from plugin.config import Settings
from plugin.db import engine_for
from plugin.jobs.dispatch import redis_client
from storefront_widget import widget_sql

log = logging.getLogger(__name__)

TTL_SECONDS = 30  # the bound on what the generations do not cover (the clock, shop-wide reward totals)


def served(settings: Settings, domain: str, customer_id: int | None, compute: Callable[[], dict[str, Any]]) -> Response:
    """The widget's response for this shopper: from the cache when its generations still hold, else `compute`'s
    answer (an unknown or inactive shop: it raises the 404, never stored)."""
    shop_id = widget_sql.shop_ids.get(domain)
    if not settings.redis_url or shop_id is None or engine_for(settings.database_url).dialect.name != "postgresql":
        return jsonify(compute())  # the first read in this process learns the shop's id (widget_sql.read)
    prefix = generations.shop_prefix(settings.queue_name, settings.database_url, shop_id)
    entry = entry_key(prefix, customer_id)
    keys = generations.generation_keys(prefix, customer_id)
    redis = redis_client(settings.redis_url)
    try:
        seen = generations.read(redis, entry, keys)
    except RedisError as error:
        log.warning("widget cache unavailable, reading the database (%s)", error.__class__.__name__)
        return jsonify(compute())
    if seen.body is not None:
        return Response(seen.body, mimetype="application/json")
    answer = compute()
    response = jsonify(answer)
    ttl = lifetime(answer)
    # A shop erased and installed again has a new id: its answer is not stored under the old id's keys.
    if ttl is not None and widget_sql.shop_ids.get(domain) == shop_id:
        try:
            generations.store(redis, entry, keys, seen, response.get_data(), ttl)
        except RedisError as error:
            log.warning("widget cache not written (%s)", error.__class__.__name__)
    return response


def entry_key(prefix: str, customer_id: int | None) -> str:
    """Per deployment (queue name), database, shop and shopper: two databases sharing a Redis never share one."""
    return f"{prefix}:entry:{'visitor' if customer_id is None else customer_id}"


def lifetime(answer: dict[str, Any], now: datetime | None = None) -> int | None:
    """How long this answer may be kept: TTL_SECONDS, or until its first pending line matures; None: not at all."""
    customer = answer.get("customer") or {}
    seconds = float(TTL_SECONDS)
    now = now or datetime.now(UTC)
    for line in customer.get("pending_until") or ():
        matures = datetime.fromisoformat(line["available_at"])
        if matures.tzinfo is None:
            matures = matures.replace(tzinfo=UTC)
        seconds = min(seconds, (matures - now).total_seconds())
    return math.floor(seconds) if seconds >= 1 else None
