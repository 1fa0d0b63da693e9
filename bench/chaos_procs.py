"""Real processes for the chaos replay (gunicorn, rq workers, the fake shop), and the killer that SIGKILLs workers."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A process in a session (and so a process group) of its own, its output in `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_until_answering(process: subprocess.Popen, url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before answering {url}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def children(pid: int) -> list[int]:
    """Direct children of `pid` (an rq worker's work horse), from /proc."""
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        found: list[int] = []
        for task in tasks:
            found += [int(child) for child in (task / "children").read_text().split()]
        return found
    except (FileNotFoundError, ProcessLookupError):
        return []


def _signal(pid: int, sig: signal.Signals, group: bool = False) -> bool:
    try:
        (os.killpg if group else os.kill)(pid, sig)
        return True
    except ProcessLookupError:
        return False


def stop(process: subprocess.Popen, seconds: float = 10) -> None:
    """SIGTERM the process group, then SIGKILL it if it is still there; work horses (own groups) too."""
    if process.poll() is None:
        horses = children(process.pid)
        _signal(process.pid, signal.SIGTERM, group=True)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            _signal(process.pid, signal.SIGKILL, group=True)
            process.wait(timeout=seconds)
        for horse in horses:
            _signal(horse, signal.SIGKILL)


class WorkerPool:
    """N `rq worker` processes started as the Procfile does, restarted whenever one is killed or dies."""

    def __init__(self, count: int, redis_url: str, queue: str, env: dict[str, str], logs: Path, rq: str):
        self.redis_url, self.queue, self.env, self.logs, self.rq = redis_url, queue, env, logs, rq
        self.slots: list[subprocess.Popen | None] = [None] * count
        self.starts = 0
        self.kills: Counter[str] = Counter()
        self.unexpected_exits: list[str] = []
        self.lock = threading.Lock()

    def _start(self, slot: int) -> subprocess.Popen:
        self.starts += 1
        name = f"{self.queue}-w{slot}-{self.starts}"
        command = [self.rq, "worker", "--url", self.redis_url, "--worker-class", "plugin.worker.LoyaltyWorker"]
        return spawn([*command, "--name", name, self.queue], self.env, self.logs / f"worker-{slot}.log")

    def start(self) -> None:
        with self.lock:
            for slot in range(len(self.slots)):
                self.slots[slot] = self._start(slot)

    def revive(self) -> None:
        """Restart any worker that exited on its own (that is not chaos we caused: it is reported)."""
        with self.lock:
            for slot, process in enumerate(self.slots):
                if process is not None and process.poll() is not None:
                    self.unexpected_exits.append(f"worker slot {slot} pid {process.pid} exited {process.returncode}")
                    self.slots[slot] = self._start(slot)

    def kill_one(self, rng: random.Random) -> str:
        """SIGKILL a random worker's work horse only, or the whole worker (horse included), and restart it."""
        with self.lock:
            slot = rng.randrange(len(self.slots))
            process = self.slots[slot]
            if process is None:
                return "none"
            if rng.random() < 0.5:
                horses = children(process.pid)
                if horses:
                    for horse in horses:
                        _signal(horse, signal.SIGKILL)
                    self.kills["horse"] += 1
                    return "horse"
                mode = "worker (idle: no horse to kill)"
            else:
                mode = "worker"
            # Freeze the worker first so it cannot fork a new horse between finding its horse and dying.
            _signal(process.pid, signal.SIGSTOP, group=True)
            for horse in children(process.pid):
                _signal(horse, signal.SIGKILL)
            _signal(process.pid, signal.SIGKILL, group=True)
            process.wait(timeout=30)
            self.kills[mode] += 1
            self.slots[slot] = self._start(slot)
            return mode

    def stop(self) -> None:
        with self.lock:
            for slot, process in enumerate(self.slots):
                if process is not None:
                    stop(process)
                    self.slots[slot] = None


class Killer(threading.Thread):
    """Kills a random worker every 0.5-3 s until told to stop; between kills it restarts workers that died."""

    def __init__(self, pool: WorkerPool, seed: int):
        super().__init__(name="killer", daemon=True)
        self.pool, self.rng = pool, random.Random(seed)
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.halt.wait(self.rng.uniform(0.5, 3.0)):
                self.pool.revive()
                self.pool.kill_one(self.rng)
        except BaseException as error:  # reported by the main thread: a silent killer would fake a calm run
            self.error = error

    def finish(self, seconds: float = 60) -> None:
        self.halt.set()
        self.join(timeout=seconds)
