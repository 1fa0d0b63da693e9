"""The one dispatcher: queue a registered job on RQ, or run it inline when there is no Redis; and its Redis claims."""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from plugin import direct_redis
from plugin.config import Settings
from plugin.jobs.registry import Job

log = logging.getLogger(__name__)


@lru_cache(maxsize=4)
def redis_client(url: str) -> Redis:
    # Short timeouts: the webhook ack path must answer even when Redis hangs.
    return Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


LOW_SUFFIX = "-low"


def low_queue_name(queue_name: str) -> str:
    """The queue of the jobs that must never hold order processing up (decision 0047); keeps a {hash tag}."""
    return queue_name + LOW_SUFFIX


def queue_for(settings: Settings, job: Job | None = None) -> Queue:
    name = low_queue_name(settings.queue_name) if job is not None and job.low else settings.queue_name
    return _queue(settings.redis_url, name)


@lru_cache(maxsize=8)
def _queue(redis_url: str, name: str) -> Queue:
    # One per process, URL and name: a Queue keeps only its name, key and client (kept per URL above), and every
    # count or enqueue asks Redis, so nothing it could hold in between makes an answer stale.
    return Queue(name, connection=redis_client(redis_url))


def main_queue_waiting(settings: Settings) -> bool:
    """Whether a job waits in the main queue: a low-priority job stops early to let a worker take it."""
    return queue_for(settings).count > 0


OTHERS_LOOKED_AT = 20  # queued ids read by other_work_waiting: more than a burst's few follow-up jobs


def other_work_waiting(settings: Settings, besides: tuple[Job, ...]) -> bool:
    """Whether the main queue holds a job that is none of `besides` (told by their `id_prefix`): a drain that stays
    with a burst ends for it. A Redis error says yes: ending is always safe."""
    queue = queue_for(settings)
    try:
        ids = queue.connection.lrange(queue.key, 0, OTHERS_LOOKED_AT - 1)
    except RedisError:
        return True
    prefixes = tuple(job.id_prefix.encode() for job in besides)
    return any(not queued.startswith(prefixes) for queued in ids)


QUEUED, RAN, WAITING, FAILED = "queued", "ran inline", "already waiting", "failed"


def dispatch(settings: Settings, job: Job, *args: Any, claim: str | None = None, claim_seconds: int = 0) -> str:
    """Queue `job(*args)`, or without Redis run it now; call it only after the caller's transaction committed.

    With `claim`, the job is queued only if no other holds that claim (a Redis key that lives `claim_seconds`,
    or until the job clears it), so a burst of signals becomes one queued job: WAITING. A failure is logged,
    never raised (FAILED): what the job would do stays due, and the sweeper comes back to it.
    """
    if settings.inline_jobs:
        try:
            job.inline(settings, *args)
        except Exception:
            log.exception("inline job %s%r failed", job.name, args)
            return FAILED
        return RAN
    try:
        # The claim through plugin.direct_redis: the webhook's ack path signals once per delivery.
        if claim is not None and not direct_redis.execute_packed(
            redis_client(settings.redis_url), _claim_command(settings.queue_name, claim, claim_seconds)
        ):
            return WAITING
        queue_for(settings, job).enqueue(
            job.name, *args, job_timeout=job.timeout, result_ttl=job.result_ttl, failure_ttl=job.failure_ttl,
            job_id=f"{job.id_prefix}{uuid.uuid4().hex}",
        )  # fmt: skip
        return QUEUED
    except RedisError as error:
        log.warning("could not queue %s%r (%s); the sweeper will", job.name, args, error)
        return FAILED


def clear_claim(settings: Settings, claim: str) -> None:
    """Called by a job before it looks for work, so later changes queue a fresh job."""
    redis_client(settings.redis_url).delete(claim_key(settings, claim))


def claimed(settings: Settings, claim: str) -> bool:
    return bool(redis_client(settings.redis_url).exists(claim_key(settings, claim)))


def hold(settings: Settings, claim: str, seconds: int) -> None:
    redis_client(settings.redis_url).set(claim_key(settings, claim), b"1", ex=seconds)


def claim_key(settings: Settings, claim: str) -> str:
    return _claim_key(settings.queue_name, claim)


def _claim_key(queue_name: str, claim: str) -> str:
    return f"loyalty:{queue_name}:{claim}-signal"


@lru_cache(maxsize=64)
def _claim_command(queue_name: str, claim: str, seconds: int) -> bytes:
    """The claim's `SET key 1 NX EX seconds`, packed once: the inbox signal sends the same one for every delivery."""
    return direct_redis.pack(("SET", _claim_key(queue_name, claim), b"1", "NX", "EX", seconds))
