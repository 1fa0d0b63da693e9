"""Background jobs: one registry of job functions (registry.py, filled by tasks.py) and one dispatcher (dispatch.py).

Callers queue work through the functions re-exported here, after their transaction commits. The job functions
are re-exported too because RQ stores a job by its dotted path: jobs queued before the move into this package
are named "plugin.jobs.drain_inbox" and the like, and must still resolve when a newer worker picks them up.
"""

from plugin.jobs.registry import JOBS, Job
from plugin.jobs.tasks import (
    check_webhooks,
    deliver_events,
    drain_inbox,
    enqueue_drain,
    enqueue_expiry,
    enqueue_issue,
    enqueue_locale_read,
    enqueue_reconcile,
    enqueue_webhook_check,
    expire_points,
    issue_code,
    push_balances,
    reconcile_shop,
    signal_balances,
    signal_events,
    signal_inbox,
    sweep,
)

# With the callers' functions, the names RQ jobs queued by earlier deploys carry (plugin.jobs.drain_inbox ...).
__all__ = [
    "JOBS",
    "Job",
    "check_webhooks",
    "deliver_events",
    "drain_inbox",
    "enqueue_drain",
    "enqueue_expiry",
    "enqueue_issue",
    "enqueue_locale_read",
    "enqueue_reconcile",
    "enqueue_webhook_check",
    "expire_points",
    "issue_code",
    "push_balances",
    "reconcile_shop",
    "signal_balances",
    "signal_events",
    "signal_inbox",
    "sweep",
]
