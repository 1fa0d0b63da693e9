"""Helpers that start real processes for integration tests (rq workers, the fake shop, the app) and reap them."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager, suppress
from pathlib import Path

import requests

from tests.conftest import ROOT, RUN_ID, SECRET

RQ = str(Path(sys.executable).parent / "rq")
FLASK = str(Path(sys.executable).parent / "flask")
# `make test` names a file here; its trap kills every process group listed in it, even after a SIGKILLed pytest.
PID_FILE = os.environ.get("LOYALTY_TEST_PID_FILE", "")
_SPAWNED: list[subprocess.Popen] = []
PR_SET_PDEATHSIG = 1
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None


def _die_with_parent() -> None:
    """In the child before exec: the kernel SIGKILLs it when pytest dies, however pytest dies (Linux only)."""
    if _PRCTL is not None:  # elsewhere the atexit reaper and the Makefile trap still apply
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(command: list[str], **options) -> subprocess.Popen:
    """Popen in a process group of its own, remembered so that `reap_all` (and `make test`'s trap) can end it."""
    process = subprocess.Popen(command, start_new_session=True, preexec_fn=_die_with_parent, **options)
    _SPAWNED.append(process)
    if PID_FILE:
        with open(PID_FILE, "a") as pids:
            pids.write(f"{process.pid}\n")
    return process


def children(pid: int) -> list[int]:
    """The processes `pid` started (a worker's work horse)."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(child) for child in found]


def _kill_group(pid: int) -> None:
    # An RQ work horse moves to a process group of its own, so it is found as a child and killed too.
    for child in children(pid):
        _signal_group(child, signal.SIGKILL)
    _signal_group(pid, signal.SIGKILL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def spawned_so_far() -> int:
    """A mark for `reap_since`: how many processes this run has started."""
    return len(_SPAWNED)


def reap_since(mark: int) -> list[int]:
    """Kill the processes started after `mark` that are still alive (a failed test's workers and servers)."""
    reaped = []
    while len(_SPAWNED) > mark:
        process = _SPAWNED.pop()
        if process.poll() is None:
            _kill_group(process.pid)
            reaped.append(process.pid)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
    return reaped


def reap_all() -> list[int]:
    """Kill every process this run started that is still alive (with its group); returns their pids."""
    reaped = reap_since(0)
    if PID_FILE:  # all ended: nothing left for `make test`'s trap to look at
        open(PID_FILE, "w").close()
    return reaped


atexit.register(reap_all)


def environment(settings, **extra: str) -> dict[str, str]:
    """The environment a worker or CLI process needs to act on the same database, queue and shop as the test."""
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOYALTY_QUEUE": settings.queue_name,
        "LOYALTY_INBOX_BATCH": str(settings.inbox_batch_size),
        "LOYALTY_ENCRYPTION_KEYS": ",".join(settings.encryption_keys),
        "LOYALTY_REDEMPTION_LEASE_SECONDS": str(settings.redemption_lease_seconds),
        "SHOPIFY_API_SECRET": SECRET,
        "SHOPIFY_API_BASE_URL": settings.shopify_api_base_url,
        "SHOPIFY_API_TIMEOUT": str(settings.shopify_api_timeout),
        "PYTHONPATH": str(ROOT),
        **extra,
    }


def run_worker(settings, *, burst: bool = True, **extra: str) -> subprocess.Popen:
    command = [
        RQ,
        "worker",
        "--url",
        settings.redis_url,
        "--worker-class",
        "plugin.worker.LoyaltyWorker",
        "--name",
        f"w-{RUN_ID}-{uuid.uuid4().hex[:8]}",
        settings.queue_name,
    ]
    if burst:
        command.insert(2, "--burst")
    return spawn(
        command,
        cwd=ROOT,
        env=environment(settings, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 120) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output
    return output


def stop_worker(worker: subprocess.Popen, grace: float = 60) -> None:
    """SIGTERM a worker (a warm shutdown: the job in hand finishes); SIGKILL it if that outlasts `grace`.

    On a loaded CI machine a job waiting on a slow shop can outlast any fixed wait, and the tests that stop workers
    this way assert on the database afterwards, which a killed job cannot make wrong (that is what they test).
    """
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        kill_hard(worker)


def kill_hard(worker: subprocess.Popen) -> None:
    """SIGKILL a worker and its work horse (RQ gives the horse a process group of its own)."""
    for pid in children(worker.pid):
        with contextlib.suppress(ProcessLookupError):  # the horse may finish its job first
            os.kill(pid, signal.SIGKILL)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.communicate(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_fake_shop(*args: str) -> tuple[subprocess.Popen, str]:
    """`python -m plugin.devtools.fake_shop` on a free port; returns the process and its base URL once it answers."""
    port = free_port()
    process = spawn(
        [sys.executable, "-m", "plugin.devtools.fake_shop", "--port", str(port), *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, _answering(process, f"http://127.0.0.1:{port}", "/_fake/codes")


def _answering(process: subprocess.Popen, base_url: str, probe: str) -> str:
    """Wait (at most 30 s) until the server answers `probe`; returns its base URL."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base_url}{probe}", timeout=1)
            return base_url
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{base_url} did not start")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def start_app(settings, **extra: str) -> tuple[subprocess.Popen, str]:
    """The app under Flask's threaded server, as `make run` serves it; returns it once /healthz answers."""
    port = free_port()
    process = spawn(
        [FLASK, "--app", "plugin", "run", "--port", str(port)],
        cwd=ROOT,
        env=environment(settings, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, _answering(process, f"http://127.0.0.1:{port}", "/healthz")


def start_procfile_web(settings, log_path: Path, **extra: str) -> tuple[subprocess.Popen, str]:
    """The Procfile's web command (gunicorn with gunicorn.conf.py), one worker, its output in `log_path`; returns it
    once /healthz answers."""
    command = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))[4:]
    port = free_port()
    env = environment(
        settings,
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        GUNICORN_CMD_ARGS="--no-control-socket",  # several test runs may share the default control socket
        **extra,
    )
    with open(log_path, "wb") as log:
        process = spawn(["sh", "-c", f"exec {command}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # wait for the worker to boot: polled, never timed
        try:
            requests.get(f"{base_url}/healthz", timeout=60)  # accepted at once, answered once booted
            return process, base_url
        except requests.ConnectionError:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {log_path.read_text()}") from None
            time.sleep(0.05)
    stop(process)
    raise RuntimeError(f"{base_url} did not start")


CHROMIUM = "/usr/bin/chromium"  # Debian's package; no test tool downloads a browser
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@contextmanager
def chromium_page(**page_options):
    """A page in headless Debian chromium, driven by Playwright."""
    import pytest
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: scripts/services.sh installs it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(**page_options)
        finally:
            browser.close()
