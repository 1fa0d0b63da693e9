"""How long a drain job stays with a burst of deliveries, and when it tells the follow-up jobs (decision 0086)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.1  # between a stint's drains: a claim that came back short fills again meanwhile
IDLE_DRAINS = 3  # drains in a row that found nothing: the burst is over
SIGNAL_EVERY_SECONDS = 5.0  # a stint queues the balance push and the events this often, and once more as it ends


class Stint:
    """A drain job's stay: it goes on draining while deliveries keep coming, if it met a burst (a full batch's
    worth), for at most `seconds`, and only while no other job waits in the main queue for a worker.

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
    ) -> None:
        self.seconds = seconds
        self.batch_size = batch_size
        self.other_work_waiting = other_work_waiting
        self.clock = clock
        self.sleep = sleep
        self.started = self.last_signal = clock()
        self.processed = 0
        self.idle_drains = 0
        self.unsignalled = False
        self.ended = ""  # why the stint ended, for the job's log line

    def drained(self, processed: int) -> None:
        """Count one drain's processed deliveries."""
        self.processed += processed
        self.idle_drains = 0 if processed else self.idle_drains + 1
        self.unsignalled = self.unsignalled or processed > 0

    def signal_due(self) -> bool:
        """Whether the follow-up jobs should be queued now (something processed, and none queued for a while)."""
        return self.unsignalled and self.clock() - self.last_signal >= SIGNAL_EVERY_SECONDS

    def signalled(self) -> None:
        self.last_signal = self.clock()
        self.unsignalled = False

    def go_on(self) -> bool:
        """Whether to drain again (after a short pause), or end the job."""
        if self.seconds <= 0:
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
