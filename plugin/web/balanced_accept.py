"""gunicorn's threaded worker, holding back new connections while its threads are all taken (gunicorn.conf.py).

The workers share one listening socket, and each wakes for every new connection: whichever runs first accepts it,
and goes on accepting while more are waiting. A client that opens a few keep-alive connections at once (a proxy's
pool, wrk's 4 in bench.intake) often had them all on one worker: with 2 threads there, two requests waited for a
thread while the other worker sat idle (decision 0063: 4-0, 3-1 and 2-2 splits from one run to the next, and the
intake's req/s with them). This worker stops accepting once it holds as many connections as it has threads, so a
worker with a free thread takes the next one. It takes it itself after HOLD_SECONDS if no other worker did (all
full), so no connection waits on the others for longer, and at once when one of its own connections closes.
"""

from __future__ import annotations

from time import monotonic

from gunicorn.workers.gthread import ThreadWorker

# How long a full worker leaves a waiting connection to the others: longer than a woken worker takes to accept on a
# busy machine, short enough to be a small cost on a connection's first request when every worker is full.
HOLD_SECONDS = 0.02


class BalancedThreadWorker(ThreadWorker):
    """ThreadWorker that accepts no connection beyond its thread count while another worker may take it."""

    full_since = float("-inf")  # when it last took a connection that left it without a free thread

    def accept(self, listener) -> None:
        super().accept(listener)
        if self.nr_conns >= self.cfg.threads:
            self.full_since = monotonic()
            super().set_accept_enabled(False)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks to accept again at each turn while it holds fewer than worker_connections.
        if enabled and self.holding():
            return
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Wake when the hold ends, to accept what no other worker took (the loop otherwise waits up to a second).
        if self.alive and self.holding():
            timeout = min(timeout, self.full_since + HOLD_SECONDS - monotonic())
        super().wait_for_and_dispatch_events(max(timeout, 0.0))

    def holding(self) -> bool:
        """Whether a new connection is left to the other workers for now: every thread has a connection, lately."""
        return self.nr_conns >= self.cfg.threads and monotonic() < self.full_since + HOLD_SECONDS
