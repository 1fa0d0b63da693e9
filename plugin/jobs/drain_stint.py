"""How long a drain job stays with a burst of deliveries, and when it tells the follow-up jobs (decision 0086)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.1  # between a stint's drains: a claim that came back short fills again meanwhile
IDLE_DRAINS = 3  # drains in a row that found nothing: the burst is over
SIGNAL_EVERY_SECONDS = 5.0  # a stint queues the balance push and the events this often, and once more as it ends
# A job drains this long before it gives way to other work between a drain's batches: with other jobs always waiting
# (a slow shop's codes to issue), giving way after every batch made each drain job one batch and a new work horse.
GIVE_WAY_AFTER_SECONDS = 2.0


class Stint:
    """A drain job's stay: it goes on draining while deliveries keep coming, if it met a burst (a full batch's
    worth), for at most `seconds`, and only while no other job waits in the main queue for a worker. The other work is
    also looked at between the batches of a drain (`cut_short`): behind a backlog one drain runs until the inbox is
    empty, and a shopper's code would wait for all of it.

    Each drain job is a work horse forked for it, with its own database connections and statements to compile
    (some 70 ms of CPU); ending a job whenever a claim came back short made a burst dozens of jobs.
    """

    def __init__(
        self,
        seconds: float,
        batch_size: int,
        other_work_waiting: Callable[[], bool],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        stopping: Callable[[], bool] = lambda: False,
    ) -> None:
        self.seconds = seconds
        self.batch_size = batch_size
        self.other_work_waiting = other_work_waiting
        self.clock = clock
        self.sleep = sleep
        self.stopping = stopping  # the worker was asked to shut down (jobs.shutdown)
        self.started = self.last_signal = clock()
        self.processed = 0
        self.idle_drains = 0
        self.unsignalled = False
        self.backlog = False  # cut short between a drain's batches, deliveries still waiting
        self.ended = ""  # why the stint ended, for the job's log line

    def drained(self, processed: int) -> None:
        """Count one drain's processed deliveries."""
        self.processed += processed
        self.idle_drains = 0 if processed else self.idle_drains + 1
        self.unsignalled = self.unsignalled or processed > 0

    def cut_short(self) -> bool:
        """Between two batches of a drain that has more to do: whether to end the job there, for another job that
        waits for a worker. The rest of the backlog, and the follow-up jobs, are left to the drain job after it.
        Not before the job has drained GIVE_WAY_AFTER_SECONDS; the stint's time is not looked at here: a backlog's
        drain is cut only for other work (decision 0088), and for the worker's shutdown, stints or not (0093)."""
        if self.stopping():
            self.ended = "worker stopping, inbox not empty"
            self.backlog = True
            return True
        if self.seconds <= 0 or self.clock() - self.started < GIVE_WAY_AFTER_SECONDS:
            return False
        if not self.other_work_waiting():
            return False
        self.ended = "other work waiting, inbox not empty"
        self.backlog = True
        return True

    def signal_due(self) -> bool:
        """Whether the follow-up jobs should be queued now (something processed, and none queued for a while)."""
        return self.unsignalled and self.clock() - self.last_signal >= SIGNAL_EVERY_SECONDS

    def signalled(self) -> None:
        self.last_signal = self.clock()
        self.unsignalled = False

    def go_on(self) -> bool:
        """Whether to drain again (after a short pause), or end the job."""
        if self.stopping():
            self.ended = "worker stopping"
        elif self.seconds <= 0:
            self.ended = "stints off"
        elif self.processed < self.batch_size:
            self.ended = "no burst"
        elif self.idle_drains >= IDLE_DRAINS:
            self.ended = "idle"
        elif self.clock() - self.started + POLL_SECONDS >= self.seconds:
            self.ended = "stint over"
        elif self.other_work_waiting():
            self.ended = "other work waiting"
        else:
            self.sleep(POLL_SECONDS)
            return True
        return False
