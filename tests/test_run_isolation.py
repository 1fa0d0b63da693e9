"""Test runs keep to themselves: tiers from the fixtures a test uses, Redis keys of their own, no process left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis

from tests.conftest import ROOT, RUN_ID, TEST_REDIS_URL, forget_redis_keys

INNER_RUN = """
import os, time
from tests.processes import spawn

def _leave_a_sleeper():
    sleeper = spawn(["sleep", "300"])
    with open(os.environ["SLEEPER_PIDS"], "a") as pids:
        pids.write(f"{sleeper.pid}\\n")
    return sleeper.pid

def test_fails_with_a_process_still_running():
    _leave_a_sleeper()
    raise AssertionError("failed half-way")

def test_runs_after_it():
    pid = int(open(os.environ["SLEEPER_PIDS"]).read().split()[0])
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"

def test_hangs_with_a_process_running():
    _leave_a_sleeper()
    time.sleep(300)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for its parent to collect it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def inner_pytest(tmp_path: Path, *selection: str, wrapper: tuple[str, ...] = ()) -> tuple[subprocess.Popen, Path]:
    """A pytest run of INNER_RUN with this suite's conftest (its fixtures and hooks), as `make test` would run it."""
    (tmp_path / "test_inner.py").write_text(INNER_RUN)
    pids = tmp_path / "sleepers"
    pids.touch()
    command = [*wrapper, sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider"]
    command += [str(tmp_path / "test_inner.py"), *[f"{tmp_path / 'test_inner.py'}::{name}" for name in selection]]
    if selection:
        command.remove(str(tmp_path / "test_inner.py"))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "SLEEPER_PIDS": str(pids)}
    environment.pop("LOYALTY_TEST_PID_FILE", None)
    process = subprocess.Popen(
        command, cwd=tmp_path, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return process, pids


def sleeper_pids(pids: Path) -> list[int]:
    """The sleepers the inner run has started so far; waits (at most a minute) for the first one."""
    deadline = time.monotonic() + 60
    while not pids.read_text().split() and time.monotonic() < deadline:
        time.sleep(0.1)
    return [int(pid) for pid in pids.read_text().split()]


def test_a_test_that_fails_half_way_leaves_no_process_to_the_next_test(tmp_path):
    process, pids = inner_pytest(tmp_path, "test_fails_with_a_process_still_running", "test_runs_after_it")
    output, _ = process.communicate(timeout=120)
    assert "1 failed, 1 passed" in output, output
    assert not any(alive(pid) for pid in sleeper_pids(pids))


def test_a_run_stopped_by_sigterm_tears_down_like_ctrl_c_and_leaves_no_process(tmp_path):
    process, pids = inner_pytest(tmp_path, "test_hangs_with_a_process_running")
    (sleeper,) = sleeper_pids(pids)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2 and "KeyboardInterrupt" in output, output  # pytest's interrupted exit, not -15
    assert not alive(sleeper)


def test_a_sigkilled_run_leaves_no_process(tmp_path):
    process, pids = inner_pytest(tmp_path, "test_hangs_with_a_process_running")
    (sleeper,) = sleeper_pids(pids)
    process.kill()
    process.communicate(timeout=60)
    deadline = time.monotonic() + 30  # the kernel's parent-death signal is immediate; allow for a busy machine
    while alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(sleeper)


def test_the_make_wrapper_kills_what_a_run_left_behind(tmp_path):
    leaver = 'sleep 300 & echo $! >> "$LOYALTY_TEST_PID_FILE"; echo $! > "$SLEEPER_PIDS"'
    pids = tmp_path / "sleepers"
    done = subprocess.run(
        [str(ROOT / "scripts" / "reaped.sh"), "bash", "-c", leaver],
        env={**os.environ, "SLEEPER_PIDS": str(pids)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    (sleeper,) = [int(pid) for pid in pids.read_text().split()]
    assert done.returncode == 0 and "reaped leftover test process" in done.stderr, done.stderr
    assert not alive(sleeper)


def test_forgetting_a_runs_redis_keys_leaves_every_other_runs_keys():
    redis = Redis.from_url(TEST_REDIS_URL)
    ours, theirs = f"{RUN_ID}-forget", f"other-run-{os.getpid()}-forget"
    for mark in (ours, theirs):
        queue = f"loyalty-test-{mark}"
        redis.rpush(f"rq:queue:{queue}", f"job-{mark}")
        redis.hset(f"rq:job:job-{mark}", "origin", queue)
        redis.set(f"loyalty:{queue}:inbox-signal", b"1")
        redis.sadd("rq:queues", f"rq:queue:{queue}")
        redis.sadd("rq:workers", f"rq:worker:w-{mark}")
    try:
        forget_redis_keys(redis, ours)
        assert not redis.exists(f"rq:queue:loyalty-test-{ours}", f"rq:job:job-{ours}")
        assert not redis.exists(f"loyalty:loyalty-test-{ours}:inbox-signal")
        assert not redis.sismember("rq:queues", f"rq:queue:loyalty-test-{ours}")
        assert not redis.sismember("rq:workers", f"rq:worker:w-{ours}")
        assert redis.exists(f"rq:queue:loyalty-test-{theirs}", f"rq:job:job-{theirs}") == 2
        assert redis.exists(f"loyalty:loyalty-test-{theirs}:inbox-signal")
        assert redis.sismember("rq:queues", f"rq:queue:loyalty-test-{theirs}")
        assert redis.sismember("rq:workers", f"rq:worker:w-{theirs}")
    finally:
        forget_redis_keys(redis, theirs)


def collected(tiers: str) -> str:
    """The test ids `pytest -m TIERS` would run (collection only)."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", tiers, "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": "sqlite"},
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def test_each_test_gets_the_tier_of_the_fixtures_and_helpers_it_uses():
    sqlite_pass = collected("db or http")
    assert "test_admin_api.py::test_a_valid_session_token_reads_the_settings" in sqlite_pass  # the client: http
    assert "test_inbox.py::test_a_deadlocked_batch_is_redone_one_delivery_per_transaction" in sqlite_pass  # db
    assert "test_shopify_app_files.py::" not in sqlite_pass  # no database: unit
    assert "test_worker.py::" not in sqlite_pass  # real rq workers: e2e
    assert "test_widget_browser.py::" not in sqlite_pass  # chromium: browser
