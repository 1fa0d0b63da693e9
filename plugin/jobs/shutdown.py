"""A warm shutdown asked of the worker, as its work horse sees it: a drain then ends after its batch in progress."""

from __future__ import annotations

import signal

# Set by SIGTERM in a work horse (LoyaltyWorker forwards its own warm shutdown there, and some platforms signal every
# process). A flag of this process only: it steers when a drain stops, never what it writes.
_requested = False


def listen() -> None:
    """In a work horse: SIGTERM notes the request instead of ending the process mid-batch (RQ's default)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: note())


def note() -> None:
    global _requested
    _requested = True


def requested() -> bool:
    return _requested
