"""The job registry: every background job, the dotted path RQ stores for it (taken from its function), its limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JOBS: dict[str, Job] = {}


@dataclass(frozen=True)
class Job:
    entry: Callable[..., Any]  # what an RQ worker calls; it reads its settings from the environment
    inline: Callable[..., Any]  # the same work with the caller's settings first (jobs run inline without Redis)
    timeout: int  # seconds
    result_ttl: int
    failure_ttl: int | None = None  # None: RQ's default
    low: bool = False  # queued on the low-priority queue, which workers take from only when the main one is empty

    @property
    def name(self) -> str:
        """The importable dotted path RQ stores with each queued job, derived so it cannot drift from the code."""
        return f"{self.entry.__module__}.{self.entry.__qualname__}"

    @property
    def id_prefix(self) -> str:
        """What the RQ id of each queued copy starts with, so a look at the queue tells this job's copies from other
        work: its function's name and a dash, which no name holds, so no job's prefix begins another's."""
        return f"{self.entry.__qualname__}-"


def register(job: Job) -> Job:
    if job.name in JOBS:
        raise ValueError(f"job {job.name} is registered twice")
    if any(other.id_prefix == job.id_prefix for other in JOBS.values()):
        raise ValueError(f"job {job.name}'s id prefix {job.id_prefix!r} is another job's")
    JOBS[job.name] = job
    return job
