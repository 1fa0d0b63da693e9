"""The RQ worker class for the Procfile: a normal RQ worker that also runs the inbox sweeper."""

from __future__ import annotations

import logging

from rq import Worker

from plugin import jobs, logs
from plugin.config import Settings

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 15
# RQ runs maintenance only between dequeues, and a dequeue blocks for worker_ttl - 15 seconds.
MAX_WORKER_TTL_SECONDS = 35


class LoyaltyWorker(Worker):
    """`rq worker -w plugin.worker.LoyaltyWorker loyalty`: sweeps the inbox every few seconds when idle."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        logs.configure()
        # The rq CLI always passes its own defaults (420 s, 600 s); cap them so the sweeper runs often.
        self.worker_ttl = min(self.worker_ttl, MAX_WORKER_TTL_SECONDS)
        self.maintenance_interval = min(self.maintenance_interval, SWEEP_INTERVAL_SECONDS)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            waiting, stranded = jobs.sweep(Settings.from_env())
            if waiting or stranded:
                log.info("sweeper: %d deliveries waiting, %d redemptions requeued", waiting, stranded)
        except Exception:  # the sweeper must never take the worker down; it runs again next interval
            log.exception("inbox sweep failed")
