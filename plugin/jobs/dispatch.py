"""RQ wiring: the coalesced "inbox has work" signal, the drain job, and inline execution without Redis."""

from __future__ import annotations

import logging
from functools import lru_cache

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue

from plugin.config import Settings

log = logging.getLogger(__name__)

SIGNAL_TTL_SECONDS = 10  # if a queued drain job is lost, the next delivery re-signals after this long
DRAIN_JOB = "plugin.jobs.tasks.drain_inbox"
ISSUE_JOB = "plugin.jobs.tasks.issue_code"
PUSH_JOB = "plugin.jobs.tasks.push_balances"
WEBHOOK_CHECK_JOB = "plugin.jobs.tasks.check_webhooks"
RECONCILE_JOB = "plugin.jobs.tasks.reconcile_shop"
RECONCILE_CLAIM_SECONDS = 15 * 60


@lru_cache(maxsize=4)
def redis_client(url: str) -> Redis:
    # Short timeouts: the webhook ack path must answer even when Redis hangs.
    return Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def queue_for(settings: Settings) -> Queue:
    return Queue(settings.queue_name, connection=redis_client(settings.redis_url))


def signal_inbox(settings: Settings) -> bool:
    """Tell the workers there is inbox work; at most one drain job is queued for a burst of deliveries.

    Returns False when the signal could not be given (Redis down): the delivery is safe in the inbox and
    the sweeper will enqueue it later.
    """
    if settings.inline_jobs:
        from plugin.jobs import tasks as jobs  # local import: jobs imports this module

        try:
            jobs.drain_inbox_with(settings)
        except Exception:  # the delivery is stored; `loyalty requeue` or a replay will finish it
            log.exception("inline inbox drain failed")
            return False
        return True
    try:
        if redis_client(settings.redis_url).set(_signal_key(settings), b"1", nx=True, ex=SIGNAL_TTL_SECONDS):
            enqueue_drain(settings)
        return True
    except RedisError as error:
        log.warning("could not signal inbox work (%s); the sweeper will pick it up", error)
        return False


def enqueue_drain(settings: Settings) -> None:
    queue_for(settings).enqueue(DRAIN_JOB, job_timeout=900, result_ttl=60, failure_ttl=7 * 86400)


def enqueue_issue(settings: Settings, redemption_id: int) -> bool:
    """Queue the creation of a redemption's code; call it after the redemption has committed.

    Returns whether a job was queued (or run inline): not when one is already waiting in the queue.
    """
    if settings.inline_jobs:
        from plugin.services import redemption  # local import: redemption imports the ledger, which is heavier

        try:
            redemption.issue(settings, redemption_id)
        except Exception:  # still pending: the sweeper (`loyalty requeue`) retries it
            log.exception("inline code creation for redemption %s failed", redemption_id)
        return True
    try:
        # One queued job per redemption: a redemption whose job waits its turn has no lease yet, so every sweep
        # (of every worker) would find it stranded and queue it again. The job drops the claim when it starts,
        # from then on its lease guards the redemption; a job lost before starting is queued again after a lease.
        claim = _signal_key(settings, f"issue:{redemption_id}")
        if redis_client(settings.redis_url).set(claim, b"1", nx=True, ex=settings.redemption_lease_seconds):
            queue_for(settings).enqueue(
                ISSUE_JOB, redemption_id, job_timeout=120, result_ttl=300, failure_ttl=7 * 86400
            )
            return True
    except RedisError as error:
        log.warning("could not queue redemption %s (%s); the sweeper will", redemption_id, error)
    return False


def signal_balances(settings: Settings) -> None:
    """Balances changed: queue one push of the shop's metafields for a whole burst of changes."""
    if settings.inline_jobs:
        from plugin.jobs import tasks as jobs

        try:
            jobs.push_balances_with(settings)
        except Exception:  # still due: the sweeper signals again
            log.exception("inline balance push failed")
        return
    try:
        if redis_client(settings.redis_url).set(
            _signal_key(settings, "balances"), b"1", nx=True, ex=SIGNAL_TTL_SECONDS
        ):
            queue_for(settings).enqueue(PUSH_JOB, job_timeout=600, result_ttl=60, failure_ttl=86400)
    except RedisError as error:
        log.warning("could not signal a balance push (%s); the sweeper will", error)


def enqueue_webhook_check(settings: Settings, shop_id: int) -> None:
    """Check (and repair) a shop's webhook subscriptions: after install, and periodically."""
    if settings.inline_jobs:
        from plugin.jobs import tasks as jobs

        try:
            jobs.check_webhooks_with(settings, shop_id)
        except Exception:  # the periodic check tries again
            log.exception("webhook subscription check for shop %s failed", shop_id)
        return
    try:
        queue_for(settings).enqueue(WEBHOOK_CHECK_JOB, shop_id, job_timeout=120, result_ttl=300)
    except RedisError as error:
        log.warning("could not queue the webhook check for shop %s (%s)", shop_id, error)


def enqueue_reconcile(settings: Settings, shop_id: int) -> None:
    """Fetch the shop's recently updated orders and apply what the webhooks may have missed."""
    if settings.inline_jobs:
        from plugin.jobs import tasks as jobs

        try:
            jobs.reconcile_shop_with(settings, shop_id)
        except Exception:  # reconciled_at did not move: the next sweep tries again
            log.exception("order reconciliation for shop %s failed", shop_id)
        return
    try:
        # At most one job per shop per RECONCILE_CLAIM_SECONDS, however often the sweeper finds the shop due.
        claim = _signal_key(settings, f"reconcile:{shop_id}")
        if redis_client(settings.redis_url).set(claim, b"1", nx=True, ex=RECONCILE_CLAIM_SECONDS):
            queue_for(settings).enqueue(RECONCILE_JOB, shop_id, job_timeout=1800, result_ttl=300, failure_ttl=86400)
    except RedisError as error:
        log.warning("could not queue the order reconciliation for shop %s (%s)", shop_id, error)


PUSH_REST_SECONDS = 15 * 60  # a shop that refused a balance push is left alone this long


def push_resting(settings: Settings):
    """Whether a shop's balance pushes are resting after a failure (so a revoked token is not hammered)."""
    return lambda shop_id: bool(redis_client(settings.redis_url).exists(_signal_key(settings, f"push-rest:{shop_id}")))


def push_failed(settings: Settings):
    return lambda shop_id: redis_client(settings.redis_url).set(
        _signal_key(settings, f"push-rest:{shop_id}"), b"1", ex=PUSH_REST_SECONDS
    )


def clear_signal(settings: Settings, what: str = "inbox") -> None:
    """Called by a job before it looks for work, so later changes signal a fresh job."""
    redis_client(settings.redis_url).delete(_signal_key(settings, what))


def _signal_key(settings: Settings, what: str = "inbox") -> str:
    return f"loyalty:{settings.queue_name}:{what}-signal"
