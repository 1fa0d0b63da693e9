"""Memory: RSS and PSS of every web and worker process under load, with and without gunicorn's preload.

RSS counts every page a process maps, shared or not, so N gunicorn workers forked from one parent show N
times the pages they share. PSS (proportional set size, /proc/PID/smaps_rollup) splits each shared page
between the processes sharing it: the sum of PSS is what the processes really take from the machine. The web
goal (< 80 MB) is judged on PSS per gunicorn worker, the worker goal (< 120 MB) on the rq worker plus its work
horse (each job's fork), both reported beside their RSS.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from bench import seed
from bench.common import prepared_database
from bench.e2e import write_deliveries
from bench.harness import Process, descendants, running, start_web, start_worker, wait_until, wrk
from bench.widget import FIRST_CUSTOMER_ID, write_requests

MEMBERS = 2000
MIB = 1024


def smaps_rollup_kib(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in KiB, from /proc/PID/smaps_rollup; (0, 0) once it is gone."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def _kind(pid: int, root: Process, role: str) -> str:
    if pid == root.pid:
        return "gunicorn arbiter" if role == "web" else "rq worker"
    return "gunicorn worker" if role == "web" else "rq work horse"


@dataclass
class MemorySampler:
    """Polls RSS and PSS of every process under some roots; keeps each process's peaks, by kind."""

    roots: dict[str, list[Process]]
    interval: float = 0.1
    peaks: dict[int, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, processes in self.roots.items():
                for process in processes:
                    for pid in descendants(process.pid):
                        rss, pss = smaps_rollup_kib(pid)
                        peak = self.peaks.setdefault(pid, {"kind": _kind(pid, process, role), "rss": 0, "pss": 0})
                        peak["rss"], peak["pss"] = max(peak["rss"], rss), max(peak["pss"], pss)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def by_kind(self) -> dict[str, dict]:
        """Per kind of process: how many were seen, and the largest peak RSS and PSS among them, in MiB."""
        kinds: dict[str, dict] = {}
        for peak in self.peaks.values():
            if not peak["rss"]:
                continue
            kind = kinds.setdefault(peak["kind"], {"processes": 0, "peak_rss_mib": 0.0, "peak_pss_mib": 0.0})
            kind["processes"] += 1
            kind["peak_rss_mib"] = max(kind["peak_rss_mib"], round(peak["rss"] / MIB, 1))
            kind["peak_pss_mib"] = max(kind["peak_pss_mib"], round(peak["pss"] / MIB, 1))
        return kinds


def _load(base: str, libpq: str, workdir: Path, orders: int, seconds: int, rng: random.Random) -> None:
    """Widget reads, then a burst of orders through the intake into the worker, waiting until all are posted."""
    reads = workdir / "reads.txt"
    write_requests(reads, MEMBERS, 500, rng)
    wrk(base, "replay.lua", str(reads), connections=4, seconds=seconds)
    deliveries = workdir / "deliveries.txt"
    write_deliveries(deliveries, orders, rng)
    with psycopg.connect(libpq) as conn:
        before = conn.execute("SELECT count(*) FROM postings").fetchone()[0]

    def posted() -> int:
        with psycopg.connect(libpq) as conn:
            return conn.execute("SELECT count(*) FROM postings").fetchone()[0] - before

    wrk(base, "replay.lua", str(deliveries), "once", connections=4, seconds=300, until=lambda: posted() >= orders)
    wait_until(lambda: posted() >= orders, 300, "the worker did not post every order", 0.5)


def measure(mode: str, env: dict[str, str], libpq: str, orders: int, seconds: int) -> dict:
    """One web (the Procfile's gunicorn line) and one worker under load; `mode` "preload" adds --preload."""
    web_env = {**env, "GUNICORN_CMD_ARGS": "--preload"} if mode == "preload" else env
    web, base = start_web(f"web-memory-{mode}", "plugin:create_app()", web_env)
    worker = start_worker(f"worker-memory-{mode}", env)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-memory-{mode}-"))
    with running(web, worker), MemorySampler({"web": [web], "worker": [worker]}) as sampler:
        requests.get(base + "/healthz", timeout=10).raise_for_status()
        time.sleep(2)  # the worker connects to Redis and waits on its queue
        _load(base, libpq, workdir, orders, seconds, random.Random(17))
        # Settled: what each process holds after the load (peaks include the transient buffers of the load).
        settled = {pid: smaps_rollup_kib(pid) for root in (web, worker) for pid in descendants(root.pid)}
    kinds = sampler.by_kind()
    web_workers = [sampler.peaks[pid] for pid in settled if sampler.peaks.get(pid, {}).get("kind") == "gunicorn worker"]
    return {
        "processes": kinds,
        "web_workers_pss_sum_mib": round(sum(settled[pid][1] for pid in settled if pid in sampler.peaks
                                             and sampler.peaks[pid]["kind"] == "gunicorn worker") / MIB, 1),
        "web_worker_count": len(web_workers),
        "customer_sample": FIRST_CUSTOMER_ID + 1,
    }  # fmt: skip


def _prepared() -> tuple[dict[str, str], str]:
    """A fresh seeded database (each mode gets its own: the same deliveries again would be duplicates)."""
    url, env = prepared_database("loyalty_bench_memory")
    seed.seed(url, 1, MEMBERS)
    libpq = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(libpq, autocommit=True) as conn:  # the seed copies ids in: new rows follow them
        for table in ("members", "orders", "postings"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    return env, libpq


def run(orders: int = 3000, seconds: int = 8) -> dict:
    modes = {mode: measure(mode, *_prepared(), orders, seconds) for mode in ("default", "preload")}
    chosen = "preload"
    web = modes[chosen]["processes"].get("gunicorn worker", {})
    worker = modes[chosen]["processes"].get("rq worker", {})
    horse = modes[chosen]["processes"].get("rq work horse", {})
    return {
        "modes": modes,
        "judged_mode": chosen,
        "web_peak_pss_mib": web.get("peak_pss_mib"),
        "web_peak_rss_mib": web.get("peak_rss_mib"),
        "worker_peak_pss_mib": max(worker.get("peak_pss_mib", 0), horse.get("peak_pss_mib", 0)),
        "worker_peak_rss_mib": max(worker.get("peak_rss_mib", 0), horse.get("peak_rss_mib", 0)),
        # A work horse is forked from the rq worker and shares its pages; the two peaks summed (never lower than
        # the pair at any one moment) bound what a worker and its running job take together.
        "worker_and_horse_pss_bound_mib": round(worker.get("peak_pss_mib", 0) + horse.get("peak_pss_mib", 0), 1),
        "orders": orders,
        "widget_seconds": seconds,
    }
