"""RQ job functions: thin wrappers that read settings, call the core, and report what they did."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq.timeouts import JobTimeoutException

from plugin import inbox
from plugin.config import Settings
from plugin.jobs import dispatch as queue
from plugin.services import balance_push, privacy, reconcile, redemption, subscriptions

log = logging.getLogger(__name__)


def drain_inbox() -> dict[str, int]:
    """Worker entry point: process every waiting delivery."""
    return drain_inbox_with(Settings.from_env())


def drain_inbox_with(settings: Settings) -> dict[str, int]:
    on_full_batch = None
    if not settings.inline_jobs:
        queue.clear_signal(settings)

        def on_full_batch() -> None:
            queue.signal_inbox(settings)

    outcomes = inbox.drain(
        settings.database_url,
        settings.inbox_batch_size,
        on_full_batch,
        confirm_uninstall=lambda session, shop: privacy.uninstall_refusal(settings, session, shop),
        # RQ raises its timeout inside the job: it must end the drain (rolling the batch back, the attempt
        # already counted), not be parked as the failure of whichever delivery it interrupted.
        stop_on=(JobTimeoutException,),
    )
    if outcomes:
        log.info("inbox drained: %s", dict(outcomes))
    if outcomes.get(inbox.PROCESSED):
        queue.signal_balances(settings)
    return dict(outcomes)


def issue_code(redemption_id: int) -> str:
    """Worker entry point: create a redemption's discount code in the shop."""
    settings = Settings.from_env()
    queue.clear_signal(settings, f"issue:{redemption_id}")  # started: the lease guards it now, not the queue
    status = redemption.issue(settings, redemption_id)
    if status == redemption.FAILED:
        queue.signal_balances(settings)  # the points came back
    return status


def push_balances() -> int:
    """Worker entry point: write changed balances to the shops' customer metafields."""
    return push_balances_with(Settings.from_env())


def push_balances_with(settings: Settings) -> int:
    if settings.inline_jobs:
        written = balance_push.push_balances(settings, redemption.admin_client)
    else:
        queue.clear_signal(settings, "balances")
        written = balance_push.push_balances(
            settings, redemption.admin_client, queue.push_resting(settings), queue.push_failed(settings)
        )
    if written:
        log.info("pushed %d balances to customer metafields", written)
    return written


def check_webhooks(shop_id: int) -> list[str]:
    """Worker entry point: re-create any webhook subscription the shop lost."""
    return check_webhooks_with(Settings.from_env(), shop_id)


def check_webhooks_with(settings: Settings, shop_id: int) -> list[str]:
    return subscriptions.ensure(settings, shop_id, redemption.admin_client)


def reconcile_shop(shop_id: int) -> dict:
    """Worker entry point: apply the shop's orders updated since its last reconciliation."""
    return reconcile_shop_with(Settings.from_env(), shop_id)


def reconcile_shop_with(settings: Settings, shop_id: int) -> dict:
    report = reconcile.run(settings, shop_id)
    if report.points:
        queue.signal_balances(settings)
    return report.to_json()


def sweep(settings: Settings) -> tuple[int, int]:
    """Requeue what waited too long: deliveries nobody signalled, and redemptions whose job was lost.

    Returns (waiting deliveries, redemptions requeued: those whose job is not already waiting in the queue).
    """
    patience = timedelta(seconds=settings.sweep_after_seconds)
    count = inbox.waiting(settings.database_url, older_than=patience)
    if count:
        if settings.inline_jobs:
            drain_inbox_with(settings)
        else:
            queue.enqueue_drain(settings)
    stranded = redemption.unsettled(settings.database_url, older_than=patience)
    requeued = sum(queue.enqueue_issue(settings, redemption_id) for redemption_id in stranded)
    if balance_push.any_due(settings.database_url):
        queue.signal_balances(settings)
    if settings.shopify_app_url:
        for shop_id in subscriptions.due(settings):
            queue.enqueue_webhook_check(settings, shop_id)
    if settings.reconcile_every_minutes > 0:
        for shop_id in reconcile.due(settings, timedelta(minutes=settings.reconcile_every_minutes)):
            queue.enqueue_reconcile(settings, shop_id)
    return count, requeued
