"""One Redis command on a kept connection, without redis-py's per-command work (the web's hot paths).

redis-py's client wraps each command in a pool checkout (a lock, a poll of the socket, observability counters),
argument parsing and a retry wrapper: on this machine about 110 µs of CPU per command, against 30 µs to send the
packed command and read its reply on a connection already held (decision 0046). The widget's cached read and the
webhook's inbox signal send one command each per request, so that overhead was a large share of what each path
costs over bare Flask. Here each client's connections are made exactly as its own pool makes them (same host,
database, password, timeouts, protocol) and kept in a free list of this process; replies and errors are redis-py's
own (its parser reads them), so callers handle `RedisError` as before.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

# client's pool -> its kept connections (list.pop and list.append are atomic, so gunicorn's threads share it)
_KEPT: weakref.WeakKeyDictionary[Any, list[AbstractConnection]] = weakref.WeakKeyDictionary()


def _forget_after_fork() -> None:
    # The parent's sockets are the parent's: a forked child (an RQ work horse) makes its own, and never closes them.
    _KEPT.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


def execute(client: Redis, *args: bytes | str | int) -> Any:
    """Send one command on a kept connection of `client`'s kind and return its reply (bytes, ints, lists, None).

    A kept connection that Redis closed meanwhile (a restart, an idle timeout) fails with ConnectionError: it is
    dropped and the command sent once more on a new one (redis-py's pool instead polls each connection before
    handing it out; decision 0046 says when the two differ). Any other failure (a timeout, an error reply) is
    raised unchanged; an error reply leaves the connection usable, so it is kept.
    """
    return execute_packed(client, pack(args))


def execute_packed(client: Redis, packed: bytes) -> Any:
    """`execute` of a command already packed (by `pack`): a caller that sends the same command often packs it once."""
    pool = client.connection_pool
    kept = _KEPT.get(pool)
    if kept is None:
        kept = _KEPT.setdefault(pool, [])
    try:
        connection = kept.pop()
    except IndexError:
        return _send(kept, _new_connection(pool), packed)
    try:
        return _send(kept, connection, packed)
    except RedisConnectionError:
        return _send(kept, _new_connection(pool), packed)


def run_script(client: Redis, script: Script, keys: list[str], args: list[bytes | str | int]) -> Any:
    """EVALSHA of a registered script; once after Redis forgot it (a restart, SCRIPT FLUSH), EVAL, which reloads it."""
    try:
        return execute(client, "EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return execute(client, "EVAL", script.script, len(keys), *keys, *args)


def pack(args: tuple[bytes | str | int, ...]) -> bytes:
    """The RESP array of bulk strings for a command: str as UTF-8, int in decimal (what redis-py sends for both)."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            arg = arg.encode()
        elif isinstance(arg, int) and not isinstance(arg, bool):
            arg = b"%d" % arg
        elif not isinstance(arg, bytes):
            raise TypeError(f"a Redis argument must be bytes, str or int, not {type(arg).__name__}")
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


def _new_connection(pool) -> AbstractConnection:
    return pool.connection_class(**pool.connection_kwargs)  # connects (AUTH, SELECT) on its first send


def _send(kept: list[AbstractConnection], connection: AbstractConnection, packed: bytes) -> Any:
    try:
        connection.send_packed_command([packed], check_health=False)
        reply = connection.read_response()
    except RedisConnectionError:
        connection.disconnect()
        raise
    except BaseException as error:
        if isinstance(error, ResponseError):  # an error reply, read whole: the connection is still in step
            kept.append(connection)
        else:
            connection.disconnect()  # a timeout or an interrupt may leave half a reply on the socket
        raise
    kept.append(connection)
    return reply
