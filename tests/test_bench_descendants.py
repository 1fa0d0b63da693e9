"""bench.harness.descendants: a process tree from its threads' children files, as the full /proc scan finds it."""

import os
import signal
import subprocess
import sys
import time

from bench import harness

# A root whose child is started from a second thread (a process may fork from any of its threads), and a
# grandchild below that child: each prints its pid, then sleeps until killed.
GRANDCHILD = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
CHILD = (
    "import os, subprocess, sys, time; print(os.getpid(), flush=True); "
    f"subprocess.Popen([sys.executable, '-c', {GRANDCHILD!r}]); time.sleep(60)"
)
ROOT = f"""
import subprocess, sys, threading, time
def start():
    subprocess.Popen([sys.executable, '-c', {CHILD!r}])
    time.sleep(60)  # alive: a thread's children go to another thread of its process only when it exits
threading.Thread(target=start, daemon=True).start()
time.sleep(60)
"""


def test_a_tree_is_found_through_every_thread_as_the_full_scan_finds_it(monkeypatch):
    root = subprocess.Popen([sys.executable, "-c", ROOT], stdout=subprocess.PIPE, text=True)
    below: list[int] = []
    try:
        below += [int(root.stdout.readline()), int(root.stdout.readline())]
        child, grandchild = below
        time.sleep(0.2)  # the grandchild has printed: every process of the tree is running
        found = harness.descendants(root.pid)
        assert sorted(found) == sorted([root.pid, child, grandchild])
        assert found[0] == root.pid
        monkeypatch.setattr(harness, "_CHILDREN_FILES", False)
        assert sorted(harness.descendants(root.pid)) == sorted(found)
    finally:
        for pid in below:
            os.kill(pid, signal.SIGKILL)
        root.kill()
        root.wait()


def test_a_process_that_is_gone_is_its_own_tree():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert harness.descendants(process.pid) == [process.pid]
