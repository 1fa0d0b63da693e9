"""plugin.direct_redis: one command on a kept connection answers as redis-py would, and survives a lost connection."""

from __future__ import annotations

import os
import uuid

import pytest
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from plugin import direct_redis
from tests.conftest import RUN_ID, TEST_REDIS_URL

pytestmark = pytest.mark.integration


@pytest.fixture
def client() -> Redis:
    # A client of this test's own: its pool, hence its kept connections, are nobody else's.
    return Redis.from_url(TEST_REDIS_URL, socket_timeout=5, socket_connect_timeout=5)


def key(name: str) -> str:
    return f"test-direct-redis:{RUN_ID}:{name}:{uuid.uuid4().hex[:8]}"  # conftest deletes the run's keys


def test_replies_are_redis_pys_own(client):
    claim = key("claim")
    assert direct_redis.execute(client, "SET", claim, b"1", "NX", "EX", 60) == b"OK"
    assert direct_redis.execute(client, "SET", claim, b"1", "NX", "EX", 60) is None  # held: the claim is refused
    assert 0 < client.ttl(claim) <= 60
    assert direct_redis.execute(client, "GET", claim) == client.get(claim) == b"1"
    assert direct_redis.execute(client, "INCRBY", key("n"), 5) == 5


def test_arguments_are_packed_as_redis_py_packs_them(client):
    value = "caf\u00e9 \r\n$*" + "x" * 5000  # UTF-8, the protocol's own bytes, a long bulk string
    direct_redis.execute(client, "SET", name := key("value"), value)
    assert client.get(name) == value.encode()
    assert direct_redis.pack(("SET", name, value, 7)) == b"".join(
        client.connection_pool.make_connection().pack_command("SET", name, value, 7)
    )
    with pytest.raises(TypeError):
        direct_redis.execute(client, "SET", key("float"), 1.5)  # redis-py would send repr(); nothing here sends floats


def test_the_connection_is_kept_between_commands(client):
    first = direct_redis.execute(client, "CLIENT", "ID")
    assert direct_redis.execute(client, "CLIENT", "ID") == first  # one connection, not one per command


def test_a_connection_redis_closed_is_replaced_and_the_command_still_answers(client):
    lost = direct_redis.execute(client, "CLIENT", "ID")
    client.client_kill_filter(_id=lost)  # as a restart or an idle timeout would end it
    name = key("after")
    assert direct_redis.execute(client, "SET", name, b"1") == b"OK"
    assert client.get(name) == b"1"
    assert direct_redis.execute(client, "CLIENT", "ID") != lost


def test_an_error_reply_is_raised_and_the_connection_stays_usable(client):
    listed = key("list")
    client.rpush(listed, b"a")
    before = direct_redis.execute(client, "CLIENT", "ID")
    with pytest.raises(ResponseError):
        direct_redis.execute(client, "INCR", listed)  # WRONGTYPE
    assert direct_redis.execute(client, "CLIENT", "ID") == before


def test_redis_unreachable_raises_a_redis_error():
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=1, socket_connect_timeout=1)
    with pytest.raises(RedisConnectionError):
        direct_redis.execute(down, "SET", key("down"), b"1", "NX", "EX", 5)


def test_a_script_redis_never_saw_is_loaded_then_run_by_its_digest(client):
    # A script unique to this test, so Redis cannot know its digest yet: EVALSHA fails, EVAL runs and loads it.
    script = Script(None, f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}".encode())
    assert client.script_exists(script.sha) == [False]
    assert direct_redis.run_script(client, script, [key("k")], [7])[1] == b"7"
    assert client.script_exists(script.sha) == [True]
    assert direct_redis.run_script(client, script, ["k"], ["x"]) == [b"k", b"x"]


def test_a_forked_child_never_uses_its_parents_connection(client):
    parent = direct_redis.execute(client, "CLIENT", "ID")
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe and exits at once
        try:
            os.write(write, str(direct_redis.execute(client, "CLIENT", "ID")).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        in_child = int(pipe.read())
    os.waitpid(child, 0)
    assert in_child != parent
    assert direct_redis.execute(client, "CLIENT", "ID") == parent  # and the parent's is still in step
