"""gunicorn settings, read from ./gunicorn.conf.py by the Procfile's `gunicorn`: logs that hold no signatures."""

from __future__ import annotations

import logging
import os
import re
import sys

# The request line without its query string (%(U)s is the path alone): App Proxy queries carry a signature
# that lets anyone who reads the log act as that shopper for 90 s, and OAuth callbacks carry codes and HMACs.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# Load the app once in the arbiter and fork the workers from it: the imported modules' pages are shared
# copy-on-write, so each worker's PSS (its share of the machine's memory) falls from about 80 to about 51 MiB
# (bench/memory.py, docs/benchmarks.md). No connection is opened while the app is created (engines connect on
# first use), and post_fork drops any a worker could inherit.
preload_app = True

# A webhook delivery the inbox has just stored gets no access line: its row records the shop, topic, webhook id, time
# and body, and at a sale's peak the lines cost the web process about a third of its CPU per delivery (decision
# 0087). A duplicate, a refusal, an error and every other request keep theirs. WEB_LOG_STORED_DELIVERIES=1 keeps
# gunicorn's own logger, a line for every request.
if os.environ.get("WEB_LOG_STORED_DELIVERIES", "") != "1":
    logger_class = "plugin.web.access_log.AccessLogger"

# Two threads per worker (decision 0038): a sync worker sits idle while PostgreSQL flushes a delivery's commit,
# and with threads the commit waits of concurrent deliveries overlap. WEB_THREADS=1 gives gunicorn's sync worker.
# The threaded worker is gunicorn's gthread, leaving new connections to a worker with a free thread while its own
# are all busy (decision 0063): gunicorn's own let one worker take all of a client's few keep-alive connections.
# Both classes answer gunicorn's own refusals (a request line or headers past its limits) in the app's JSON.
threads = max(1, int(os.environ.get("WEB_THREADS", "2")))
worker_class = "plugin.web.balanced_accept." + ("BalancedThreadWorker" if threads > 1 else "JsonSyncWorker")

# Python's GIL switch interval in each worker, in seconds, when WEB_SWITCH_INTERVAL is set; unset, CPython's own
# (5 ms). A thread back from the commit's wait may wait that long for the GIL its worker's other thread holds:
# decision 0063 measured 0.5 ms both ways (the app's waits shorter on a half-loaded machine, bare Flask faster on
# a saturated one) and left the default alone.
switch_interval = os.environ.get("WEB_SWITCH_INTERVAL")

SECRET_PARAMETER = re.compile(r"\b(signature|hmac|code|state|id_token)=[^&\s\"']*", re.IGNORECASE)


class RedactSecrets(logging.Filter):
    """Cut secret query values out of any gunicorn line that still shows a URL (a referrer, an error's URI)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = SECRET_PARAMETER.sub(r"\1=[redacted]", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def post_fork(server, worker) -> None:
    """Each worker logs its own requests (give its loggers the filter, once), opens its own connections and sets
    its GIL switch interval if one is configured."""
    from plugin.db import _ENGINES

    if switch_interval:
        sys.setswitchinterval(float(switch_interval))

    for engine in _ENGINES.values():
        engine.dispose(close=False)  # SQLAlchemy's recipe for a forked child: forget the parent's pool
    for logger in (logging.getLogger("gunicorn.access"), logging.getLogger("gunicorn.error")):
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
