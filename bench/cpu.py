"""CPU seconds spent by each part of a run (web, workers, PostgreSQL, Redis, wrk, the bench itself), from /proc."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.harness import PG_ADMIN_URL, descendants

TICKS = os.sysconf("SC_CLK_TCK")


def _ticks(pid: int) -> int:
    """utime + stime + cutime + cstime: the process's own CPU and that of its children it has reaped.

    So a tree's sum at any instant counts each process once, whether it is still running (its own fields) or
    has exited and been reaped (its parent's c-fields): RQ forks a work horse per job, PostgreSQL a backend per
    connection, and both come and go during a run.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11:15])


def tree_seconds(pid: int) -> float:
    return sum(_ticks(each) for each in descendants(pid)) / TICKS


def named_roots(command: str) -> list[int]:
    """PIDs of processes named `command` whose parent is not (postgres's postmaster, redis-server)."""
    names: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name = (entry / "comm").read_text().strip()
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            names[int(entry.name)] = (name, parent)
    return [pid for pid, (name, parent) in names.items() if name == command and names.get(parent, ("",))[0] != command]


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / TICKS, sum(values[:8]) / TICKS


@dataclass
class CpuAccount:
    """CPU seconds per role over a stretch of a run: `roles` maps a name to the root PIDs of its process trees.

    Read at the start and at the end only, so it costs nothing in between; the difference is what each role
    spent. "machine" is every core's busy time, so what is left over (other processes, the kernel's own work)
    shows too.
    """

    roles: dict[str, list[int]]
    started: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0

    def _read(self) -> dict[str, float]:
        reading = {role: sum(tree_seconds(pid) for pid in pids) for role, pids in self.roles.items()}
        # This process alone (its threads, such as the event receiver) and the children it has reaped (wrk, once
        # it is done): not its tree, which holds the web and worker processes counted above.
        reading["bench_and_wrk"] = _ticks(os.getpid()) / TICKS
        reading["machine"] = machine_seconds()[0]
        return reading

    def start(self) -> CpuAccount:
        self.started = self._read()
        self._clock = time.monotonic()
        return self

    def stop(self) -> None:
        ended = self._read()
        self.wall_seconds = time.monotonic() - self._clock
        self.spent = {role: round(ended[role] - self.started[role], 1) for role in ended}

    def busy_share(self) -> float:
        """The machine's busy time over all it had (cores times the elapsed time): 1.0 is every core busy."""
        return round(self.spent["machine"] / ((os.cpu_count() or 1) * self.wall_seconds), 2)

    def per_order_ms(self, orders: int) -> dict[str, float]:
        return {role: round(seconds * 1000 / orders, 2) for role, seconds in self.spent.items()}


def backend_pids(database: str) -> list[int]:
    """PIDs of the PostgreSQL backends connected to `database`, this reader's own left out."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchall()
    return [pid for (pid,) in rows]


def round_with_cpu(web_pid: int, database: str | None, run: Callable[[], dict]) -> dict:
    """One wrk round (`run`) and the CPU it cost per answered request, in µs: the web's gunicorn tree (arbiter and
    workers) and, given its database, the PostgreSQL backends connected to it. Redis's share cannot be told apart
    (one server for every engineer's runs), nor the kernel's network work; wrk's is the same for both sides."""
    web = tree_seconds(web_pid)
    backends = {pid: _ticks(pid) for pid in backend_pids(database)} if database else {}
    result = run()
    requests = max(result["requests"], 1)
    result["web_cpu_us"] = round((tree_seconds(web_pid) - web) / requests * 1e6)
    if database:
        spent = sum(_ticks(pid) - backends.get(pid, 0) for pid in backend_pids(database)) / TICKS
        result["pg_cpu_us"] = round(spent / requests * 1e6)
    return result
