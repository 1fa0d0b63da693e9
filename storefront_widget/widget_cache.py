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
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from flask import Response, jsonify
from redis.exceptions import RedisError

from plugin import generations
from plugin.config import Settings
from plugin.db import engine_for
from plugin.jobs.dispatch import redis_client
from storefront_widget import widget_sql

log = logging.getLogger(__name__)

NOT_LOOKED_UP = object()  # served() reads the entry itself
TTL_SECONDS = 30  # the bound on what the generations do not cover (the clock, shop-wide reward totals)


@dataclass(frozen=True)
class Lookup:
    """One read of a shopper's entry: where it lives, and what Redis answered (or the error it raised)."""

    shop_id: int
    entry: str
    keys: list[str]
    seen: generations.Seen | None
    error: RedisError | None = None


def look_up(settings: Settings, domain: str, customer_id: int | None) -> Lookup | None:
    """The shopper's entry read from Redis in one round trip; None where reads are not cached (no Redis, SQLite, or
    this process has not yet learnt the shop's id: its first read does, in widget_sql.read)."""
    shop_id = widget_sql.shop_ids.get(domain)
    if shop_id is None or not settings.redis_url or not _is_postgresql(settings.database_url):
        return None
    prefix = generations.shop_prefix(settings.queue_name, settings.database_url, shop_id)
    entry = entry_key(prefix, customer_id)
    keys = generations.generation_keys(prefix, customer_id)
    try:
        return Lookup(shop_id, entry, keys, generations.read(redis_client(settings.redis_url), entry, keys))
    except RedisError as error:
        return Lookup(shop_id, entry, keys, None, error)


def served(
    settings: Settings,
    domain: str,
    customer_id: int | None,
    compute: Callable[[], dict[str, Any]],
    looked: Lookup | object | None = NOT_LOOKED_UP,
) -> Response:
    """The widget's response for this shopper: from the cache when its generations still hold, else `compute`'s
    answer (an unknown or inactive shop: it raises the 404, never stored). `looked` is this request's look_up when
    the WSGI layer already made it (storefront_widget/widget_hits.py), so a miss is not read twice."""
    if looked is NOT_LOOKED_UP:
        looked = look_up(settings, domain, customer_id)
    if not isinstance(looked, Lookup):
        return jsonify(compute())  # the first read in this process learns the shop's id (widget_sql.read)
    if looked.seen is None:
        log.warning("widget cache unavailable, reading the database (%s)", looked.error.__class__.__name__)
        return jsonify(compute())
    seen = looked.seen
    if seen.body is not None:
        return Response(seen.body, mimetype="application/json")
    answer = compute()
    response = jsonify(answer)
    ttl = lifetime(answer)
    # A shop erased and installed again has a new id: its answer is not stored under the old id's keys.
    if ttl is not None and widget_sql.shop_ids.get(domain) == looked.shop_id:
        try:
            generations.store(
                redis_client(settings.redis_url), looked.entry, looked.keys, seen, response.get_data(), ttl
            )
        except RedisError as error:
            log.warning("widget cache not written (%s)", error.__class__.__name__)
    return response


def cached_body(looked: Lookup | None) -> bytes | None:
    """The stored answer's bytes if this lookup may be served as it is, else None."""
    return looked.seen.body if looked is not None and looked.seen is not None else None


@lru_cache(maxsize=8)
def _is_postgresql(database_url: str) -> bool:
    return engine_for(database_url).dialect.name == "postgresql"


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
