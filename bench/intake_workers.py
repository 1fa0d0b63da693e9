"""The intake under several gunicorn worker settings in one run, app and bare Flask alternating (issue #21).

    python -m bench.intake_workers [--rounds 3] [--seconds 8]

bench.run's intake figure is one setting (the Procfile's) against bare Flask served alike. On a shared machine
two settings cannot be compared across runs, so this starts every setting at once, for the app and for bare
Flask, and runs wrk against each in turn, round after round: each figure has a same-run neighbour.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.common import median, order_body, prepared_database, throughput, webhook_hmac
from bench.harness import SHOP, running, start_web, wrk

# name: GUNICORN_CMD_ARGS added to the Procfile's line (WEB_CONCURRENCY=2 workers; gunicorn.conf.py gives each 2
# threads, decision 0038). The worker count is the Procfile's own --workers, which wins over this variable:
# bench.run with WEB_CONCURRENCY=4 measures more workers.
# The threaded settings use gunicorn.conf.py's worker class (decision 0063), as the Procfile's line does.
BALANCED = "--worker-class plugin.web.balanced_accept.BalancedThreadWorker"
SETTINGS = {
    "sync, 2 workers": "--worker-class sync --threads 1",
    "balanced gthread, 2 workers x 4 threads": f"{BALANCED} --threads 4",
    "balanced gthread, 2 workers x 2 threads": f"{BALANCED} --threads 2",
}


def run(rounds: int, seconds: int, connections: int = 4) -> dict:
    _url, env = prepared_database("loyalty_bench_intake_workers")
    body_file = Path(tempfile.mkdtemp(prefix="bench-intake-workers-")) / "order.json"
    body = order_body()
    body_file.write_bytes(body)
    args = (str(body_file), webhook_hmac(body), SHOP, "orders/paid")
    rps: dict[str, list[float]] = {}
    with ExitStack() as stack:
        servers = {}
        for name, extra in SETTINGS.items():
            for kind, spec in (("app", "plugin:create_app()"), ("bare", "bench.bare_app:app")):
                process, base = start_web(f"web-workers-{kind}", spec, {**env, "GUNICORN_CMD_ARGS": extra})
                stack.enter_context(running(process))
                servers[f"{kind}: {name}"] = base
        for base in servers.values():
            wrk(base, "webhook.lua", *args, "warmup", connections=connections, seconds=2)
        for round_number in range(rounds):
            for label, base in servers.items():
                result = wrk(base, "webhook.lua", *args, f"r{round_number}", connections=connections, seconds=seconds)
                rps.setdefault(label, []).append(throughput(result))
    medians = {label: round(median(values)) for label, values in rps.items()}
    return {
        "rps": medians,
        "ratio_to_bare_alike": {
            name: round(medians[f"app: {name}"] / medians[f"bare: {name}"], 2) for name in SETTINGS
        },
        "ratio_to_bare_sync_2": {
            name: round(medians[f"app: {name}"] / medians["bare: sync, 2 workers"], 2) for name in SETTINGS
        },
        "load_average": [round(load, 1) for load in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    print(json.dumps(run(args.rounds, args.seconds), indent=1))


if __name__ == "__main__":
    main()
