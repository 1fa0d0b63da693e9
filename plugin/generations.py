"""Generations of what the widget shows, per shop and per shopper, in Redis, bumped by each commit that changes it.

The database finds the writers: triggers (migration 0031) note in a transaction-local setting every shop and
shopper a transaction changed in the tables the widget's answer is made of. Before every commit on a PostgreSQL
engine (`install`, hooked into each engine of plugin.db.engine_for once this module is imported), this module
reads that setting on the same connection and, in one Redis call, bumps each touched generation and marks it
dirty until a deadline. After the transaction ends (the connection's next BEGIN or its return to the pool) one
more call removes the marks and bumps again.

A reader (storefront_widget/widget_cache.py) serves an entry only if it was stored under exactly the current
generations with nothing dirty, and stores a fill only if the generations it noted *before* reading the
database are still current and nothing was or is dirty (one Lua compare-and-set). Hence:
- a fill that read before a commit cannot be stored under a generation a later reader accepts: the commit was
  preceded by a bump (the fill's compare-and-set fails) or the fill noted a dirty mark (it does not store);
- a writer that dies between its bump and its release leaves marks that only expire (DIRTY_SECONDS): readers
  compute until then, and what they store after is read after the writer's commit or rollback;
- a generation lost by Redis (eviction, restart, FLUSH) starts again at a random value, so an entry stored under
  the old value is never accepted again; if Redis cannot be reached before the commit, the commit is refused.
Marks are tokens in a sorted set scored by their deadline, not counters: a release arriving after its mark
expired removes only its own token, never another writer's.

Not seen: writes outside a SQLAlchemy transaction of a process that called `watch` (autocommit statements, psql by
hand, another program). Such an edit shows at most TTL later (the widget cache's entry lifetime).
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256
from typing import TYPE_CHECKING

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError
from sqlalchemy import Engine, event

from plugin import db, direct_redis

if TYPE_CHECKING:
    from plugin.config import Settings

log = logging.getLogger(__name__)

TOUCHED_SETTING = "loyalty.widget_touched"  # written by the triggers of migration 0031
DIRTY_SECONDS = 60  # how long a writer that died after its bump keeps readers from storing
GENERATION_SECONDS = 3600  # an idle generation is forgotten, then starts again at a random value
_WHOLE_SHOP = "*"
_WROTE = "loyalty_generations_wrote"
_PENDING = "loyalty_generations_pending"
# Statements that cannot fire the triggers (no function of the schema called from a SELECT writes those tables).
_READS = ("SELECT", "SHOW ", "SAVEPOINT", "RELEASE ", "ROLLBACK")
_WITH = re.compile(r"WITH\b")
# In a WITH, a data-modifying part (PostgreSQL runs each one) or the main statement; a row lock writes nothing.
_MODIFIES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b")
_ROW_LOCK = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b")


class CacheUnavailable(RuntimeError):
    """Redis refused the bump: the transaction is not committed, so no cached answer can hide its change."""


@dataclass(frozen=True)
class _Target:
    redis_url: str
    queue_name: str


# database URL -> where its generations live, as the process's own settings say (watch)
_TARGETS: dict[str, _Target] = {}


def watch(settings: Settings) -> None:
    """Bump this Redis's generations on every commit to this database made by this process (or stop: no Redis)."""
    if settings.redis_url and settings.database_url.startswith("postgresql"):
        _TARGETS[settings.database_url] = _Target(settings.redis_url, settings.queue_name)
    else:
        _TARGETS.pop(settings.database_url, None)


def forget() -> None:
    """Stop bumping for every database (tests: each starts as a fresh process would)."""
    _TARGETS.clear()


# --- keys -------------------------------------------------------------------------------------------------------


def shop_prefix(queue_name: str, database_url: str, shop_id: int) -> str:
    """Every key of one shop: the braces make a Redis Cluster keep them in one slot, so one script reads them."""
    return f"loyalty:{queue_name}:widget:{{{_database_tag(database_url)}:{shop_id}}}"


def generation_keys(prefix: str, customer_id: int | str | None) -> list[str]:
    """The (generation, dirty marks) pairs an answer depends on: its shop's, and its shopper's unless a visitor."""
    keys = [f"{prefix}:gen", f"{prefix}:dirty"]
    if customer_id is not None and customer_id != _WHOLE_SHOP:
        keys += [f"{prefix}:gen:{customer_id}", f"{prefix}:dirty:{customer_id}"]
    return keys


@lru_cache(maxsize=8)
def _database_tag(database_url: str) -> str:
    return sha256(database_url.encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _redis(url: str) -> Redis:
    # Short timeouts, as for the job queue's client: a commit waits at most this long before it is refused.
    return Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def _random_base() -> int:
    return secrets.randbits(52)  # far from overflowing INCR, and never the value a lost generation had


def _script(lua: str) -> Script:
    return Script(None, lua.encode())  # bytes: its digest needs no client; each call names its client


# --- the writer's side ------------------------------------------------------------------------------------------

# KEYS: (generation, dirty marks) pairs. ARGV: random base, token, dirty seconds, generation seconds.
_BUMP = _script(
    """
local now = tonumber(redis.call('TIME')[1])
for i = 1, #KEYS, 2 do
  redis.call('SET', KEYS[i], ARGV[1], 'NX')
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', '(' .. now)
  redis.call('ZADD', KEYS[i + 1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', KEYS[i + 1], ARGV[3])
end
return 1
"""
)

# KEYS: as _BUMP. ARGV: token, random base, generation seconds. The second bump outdates anything stored while a
# mark had already expired (a commit slower than DIRTY_SECONDS).
_RELEASE = _script(
    """
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[1])
  redis.call('SET', KEYS[i], ARGV[2], 'NX')
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[3])
end
return 1
"""
)


def install(engine: Engine, database_url: str) -> None:
    """Hook a PostgreSQL engine: note writes, bump before each commit, release after the transaction."""

    @event.listens_for(engine, "before_cursor_execute")
    def _note_write(conn, _cursor, statement, _parameters, _context, executemany):
        if executemany or may_write(statement):
            conn.info[_WROTE] = True

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        _release(conn.info)  # the connection's previous transaction has ended
        conn.info.pop(_WROTE, None)

    @event.listens_for(engine, "commit")
    def _on_commit(conn):
        if conn.info.pop(_WROTE, False):
            _bump_before_commit(conn, database_url)

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        _release(record.info)


def may_write(statement: str) -> bool:
    """Whether a statement may fire the triggers: anything but a read, a read being a SELECT (SHOW, a savepoint's
    statements) or a WITH whose parts and main statement are all SELECTs. Errs towards a write: a word INSERT,
    UPDATE, DELETE or MERGE anywhere in a WITH (a string literal, a quoted name) makes it one."""
    head = statement.lstrip()[:9].upper()
    if head.startswith(_READS):
        return False
    if _WITH.match(head):
        return _MODIFIES.search(_ROW_LOCK.sub(" ", statement.upper())) is not None
    return True


db.hook_engines(install)  # a process that names a Redis (watch) has imported this module, so its engines are hooked


def _bump_before_commit(conn, database_url: str) -> None:
    target = _TARGETS.get(database_url)
    driver = conn.connection.driver_connection
    if target is None or driver.autocommit:  # autocommit: each statement committed alone, its setting gone
        return
    with driver.cursor() as cursor:
        cursor.execute(f"SELECT current_setting('{TOUCHED_SETTING}', true)", prepare=True)
        touched = cursor.fetchone()[0]
    keys = touched_keys(target, database_url, touched or "")
    if not keys:
        return
    token = os.urandom(8).hex()
    try:
        _BUMP(keys, [_random_base(), token, DIRTY_SECONDS, GENERATION_SECONDS], client=_redis(target.redis_url))
    except RedisError as error:
        raise CacheUnavailable(f"widget generations not bumped ({error.__class__.__name__}): not committing") from error
    conn.info.setdefault(_PENDING, []).append((target.redis_url, keys, token))


def touched_keys(target: _Target, database_url: str, touched: str) -> list[str]:
    """The (generation, dirty) key pairs of the setting's `,shop:customer,` and `,shop:*,` entries."""
    shoppers: dict[str, set[str]] = defaultdict(set)
    for entry in touched.split(","):
        shop, _, customer = entry.partition(":")
        if shop and customer:
            shoppers[shop].add(customer)
    keys: list[str] = []
    for shop, customers in shoppers.items():
        prefix = shop_prefix(target.queue_name, database_url, int(shop))
        if _WHOLE_SHOP in customers:
            keys += generation_keys(prefix, None)
        else:
            for customer in sorted(customers):
                keys += generation_keys(prefix, customer)[2:]
    return keys


def _release(info: dict) -> None:
    for redis_url, keys, token in info.pop(_PENDING, ()):
        try:
            _RELEASE(keys, [token, _random_base(), GENERATION_SECONDS], client=_redis(redis_url))
        except RedisError as error:  # the marks expire by themselves: readers compute until then
            log.warning("widget generations not released (%s)", error.__class__.__name__)


# --- the reader's side ------------------------------------------------------------------------------------------

# KEYS: the entry, then (generation, dirty marks) pairs. ARGV: random base, generation seconds.
# Returns {1, body} for an entry stored under the current generations with nothing dirty, else {0, stamp, dirty}.
_READ = _script(
    """
local now = tonumber(redis.call('TIME')[1])
local stamp = {}
local dirty = 0
for i = 2, #KEYS, 2 do
  local generation = redis.call('GET', KEYS[i])
  if not generation then
    generation = ARGV[1]
    redis.call('SET', KEYS[i], generation, 'EX', ARGV[2])
  end
  stamp[#stamp + 1] = generation
  if redis.call('ZCOUNT', KEYS[i + 1], now, '+inf') > 0 then dirty = 1 end
end
stamp = table.concat(stamp, ':')
if dirty == 0 then
  local held = redis.call('HMGET', KEYS[1], 'stamp', 'body')
  if held[1] == stamp then return {1, held[2]} end
end
return {0, stamp, dirty}
"""
)

# KEYS: as _READ. ARGV: the stamp noted before the database was read, the body, its lifetime in seconds.
_STORE = _script(
    """
local now = tonumber(redis.call('TIME')[1])
local stamp = {}
for i = 2, #KEYS, 2 do
  local generation = redis.call('GET', KEYS[i])
  if not generation then return 0 end
  if redis.call('ZCOUNT', KEYS[i + 1], now, '+inf') > 0 then return 0 end
  stamp[#stamp + 1] = generation
end
if table.concat(stamp, ':') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'stamp', ARGV[1], 'body', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)


@dataclass(frozen=True)
class Seen:
    """One read of an entry and its generations: the body if it may be served, else what a fill must store under."""

    body: bytes | None
    stamp: bytes
    dirty: bool


def read(redis: Redis, entry_key: str, keys: list[str]) -> Seen:
    """The entry if it is current, and the generations (noted now, before any database read) in one round trip."""
    answer = direct_redis.run_script(redis, _READ, [entry_key, *keys], [_random_base(), GENERATION_SECONDS])
    if answer[0] == 1:
        return Seen(answer[1], b"", False)
    return Seen(None, answer[1], bool(answer[2]))


def store(redis: Redis, entry_key: str, keys: list[str], seen: Seen, body: bytes, seconds: int) -> bool:
    """Store a fill only if the generations noted before it read are still current and nothing is dirty."""
    if seen.dirty:
        return False  # a writer was between its bump and its commit: the fill may predate that commit
    return bool(direct_redis.run_script(redis, _STORE, [entry_key, *keys], [seen.stamp, body, seconds]))
