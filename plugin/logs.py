"""One log format for the web and worker processes: timestamped lines on standard error."""

from __future__ import annotations

import logging

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: int = logging.INFO) -> None:
    """Show the app's own log lines (the `plugin` and `webhooks` loggers), once, whatever else configured logging."""
    for name in ("plugin", "webhooks"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(FORMAT))
            logger.addHandler(handler)
            logger.propagate = False  # rq and gunicorn have their own root handlers: do not print twice
        logger.setLevel(level)
