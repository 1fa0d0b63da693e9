"""The RQ worker class for the Procfile: a normal RQ worker that also runs the inbox sweeper."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal

from rq import Queue, Worker
from sqlalchemy.orm import configure_mappers

from plugin import generations, jobs, logs
from plugin.config import Settings
from plugin.jobs import shutdown
from plugin.jobs.dispatch import LOW_SUFFIX, low_queue_name

log = logging.getLogger(__name__)

# RQ runs maintenance only between dequeues, and a dequeue blocks for worker_ttl - 15 seconds: a worker_ttl of the
# interval + 15 lets an idle worker sweep about every interval.
RQ_DEQUEUE_MARGIN_SECONDS = 15


class LoyaltyWorker(Worker):
    """`rq worker -w plugin.worker.LoyaltyWorker loyalty`: sweeps the inbox every few seconds when idle.

    It also listens to each queue's low-priority queue (`loyalty-low`), after all the named ones: RQ takes a job
    from the first queue that has one, so a low-priority job (event delivery) never goes before order processing.
    """

    def __init__(self, queues, *args, **kwargs):
        # The low queues go in through Worker's own `queues` argument, as names it builds like the named ones (the
        # worker's queue class, connection, serializer); RQ's default dequeue takes them in this order.
        named = [queues] if isinstance(queues, str | Queue) else list(queues)
        names = [queue if isinstance(queue, str) else queue.name for queue in named]
        low = [low_queue_name(name) for name in names if not name.endswith(LOW_SUFFIX)]
        super().__init__(named + [name for name in low if name not in names], *args, **kwargs)
        logs.configure()
        settings = Settings.from_env()
        # The worker never calls create_app: its jobs' commits (in the work horses it forks, which inherit this)
        # bump the widget's generations because it watches here, once, at its start.
        generations.watch(settings)
        # SQLAlchemy configures the mappers at their first use, in whichever process that is: here, so that the work
        # horses this worker forks inherit them configured rather than each doing it again for its one job (0083).
        configure_mappers()
        # The rq CLI always passes its own defaults (420 s, 600 s); cap them so the sweeper runs often.
        interval = settings.sweep_interval_seconds
        self.worker_ttl = min(self.worker_ttl, interval + RQ_DEQUEUE_MARGIN_SECONDS)
        self.maintenance_interval = min(self.maintenance_interval, interval)

    def main_work_horse(self, job, queue):
        # What the horse inherits (modules, mappers, the worker's own objects) lives as long as it does: frozen, the
        # cyclic collector's full collections no longer walk it for each job's garbage (decision 0090). A
        # programme's drain spent about a tenth of its Python there. Frozen here, in the child, so the worker itself
        # keeps collecting as before, and the horse's own objects are collected as usual.
        gc.freeze()
        super().main_work_horse(job, queue)

    def setup_work_horse_signals(self):
        super().setup_work_horse_signals()
        # RQ's horse dies on SIGTERM; a drain's horse notes it and stops after the batch in progress instead, so a
        # batch is neither killed (redone, its claim counted) nor is the rest of a backlog waited for (decision 0093).
        shutdown.listen()
        if self._stop_requested:  # asked between the worker taking the job and the fork: nothing was forwarded
            shutdown.note()

    def handle_warm_shutdown_request(self):
        super().handle_warm_shutdown_request()
        # RQ then waits for the job in hand, which for a drain behind a backlog ran until the inbox was empty: tell
        # the horse (in a process group of its own, which a signal to the worker's group does not reach).
        if self.horse_pid:
            with contextlib.suppress(OSError):  # it may have ended its job meanwhile; never fail the shutdown
                os.kill(self.horse_pid, signal.SIGTERM)

    def run_maintenance_tasks(self):
        super().run_maintenance_tasks()
        try:
            waiting, stranded = jobs.sweep(Settings.from_env())
            if waiting or stranded:
                log.info("sweeper: %d deliveries waiting, %d redemptions requeued", waiting, stranded)
        except Exception:  # the sweeper must never take the worker down; it runs again next interval
            log.exception("inbox sweep failed")
