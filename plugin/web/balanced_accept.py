"""gunicorn's threaded worker, accepting no new connection while every one of its threads is busy (gunicorn.conf.py).

The workers share one listening socket, and each wakes for every new connection: whichever runs first accepts it,
and goes on accepting while more are waiting. A client that opens a few keep-alive connections at once (a proxy's
pool, wrk's 4 in bench.intake) often had them all on one worker: with 2 threads there, two requests waited for a
thread while the other worker sat idle (decision 0063: 4-0, 3-1 and 2-2 splits from one run to the next, and the
intake's req/s with them). This worker stops accepting while all its threads run a request, so the connection stays
on the shared socket for the first worker with a free thread (this one again, as soon as a request ends). Idle
keep-alive connections and connections still waiting for their first bytes hold no thread, so they do not count:
a worker never declines a connection it could serve at once, and nothing waits on a timer.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker
from gunicorn.workers.sync import SyncWorker

from plugin.web.json_errors import JsonErrors


class BalancedThreadWorker(JsonErrors, ThreadWorker):
    """ThreadWorker that leaves new connections on the shared socket while its threads are all running requests
    (and answers gunicorn's own refusals in JSON)."""

    busy = 0  # requests handed to the thread pool and not yet finished (gunicorn's nr_conns counts idle ones too)

    def enqueue_req(self, conn) -> None:
        self.busy += 1
        super().enqueue_req(conn)
        if self.busy >= self.cfg.threads:
            super().set_accept_enabled(False)

    def finish_request(self, conn, fs) -> None:
        self.busy -= 1  # before gunicorn's: a request already read ahead is handed to a thread again in there
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled: bool) -> None:
        # gunicorn's loop asks to accept again at each turn while it holds fewer than worker_connections.
        if enabled and self.busy >= self.cfg.threads:
            return
        super().set_accept_enabled(enabled)


class JsonSyncWorker(JsonErrors, SyncWorker):
    """gunicorn's sync worker (WEB_THREADS=1), answering gunicorn's own refusals in JSON like the threaded one."""
