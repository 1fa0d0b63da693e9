"""bench/cpu.py: CPU seconds per role, counting a process that exits during the stretch once."""

import subprocess
import sys
import time

from bench.cpu import CpuAccount, tree_seconds

BUSY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"


def test_a_reaped_child_counts_in_its_parents_share():
    account = CpuAccount({}).start()
    subprocess.run([sys.executable, "-c", BUSY], check=True)  # runs, exits, and is reaped within the stretch
    account.stop()
    assert account.spent["bench_and_wrk"] >= 0.3
    assert account.spent["machine"] >= account.spent["bench_and_wrk"] - 0.1  # tick rounding at both ends
    assert account.per_order_ms(100)["bench_and_wrk"] == round(account.spent["bench_and_wrk"] * 10, 2)


def test_a_running_childs_cpu_is_in_its_parents_tree():
    child = subprocess.Popen([sys.executable, "-c", BUSY + "time.sleep(30)\n"])
    try:
        deadline = time.monotonic() + 20
        while tree_seconds(child.pid) < 0.3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tree_seconds(child.pid) >= 0.3
        account = CpuAccount({"child": [child.pid]}).start()
        account.stop()
        assert account.spent["child"] < 0.1  # it sleeps now: what it spent before the stretch is not counted
    finally:
        child.kill()
        child.wait()
