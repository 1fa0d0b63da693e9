"""Shared benchmark plumbing: a throwaway database, Procfile-style processes, wrk runs and peak-RSS sampling."""

from __future__ import annotations

import base64
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOGS = ROOT / "bench" / "logs"
PG_ADMIN_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
SECRET = "bench-webhook-secret-0123456789abcdef"  # a throwaway shared secret for a throwaway database
ENCRYPTION_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()  # a fresh Fernet key per run, never stored
SHOP = "bench-shop.myshopify.com"
WEB_CONCURRENCY = os.environ.get("WEB_CONCURRENCY", "2")  # the Procfile's default


# Appended to every bench database's name: two runs on one machine (two engineers, or a run beside a helper's
# check) set different suffixes, so neither drops the other's database (fresh_database drops WITH (FORCE)).
DB_SUFFIX = os.environ.get("BENCH_DB_SUFFIX", "")


def database_name(name: str) -> str:
    return name + DB_SUFFIX


def database_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database_name(name)


def fresh_database(name: str) -> str:
    """Drop and re-create a PostgreSQL database; returns its URL."""
    drop_database(name)
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database_name(name)}"')
    return database_url(name)


def drop_database(name: str) -> None:
    """Drop a PostgreSQL database if it exists, ending any connection still open to it."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database_name(name)}" WITH (FORCE)')


def database_exists(name: str) -> bool:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database_name(name),)).fetchone()
        return found is not None


def environment(db_url: str, **extra: str) -> dict[str, str]:
    """What the Procfile's processes read: the same settings for web, worker and CLI."""
    return {
        **os.environ,
        "BENCH_DIR": str(ROOT / "bench"),
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "LOYALTY_QUEUE": "bench",
        "SHOPIFY_API_SECRET": SECRET,
        "LOYALTY_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "LOYALTY_RECONCILE_EVERY_MINUTES": "0",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def flask_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "plugin", "loyalty", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask loyalty {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def procfile_command(role: str, **values: str) -> list[str]:
    """The Procfile's command line for `role`, with its ${VAR:-default} expanded from `values`."""
    line = next(ln for ln in (ROOT / "Procfile").read_text().splitlines() if ln.startswith(f"{role}:"))
    command = line.split(":", 1)[1].strip()
    expanded = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {command}"], env={**os.environ, **values}, capture_output=True, text=True
    ).stdout
    words = [w for w in expanded.split("\0") if w]
    words[0] = str(BIN / words[0])
    return words


class Process:
    """A child process in its own process group, logging to bench/logs/<name>.log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        LOGS.mkdir(exist_ok=True)
        self.name = name
        self.command = command
        self.log_path = LOGS / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=15)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                with suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=15)
        self.log.close()


def start_web(name: str, app_spec: str, env: dict[str, str]) -> tuple[Process, str]:
    """gunicorn exactly as the Procfile's web line, but serving `app_spec` on a free loopback port."""
    port = free_port()
    command = procfile_command("web", WEB_CONCURRENCY=WEB_CONCURRENCY, PORT=str(port))
    command = [("127.0.0.1:" + str(port)) if w == f"0.0.0.0:{port}" else w for w in command]
    command[-1] = app_spec
    return _started(Process(name, command, env), port, 60)


def start_worker(name: str, env: dict[str, str]) -> Process:
    command = procfile_command("worker", REDIS_URL=env["REDIS_URL"], LOYALTY_QUEUE=env["LOYALTY_QUEUE"])
    return Process(name, command, env)


def wait_for_workers(env: dict[str, str], count: int, seconds: float = 120) -> None:
    """Until `count` workers have registered on the env's queue: their start-up is over.

    Each worker's imports cost 1-2 s of CPU; on a loaded machine they outlasted a fixed 3 s wait, and the CPU
    of that start-up was counted against the orders of the run.
    """
    from redis import Redis
    from rq import Queue, Worker

    queue = Queue(env["LOYALTY_QUEUE"], connection=Redis.from_url(env["REDIS_URL"]))
    wait_until(lambda: Worker.count(queue=queue) >= count, seconds, "the workers did not start", 0.2)


def start_fake_shop(name: str, env: dict[str, str], token: str = "shpat_bench") -> tuple[Process, str]:
    """The local Admin API stand-in (plugin/devtools/fake_shop.py) on a free loopback port; returns it and its URL."""
    port = free_port()
    process = Process(name, [str(BIN / "python"), "-m", "plugin.devtools.fake_shop", "--port", str(port),
                             "--token", token], env)  # fmt: skip
    return _started(process, port, 30)


def _started(process: Process, port: int, seconds: float) -> tuple[Process, str]:
    """The process and its URL once it answers on `port`; stopped, and the error raised, if it never does."""
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), seconds, f"{process.name} did not start (see {process.log_path})")
    except TimeoutError:
        process.stop()
        raise
    return process, base


def _answers(base: str) -> bool:
    try:
        requests.get(base + "/healthz", timeout=2)
        return True
    except requests.RequestException:  # refused, or not answering yet while the workers boot
        return False


def wait_until(condition, seconds: float, message: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(message)


def descendants(pid: int) -> list[int]:
    """pid and every process below it, from /proc (no psutil needed).

    Each process's children are read from its threads' `children` files: a handful of reads for the tree. Reading
    every process's `stat` to find their parents cost 1.8 ms a call with 86 processes, and the samplers call this
    for every root several times a second, on the cores the run measures (decision 0084).
    """
    children = _children if _CHILDREN_FILES else _children_by_scan()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children(current))
    return found


# Linux's /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN, on in Debian's kernels): otherwise every process's stat.
_CHILDREN_FILES = Path(f"/proc/self/task/{os.getpid()}/children").exists()


def _children(pid: int) -> list[int]:
    """The processes pid's threads forked (a child belongs to the thread that forked it)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    found: list[int] = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as listed:
                found.extend(int(child) for child in listed.read().split())
        except OSError:  # the thread or the process has just exited
            continue
    return found


def _children_by_scan():
    """Every process's parent, read once, as a lookup of children."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    return lambda pid: children.get(pid, [])


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class RssSampler:
    """Polls the RSS of every process under some roots; keeps the peak per role ("web", "worker")."""

    roots: dict[str, list[Process]]
    interval: float = 0.05
    peaks_kib: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for role, processes in self.roots.items():
                for process in processes:
                    for pid in descendants(process.pid):
                        if pid == process.pid and role == "web":
                            continue  # gunicorn's arbiter serves nothing; its workers are the web processes
                        self.peaks_kib[role] = max(self.peaks_kib.get(role, 0), rss_kib(pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak_mib(self, role: str) -> float:
        return round(self.peaks_kib.get(role, 0) / 1024, 1)


def wrk(
    url: str, script: str, *args: str, connections: int = 4, seconds: int = 8, threads: int = 1, until=None
) -> dict:
    """Run wrk with one of our Lua scripts; returns the JSON its done() prints.

    wrk always runs for its whole duration, unless interrupted: with `until`, it is sent SIGINT (after which
    it prints its figures as usual) as soon as `until()` is true.
    """
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s",
        "-s", str(ROOT / "bench" / script), url, "--", *args,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_DIR": str(ROOT / "bench")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if until is not None:
        with suppress(TimeoutError):
            wait_until(lambda: until() or process.poll() is not None, seconds, "", interval=0.2)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=seconds + 60)
    if process.returncode != 0 or "{" not in stdout:
        raise RuntimeError(f"wrk failed (exit status {process.returncode}): {shlex.join(command)}\n{stdout}\n{stderr}")
    result = json.loads(next(ln for ln in stdout.splitlines() if ln.startswith("{")))
    if result["errors"]["status"] or result["requests"] == 0:
        raise RuntimeError(f"wrk saw {result['errors']['status']} error answers: {shlex.join(command)}\n{stderr}")
    result["command"] = shlex.join(["wrk", *command[1:]]).replace(str(ROOT) + "/", "")
    return result


def machine() -> dict[str, str]:
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in ln),
        platform.processor(),
    )
    mem_kib = int(
        next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
    )
    with psycopg.connect(PG_ADMIN_URL) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
        fsync = conn.execute("SHOW synchronous_commit").fetchone()[0]
    redis_version = subprocess.run(["redis-cli", "-u", REDIS_URL, "INFO", "server"], capture_output=True, text=True)
    redis = next(
        (ln.split(":", 1)[1].strip() for ln in redis_version.stdout.splitlines() if "redis_version" in ln), "?"
    )
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return {
        "cpu": f"{os.cpu_count()} x {cpu}",
        "memory": f"{mem_kib // 1024 // 1024} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "postgresql": f"{pg} (synchronous_commit={fsync})",
        "redis": redis,
        "wrk": wrk_version.strip(),
    }


@contextmanager
def running(*processes: Process):
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()
