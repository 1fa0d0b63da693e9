"""The background jobs: their bodies, their registration, and the calls that queue them (one module, so no cycle).

Each job has an entry point an RQ worker calls (it reads settings from the environment) and a `*_with` body
that takes settings, which inline mode and the follow-ups use. Queue a job only after the transaction that
made its work has committed: the job runs in another transaction, maybe before this one would have finished.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from rq.timeouts import JobTimeoutException

from plugin import inbox, platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.jobs import drain_stint, shutdown
from plugin.jobs.dispatch import (
    FAILED,
    QUEUED,
    claimed,
    clear_claim,
    dispatch,
    hold,
    main_queue_waiting,
    other_work_waiting,
)
from plugin.jobs.registry import Job, register
from plugin.models import Shop
from plugin.services import (
    balance_push,
    event_delivery,
    expiry,
    privacy,
    product_lookup,
    reconcile,
    redemption,
    referrals,
    report_rollups,
    reward_grants,
    shop_locale,
    subscriptions,
    tier_push,
    tier_sets,
    tier_sweep,
)
from plugin.services.milestones import birthdays

log = logging.getLogger(__name__)

SIGNAL_TTL_SECONDS = 10  # if a queued job is lost, the next change re-signals after this long
RECONCILE_CLAIM_SECONDS = 15 * 60
PRODUCT_LOOKUP_CLAIM_SECONDS = 60
TIER_SWEEP_CLAIM_SECONDS = 60 * 60  # the period-end recompute runs at most hourly, whatever the sweeps find
PUSH_REST_SECONDS = 15 * 60  # a shop that refused a balance push is left alone this long
EXPIRY_CLAIM_SECONDS = 10 * 60  # a killed expiry run is queued again after this; the run resumes where it stopped
WEEK = 7 * 86400
BIRTHDAY_CLAIM_SECONDS = 3600


# --- the jobs ---------------------------------------------------------------------------------------------------


def drain_inbox() -> dict[str, int]:
    """Worker entry point: process every waiting delivery."""
    return drain_inbox_with(Settings.from_env())


def drain_inbox_with(settings: Settings) -> dict[str, int]:
    """Drain the inbox; a job that met a burst stays with it a while (drain_stint.Stint), queueing the follow-up
    jobs (the balance push, events, grants and tiers) as it goes and once more at its end, unless it was cut short
    behind a backlog (decision 0088)."""
    on_full_batch = None
    stint_seconds = 0.0
    if not settings.inline_jobs:
        clear_claim(settings, "inbox")
        stint_seconds = settings.drain_stint_seconds

        def on_full_batch() -> None:  # rows other deliveries committed: another worker may join in now
            signal_inbox(settings)

    stint = drain_stint.Stint(
        stint_seconds,
        settings.inbox_batch_size,
        lambda: other_work_waiting(settings, BURST_JOBS),
        stopping=shutdown.requested,
    )
    outcomes: Counter[str] = Counter()
    try:
        while True:
            drained = inbox.drain(
                settings.database_url,
                settings.inbox_batch_size,
                on_full_batch,
                confirm_uninstall=privacy.uninstall_check(settings),
                # RQ raises its timeout inside the job: it must end the drain (rolling the batch back, the attempt
                # already counted), not be parked as the failure of whichever delivery it interrupted.
                stop_on=(JobTimeoutException,),
                set_based=settings.inbox_set_based,
                retry_wait=timedelta(seconds=settings.inbox_retry_wait_seconds),
                cut_short=stint.cut_short,
            )
            outcomes += drained
            stint.drained(drained.get(inbox.PROCESSED, 0))
            if stint.backlog:  # cut short with deliveries waiting: a fresh job takes them once the other work has one
                signal_inbox(settings)
                break
            if stint.signal_due():
                _signal_after_drain(settings)
                stint.signalled()
            if not stint.go_on():
                break
        if outcomes:
            log.info("inbox drained: %s (%s)", dict(outcomes), stint.ended)
    finally:
        # A later drain of the stint that fails leaves the earlier ones' committed work told all the same. Behind a
        # backlog the follow-ups wait for the job that empties the inbox (or the sweeper): each push then covers the
        # whole backlog's members once, and pushes run outside the burst, as when one drain took the whole backlog.
        if stint.unsignalled and not stint.backlog:
            _signal_after_drain(settings)
    return dict(outcomes)


def _signal_after_drain(settings: Settings) -> None:
    """The follow-up jobs of processed deliveries: balances moved and events were recorded; grants and tiers if due."""
    signal_balances(settings)
    signal_events(settings)
    signal_after_drain_if_due(settings)


def signal_after_drain_if_due(settings: Settings) -> None:
    """Queue the grant and tier pushes a drain made due, and only those: most shops' drains make neither.

    Each look is the job's own first query (an index probe), asked after the drain's commit, so what the drain made
    due is seen; a queued job that finds nothing still forks a work horse (about 25 ms of worker CPU, decision 0068).
    A look that fails queues its job anyway: the drain's work is committed, and a job that finds nothing is cheap.
    """
    for signal, due in (
        (signal_grants, lambda: any(reward_grants.due(settings.database_url, limit=1))),
        (signal_tiers, lambda: tier_push.any_due(settings.database_url)),
    ):
        try:
            wanted = due()
        except Exception:  # a database error after the commit must not fail the drain job that did the work
            log.exception("could not tell whether %s is due; queuing it", signal.__name__)
            wanted = True
        if wanted:
            signal(settings)


def issue_code(redemption_id: int, shop_id: int | None = None) -> str:
    """Worker entry point: create a redemption's discount code in the shop.

    Jobs queued by deploys before 0.x carry no shop id; they still run (their look-up goes to every shard).
    """
    return issue_code_with(Settings.from_env(), redemption_id, shop_id)


def issue_code_with(settings: Settings, redemption_id: int, shop_id: int | None = None) -> str:
    if not settings.inline_jobs:
        clear_claim(settings, f"issue:{redemption_id}")  # started: the lease guards it now, not the queue
    status = redemption.issue(settings, redemption_id, shop_id=shop_id)
    if status == redemption.FAILED and not settings.inline_jobs:
        signal_balances(settings)  # the points came back (inline, the sweeper finds them due)
    return status


def push_balances() -> int:
    """Worker entry point: write changed balances to the shops' customer metafields."""
    return push_balances_with(Settings.from_env())


def push_balances_with(settings: Settings) -> int:
    if settings.inline_jobs:
        written = balance_push.push_balances(settings, platforms.admin_client)
    else:
        clear_claim(settings, "balances")
        written = balance_push.push_balances(
            settings,
            platforms.admin_client,
            lambda shop_id: claimed(settings, f"push-rest:{shop_id}"),
            lambda shop_id: hold(settings, f"push-rest:{shop_id}", PUSH_REST_SECONDS),
        )
    if written:
        log.info("pushed %d balances to customer metafields", written)
    return written


def push_tiers() -> int:
    """Worker entry point: write changed tiers to the shops' customer tags and `loyalty.tier` metafields."""
    return push_tiers_with(Settings.from_env())


def push_tiers_with(settings: Settings) -> int:
    if settings.inline_jobs:
        written = tier_push.push_tiers(settings, platforms.admin_client)
    else:
        clear_claim(settings, "tiers")
        written = tier_push.push_tiers(
            settings,
            platforms.admin_client,
            lambda shop_id: claimed(settings, f"tier-push-rest:{shop_id}"),
            lambda shop_id: hold(settings, f"tier-push-rest:{shop_id}", PUSH_REST_SECONDS),
        )
    if written:
        log.info("pushed %d tiers to customer tags and metafields", written)
    return written


def end_tier_periods() -> int:
    """Worker entry point: recompute members whose tier's kept-until or paid-until date has passed."""
    return end_tier_periods_with(Settings.from_env())


def end_tier_periods_with(settings: Settings) -> int:
    moved = tier_sweep.run(settings.database_url)
    if moved:
        signal_tiers(settings)
        signal_balances(settings)
    return moved


def apply_tiers(shop_id: int) -> int:
    """Worker entry point: move every member of the shop to its current tier programme."""
    return apply_tiers_with(Settings.from_env(), shop_id)


def apply_tiers_with(settings: Settings, shop_id: int) -> int:
    moved = tier_sets.apply(settings.database_url, shop_id)
    if moved:
        signal_tiers(settings)
        signal_balances(settings)
    return moved


def check_webhooks(shop_id: int) -> list[str]:
    """Worker entry point: re-create any webhook subscription the shop lost."""
    return check_webhooks_with(Settings.from_env(), shop_id)


def check_webhooks_with(settings: Settings, shop_id: int) -> list[str]:
    return subscriptions.ensure(settings, shop_id, platforms.admin_client)


def reconcile_shop(shop_id: int) -> dict:
    """Worker entry point: apply the shop's orders updated since its last reconciliation."""
    return reconcile_shop_with(Settings.from_env(), shop_id)


def reconcile_shop_with(settings: Settings, shop_id: int) -> dict:
    report = reconcile.run(settings, shop_id)
    if report.points:
        signal_balances(settings)
    return report.to_json()


def look_up_products(shop_id: int) -> int:
    """Worker entry point: fetch the products a shop's paid orders wait for, and settle those orders."""
    return look_up_products_with(Settings.from_env(), shop_id)


def look_up_products_with(settings: Settings, shop_id: int) -> int:
    posted = product_lookup.look_up(settings, shop_id, platforms.admin_client)
    if posted:
        signal_balances(settings)
    return posted


def award_birthdays() -> dict[str, int]:
    """Worker entry point: award the birthday bonus to every member whose birthday is today in their shop's zone."""
    return award_birthdays_with(Settings.from_env())


def award_birthdays_with(settings: Settings) -> dict[str, int]:
    report = birthdays.award_all(settings.database_url)
    if report["awarded"]:
        signal_balances(settings)
    return report


def read_shop_locale(shop_id: int) -> str | None:
    """Worker entry point: read the shop's primary locale, so explanations read in the shop's language."""
    return read_shop_locale_with(Settings.from_env(), shop_id)


def read_shop_locale_with(settings: Settings, shop_id: int) -> str | None:
    return shop_locale.fetch(settings, shop_id, platforms.admin_client)


def issue_referral_code(shop_id: int, visit_id: str) -> str:
    """Worker entry point: create a referred friend's discount code in the shop."""
    return issue_referral_code_with(Settings.from_env(), shop_id, visit_id)


def issue_referral_code_with(settings: Settings, shop_id: int, visit_id: str) -> str:
    if not settings.inline_jobs:
        clear_claim(settings, f"referral-code:{shop_id}:{visit_id}")  # started: the lease guards it now
    return referrals.issue(settings, shop_id, visit_id, platforms.admin_client)


def settle_referrals(shop_id: int) -> int:
    """Worker entry point: give the advocates' points whose friends' orders stood their pending period."""
    return settle_referrals_with(Settings.from_env(), shop_id)


def settle_referrals_with(settings: Settings, shop_id: int) -> int:
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        settled = referrals.settle_due(session, shop) if shop is not None else 0
    if settled:
        signal_balances(settings)
        signal_grants(settings)  # an advocate's reward grant waits to be issued
    return settled


def settle_grants() -> dict[str, int]:
    """Worker entry point: issue the reward grants waiting, and do the take-backs requested."""
    return settle_grants_with(Settings.from_env())


def settle_grants_with(settings: Settings) -> dict[str, int]:
    """Each grant goes through its own leased, look-up-first job body, so two runs at once never double."""
    if not settings.inline_jobs:
        clear_claim(settings, "grants")
    to_issue, to_revoke = reward_grants.due(settings.database_url)
    outcomes: dict[str, int] = {}
    for shop_id, redemption_id in to_issue:
        status = redemption.issue(settings, redemption_id, shop_id=shop_id)
        outcomes[f"issue:{status}"] = outcomes.get(f"issue:{status}", 0) + 1
    for shop_id, redemption_id in to_revoke:
        status = reward_grants.revoke(settings, redemption_id, shop_id)
        outcomes[f"revoke:{status}"] = outcomes.get(f"revoke:{status}", 0) + 1
    if outcomes.get("revoke:taken_back"):
        signal_balances(settings)
    if outcomes:
        log.info("reward grants: %s", outcomes)
    return outcomes


def deliver_events() -> dict[str, int]:
    """Worker entry point: fan out new outbox events and send the due deliveries to merchant endpoints."""
    return deliver_events_with(Settings.from_env())


def deliver_events_with(settings: Settings) -> dict[str, int]:
    if settings.inline_jobs:
        return event_delivery.deliver(settings)
    clear_claim(settings, "events")
    # Between batches: a job waiting in the main queue (an inbox drain) gets this worker, and so does the worker's
    # shutdown (decision 0093); the delivery goes on in a fresh low-priority job, which workers take once the main
    # queue is empty.
    counts = event_delivery.deliver(settings, should_yield=lambda: shutdown.requested() or main_queue_waiting(settings))
    if counts.pop(event_delivery.YIELDED, 0):
        signal_events(settings)
    if counts:
        log.info("events delivered: %s", counts)
    return counts


def expire_points(shop_id: int) -> dict:
    """Worker entry point: the shop's expiry run for its current local day (expiries and reminders)."""
    return expire_points_with(Settings.from_env(), shop_id)


def expire_points_with(settings: Settings, shop_id: int) -> dict:
    report = expiry.run_shop(settings.database_url, shop_id)
    if report.points_expired:
        signal_balances(settings)
    if report.points_expired or report.reminders:
        signal_events(settings)
    return report.to_json()


# --- the registry ------------------------------------------------------------------------------------------------

DRAIN_INBOX = register(Job(drain_inbox, drain_inbox_with, timeout=900, result_ttl=60, failure_ttl=WEEK))
ISSUE_CODE = register(Job(issue_code, issue_code_with, timeout=120, result_ttl=300, failure_ttl=WEEK))
PUSH_BALANCES = register(Job(push_balances, push_balances_with, timeout=600, result_ttl=60, failure_ttl=86400))
PUSH_TIERS = register(Job(push_tiers, push_tiers_with, timeout=600, result_ttl=60, failure_ttl=86400))
END_TIER_PERIODS = register(
    Job(end_tier_periods, end_tier_periods_with, timeout=1800, result_ttl=300, failure_ttl=86400)
)
APPLY_TIERS = register(Job(apply_tiers, apply_tiers_with, timeout=3600, result_ttl=300, failure_ttl=86400))
CHECK_WEBHOOKS = register(Job(check_webhooks, check_webhooks_with, timeout=120, result_ttl=300))
RECONCILE_SHOP = register(Job(reconcile_shop, reconcile_shop_with, timeout=1800, result_ttl=300, failure_ttl=86400))
# Low priority (decision 0047): a queued drain of the inbox goes first, and a running delivery stops for it.
DELIVER_EVENTS = register(
    Job(deliver_events, deliver_events_with, timeout=900, result_ttl=60, failure_ttl=86400, low=True)
)
EXPIRE_POINTS = register(Job(expire_points, expire_points_with, timeout=3600, result_ttl=300, failure_ttl=86400))
LOOK_UP_PRODUCTS = register(
    Job(look_up_products, look_up_products_with, timeout=300, result_ttl=300, failure_ttl=86400)
)
AWARD_BIRTHDAYS = register(Job(award_birthdays, award_birthdays_with, timeout=1800, result_ttl=300, failure_ttl=86400))
READ_SHOP_LOCALE = register(Job(read_shop_locale, read_shop_locale_with, timeout=120, result_ttl=300))

ISSUE_REFERRAL_CODE = register(
    Job(issue_referral_code, issue_referral_code_with, timeout=120, result_ttl=300, failure_ttl=WEEK)
)
SETTLE_GRANTS = register(Job(settle_grants, settle_grants_with, timeout=600, result_ttl=60, failure_ttl=86400))
# A burst's own jobs: the drain and the follow-ups it queues, none of which a shopper waits on. A drain staying
# with a burst (drain_stint) does not end for them; any other job waiting for a worker ends it (decision 0086).
BURST_JOBS = (DRAIN_INBOX, PUSH_BALANCES, PUSH_TIERS, SETTLE_GRANTS)
SETTLE_REFERRALS = register(
    Job(settle_referrals, settle_referrals_with, timeout=300, result_ttl=300, failure_ttl=86400)
)


# --- queueing them (after the commit) ---------------------------------------------------------------------------


def signal_inbox(settings: Settings) -> bool:
    """Tell the workers there is inbox work; at most one drain job is queued for a burst of deliveries.

    Returns False when the signal could not be given (Redis down): the delivery is safe in the inbox and
    the sweeper will enqueue it later.
    """
    return dispatch(settings, DRAIN_INBOX, claim="inbox", claim_seconds=SIGNAL_TTL_SECONDS) != FAILED


def enqueue_drain(settings: Settings) -> None:
    """Queue a drain whatever the signal says (the sweeper, after deliveries waited too long)."""
    dispatch(settings, DRAIN_INBOX)


def enqueue_issue(settings: Settings, redemption_id: int, shop_id: int | None = None) -> bool:
    """Queue the creation of a redemption's code; call it after the redemption has committed.

    Returns whether a job was queued (or run inline): not when one is already waiting in the queue.
    """
    # One queued job per redemption: a redemption whose job waits its turn has no lease yet, so every sweep
    # (of every worker) would find it stranded and queue it again. The job drops the claim when it starts,
    # from then on its lease guards the redemption; a job lost before starting is queued again after a lease.
    claim = f"issue:{redemption_id}"
    lease = settings.redemption_lease_seconds
    args = (redemption_id,) if shop_id is None else (redemption_id, shop_id)  # the shop routes its look-ups
    outcome = dispatch(settings, ISSUE_CODE, *args, claim=claim, claim_seconds=lease)
    return outcome == QUEUED or settings.inline_jobs  # inline, it ran: a failure leaves it pending for the sweeper


def signal_balances(settings: Settings) -> None:
    """Balances changed: queue one push of the shop's metafields for a whole burst of changes."""
    dispatch(settings, PUSH_BALANCES, claim="balances", claim_seconds=SIGNAL_TTL_SECONDS)


def signal_grants(settings: Settings) -> None:
    """Reward grants may wait to be issued or taken back: queue one job for a burst (it finds them in the database)."""
    dispatch(settings, SETTLE_GRANTS, claim="grants", claim_seconds=SIGNAL_TTL_SECONDS)


def signal_tiers(settings: Settings) -> None:
    """Tiers may have moved: queue one push of customer tags and metafields for a whole burst of moves."""
    dispatch(settings, PUSH_TIERS, claim="tiers", claim_seconds=SIGNAL_TTL_SECONDS)


def enqueue_tier_period_ends(settings: Settings) -> None:
    """Recompute members whose tier's dates passed; at most one queued job per TIER_SWEEP_CLAIM_SECONDS."""
    dispatch(settings, END_TIER_PERIODS, claim="tier-periods", claim_seconds=TIER_SWEEP_CLAIM_SECONDS)


def enqueue_apply_tiers(settings: Settings, shop_id: int) -> None:
    """Move the shop's members to its newly saved tier programme (in batches; intake goes on meanwhile)."""
    dispatch(settings, APPLY_TIERS, shop_id)


def enqueue_webhook_check(settings: Settings, shop_id: int) -> None:
    """Check (and repair) a shop's webhook subscriptions: after install, and periodically."""
    dispatch(settings, CHECK_WEBHOOKS, shop_id)


def enqueue_locale_read(settings: Settings, shop_id: int) -> None:
    """Read the shop's primary locale: after install (and on demand from the CLI)."""
    dispatch(settings, READ_SHOP_LOCALE, shop_id)


def enqueue_reconcile(settings: Settings, shop_id: int) -> None:
    """Fetch the shop's recently updated orders and apply what the webhooks may have missed."""
    # At most one job per shop per RECONCILE_CLAIM_SECONDS, however often the sweeper finds the shop due.
    dispatch(settings, RECONCILE_SHOP, shop_id, claim=f"reconcile:{shop_id}", claim_seconds=RECONCILE_CLAIM_SECONDS)


def enqueue_product_lookup(settings: Settings, shop_id: int) -> None:
    """Fetch the products a shop's paid orders wait for; at most one queued job per shop a minute."""
    dispatch(
        settings, LOOK_UP_PRODUCTS, shop_id, claim=f"products:{shop_id}", claim_seconds=PRODUCT_LOOKUP_CLAIM_SECONDS
    )


def enqueue_birthdays(settings: Settings) -> None:
    """The birthday awards, at most once an hour (each shop's day is reached in its own zone; a rerun posts nothing)."""
    if not settings.inline_jobs:  # inline (tests, the embedded default) they run from `loyalty milestones birthdays`
        dispatch(settings, AWARD_BIRTHDAYS, claim="birthdays", claim_seconds=BIRTHDAY_CLAIM_SECONDS)


def signal_events(settings: Settings) -> None:
    """Events were recorded or deliveries fell due: queue one delivery job for the burst."""
    dispatch(settings, DELIVER_EVENTS, claim="events", claim_seconds=SIGNAL_TTL_SECONDS)


def enqueue_expiry(settings: Settings, shop_id: int) -> None:
    """Run a shop's expiry for its local day; at most one queued job per shop in EXPIRY_CLAIM_SECONDS."""
    dispatch(settings, EXPIRE_POINTS, shop_id, claim=f"expiry:{shop_id}", claim_seconds=EXPIRY_CLAIM_SECONDS)


def sweep(settings: Settings) -> tuple[int, int]:
    """Requeue what waited too long: deliveries nobody signalled, and redemptions whose job was lost.

    Returns (waiting deliveries, redemptions requeued: those whose job is not already waiting in the queue).
    """
    patience = timedelta(seconds=settings.sweep_after_seconds)
    count = inbox.waiting(settings.database_url, older_than=patience)
    if count:
        enqueue_drain(settings)
    stranded = redemption.unsettled(settings.database_url, older_than=patience)
    requeued = sum(enqueue_issue(settings, redemption_id, shop_id) for shop_id, redemption_id in stranded)
    if balance_push.any_due(settings.database_url):
        signal_balances(settings)
    if any(reward_grants.due(settings.database_url, limit=1)):  # grants and take-backs wait in the database
        signal_grants(settings)
    if event_delivery.any_due(settings.database_url):  # outgoing events wait in the database, never in Redis
        signal_events(settings)
    for shop_id in expiry.due_shops(settings.database_url):  # each shop's day, in its own time zone
        enqueue_expiry(settings, shop_id)
    if tier_push.any_due(settings.database_url):
        signal_tiers(settings)
    if tier_sweep.any_due(settings.database_url):
        enqueue_tier_period_ends(settings)
    if settings.shopify_app_url:
        for shop_id in subscriptions.due(settings):
            enqueue_webhook_check(settings, shop_id)
    for shop_id, visit_id in referrals.unsettled(settings.database_url, older_than=patience):
        enqueue_referral_code(settings, shop_id, visit_id)
    with transaction(settings.database_url) as session:
        due = referrals.due_shops(session)
    for shop_id in due:
        enqueue_referral_settle(settings, shop_id)
    for shop_id in product_lookup.due(settings):
        enqueue_product_lookup(settings, shop_id)
    if settings.reconcile_every_minutes > 0:
        for shop_id in reconcile.due(settings, timedelta(minutes=settings.reconcile_every_minutes)):
            enqueue_reconcile(settings, shop_id)
    enqueue_birthdays(settings)

    report_rollups.compact_all(settings.database_url)  # keeps the reports' tail of per-posting deltas short
    return count, requeued


def enqueue_referral_code(settings: Settings, shop_id: int, visit_id: str) -> bool:
    """Queue the creation of a referred friend's code, after the visit has committed; one queued job per code."""
    claim = f"referral-code:{shop_id}:{visit_id}"
    outcome = dispatch(
        settings, ISSUE_REFERRAL_CODE, shop_id, visit_id, claim=claim, claim_seconds=settings.redemption_lease_seconds
    )
    return outcome == QUEUED or settings.inline_jobs


def enqueue_referral_settle(settings: Settings, shop_id: int) -> None:
    """Post the referral rewards whose pending period ended; at most one queued job per shop a minute."""
    dispatch(settings, SETTLE_REFERRALS, shop_id, claim=f"referral-settle:{shop_id}", claim_seconds=60)
