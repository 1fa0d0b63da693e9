"""`make chaos`: a shuffled, repeated event stream while workers are SIGKILLed and the shop fails; is it exact?

Real parts, started as the Procfile starts them: gunicorn serving `plugin:create_app()`, several `rq worker` processes
with the LoyaltyWorker class, and the fake shop (`python -m plugin.devtools.fake_shop`) failing a share of its calls.
Signed webhooks and App Proxy redemptions go over loopback HTTP. At the end every balance must equal an oracle
computed from the event list alone (bench/chaos_oracle.py), every redemption must hold exactly one code, no delivery
may be lost and `loyalty verify-ledger` must pass. Results go to docs/reliability.md; the exit code is 0 only if all
checks pass.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import random
import re
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import chaos_events
import chaos_oracle
import chaos_plan
import requests
from chaos_procs import ROOT, Killer, WorkerPool, free_port, spawn, stop, wait_until_answering
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine

BIN = Path(sys.executable).parent
SHOPIFY_TIMEOUT = 1.0  # the app's read timeout for each Admin API call (SHOPIFY_API_TIMEOUT)
SLOW_SECONDS = 1.5  # the fake shop's slow answers arrive after the app stopped waiting: work done, answer lost
LEASE_SECONDS = 10  # LOYALTY_REDEMPTION_LEASE_SECONDS: a killed code job's redemption is retried after this
# LOYALTY_SWEEP_INTERVAL_SECONDS: idle workers sweep every 2 s, so an event retried after 1 s (and the member's
# later events held behind it, decision 0028) goes on within seconds, not the production default's 15 s.
SWEEP_INTERVAL_SECONDS = 2
SWEEP_AFTER_SECONDS = 2  # LOYALTY_SWEEP_AFTER_SECONDS: how long a delivery waits unsignalled before a sweep takes it
EVENTS_FIRST_RETRY_SECONDS = 1  # LOYALTY_EVENTS_FIRST_RETRY_SECONDS: a failed event delivery is retried after 1, 2, 4 s
CHECKS = 6  # balances, codes, inbox, ledger, outgoing events, expiry
EXPIRY_KILLS = 3  # the expiry run is SIGKILLed this many times before it is let finish
# A batch of the expiry run is open: its transaction locked the run's row (SELECT ... FOR UPDATE takes RowShareLock
# on the table until it commits).
BATCH_OPEN = (
    "SELECT count(*) > 0 FROM pg_locks WHERE relation = 'expiry_runs'::regclass AND mode = 'RowShareLock'"
    " AND granted AND pid <> pg_backend_pid()"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="requests in the stream, duplicates included")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3, help="rq worker processes")
    parser.add_argument("--fail-rate", type=float, default=0.2, help="share of fake-shop calls that fail")
    parser.add_argument("--duplicates", type=float, default=0.3, help="share of the stream that repeats a request")
    parser.add_argument("--customers", type=int, help="default: events / 25, between 20 and 400")
    parser.add_argument("--senders", type=int, default=8, help="concurrent sender threads")
    parser.add_argument("--kill-after", type=float, default=15, help="seconds kills go on after the stream")
    parser.add_argument("--no-kills", action="store_true", help="diagnosis only: a run without kills cannot pass")
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for the whole run; past it, it fails")
    parser.add_argument("--out", default="docs/reliability.md")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/loyalty_chaos")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")  # 15: the tests; 13: bench/harness.py
    parser.add_argument("--logs", help="where process logs go (default bench/results/chaos-SEED-TIME)")
    args = parser.parse_args(argv)
    if args.customers is None:
        args.customers = min(max(args.events // 25, 20), 400)
    return args


class DeadlineExceeded(Exception):
    """The run took longer than --deadline: it fails, with what it was waiting for."""


class Terminated(Exception):
    """SIGTERM or SIGHUP: stop, but clean up the processes and say so in the report."""


def _terminated(signum: int, _frame) -> None:
    raise Terminated(f"the run received {signal.Signals(signum).name}")


@dataclass
class Deadline:
    at: float

    def left(self) -> float:
        return self.at - time.monotonic()

    def check(self, what: str) -> None:
        if self.left() <= 0:
            raise DeadlineExceeded(f"the run's deadline passed while {what}")


@dataclass
class Outcome:
    send: chaos_plan.Send
    status: int | None
    tries: int
    body: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    problems: list[str] = field(default_factory=list)  # why earlier tries were not accepted


class Senders:
    """Concurrent senders; each request is retried (same delivery id, same idempotency key) until acknowledged."""

    TRIES = 8

    def __init__(self, base_url: str, secret: str, deadline: Deadline, threads: int):
        self.base_url, self.secret, self.deadline, self.threads = base_url, secret, deadline, threads
        self.local = threading.local()

    def run(self, sends: list[chaos_plan.Send], request) -> list[Outcome]:
        work: queue.Queue[chaos_plan.Send] = queue.Queue()
        for send in sends:
            work.put(send)
        outcomes: list[Outcome] = []

        def loop() -> None:
            self.local.http = requests.Session()
            while self.deadline.left() > 0:
                try:
                    send = work.get_nowait()
                except queue.Empty:
                    return
                outcomes.append(self._with_retries(send, request))

        threads = [threading.Thread(target=loop, name=f"sender-{n}", daemon=True) for n in range(self.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(self.deadline.left(), 0) + 60)
        self.deadline.check("sending")
        return outcomes

    def _with_retries(self, send: chaos_plan.Send, request) -> Outcome:
        problems: list[str] = []
        for attempt in range(1, self.TRIES + 1):
            try:
                response = request(self.local.http, send)
            except requests.RequestException as error:
                problems.append(type(error).__name__)
            else:
                if response.status_code < 500 and response.status_code != 429:
                    is_json = response.headers.get("Content-Type", "").startswith("application/json")
                    return Outcome(
                        send, response.status_code, attempt, response.json() if is_json else {}, "", problems
                    )
                problems.append(f"HTTP {response.status_code}")
            time.sleep(min(0.2 * 2**attempt, 5))  # the shop retries later too; so does the widget
        return Outcome(send, None, self.TRIES, error=problems[-1], problems=problems)

    def webhook(self, http: requests.Session, send: chaos_plan.Send) -> requests.Response:
        triggered = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        headers = chaos_plan.webhook_headers(send, self.secret, triggered)
        return http.post(f"{self.base_url}/webhooks/shopify", data=send.body, headers=headers, timeout=(3, 30))

    def redeem(self, http: requests.Session, send: chaos_plan.Send) -> requests.Response:
        # Signed afresh on every try: the App Proxy signs each request with its own timestamp.
        params = chaos_plan.proxy_params(send.customer_id, self.secret, int(time.time()))
        body = {"reward_id": send.reward_id, "idempotency_key": send.idempotency_key}
        return http.post(f"{self.base_url}/proxy/redeem", params=params, json=body, timeout=(3, 30))

    def either(self, http: requests.Session, send: chaos_plan.Send) -> requests.Response:
        return self.redeem(http, send) if send.kind == "redeem" else self.webhook(http, send)


class Chaos:
    """One run: the database, the processes, the stream, the wait, and the facts the checks need."""

    def __init__(self, args: argparse.Namespace, plan: chaos_plan.Plan):
        self.args, self.plan = args, plan
        self.deadline = Deadline(time.monotonic() + args.deadline)
        self.queue = f"loyalty-chaos-{os.getpid()}"
        self.secret = "shpss_chaos_" + secrets.token_hex(16)
        self.token = "shpat_chaos_" + secrets.token_hex(12)
        self.secret_key, self.encryption_key = secrets.token_hex(16), Fernet.generate_key().decode()
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        self.logs = Path(args.logs or ROOT / "bench" / "results" / f"chaos-{args.seed}-{stamp}")
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[subprocess.Popen] = []
        self.pool: WorkerPool | None = None
        self.killer: Killer | None = None
        self.engine: Engine | None = None
        self.figures: dict[str, Any] = {}
        self.outcomes: list[Outcome] = []
        self.receiver = chaos_events.Receiver(args.fail_rate, args.seed + 2)

    # -- setup -------------------------------------------------------------------------------------------------

    def env(self, fake_shop_url: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self.args.database_url,
            "REDIS_URL": self.args.redis_url,
            "LOYALTY_QUEUE": self.queue,
            "SHOPIFY_API_KEY": "chaos-app",
            "SHOPIFY_API_SECRET": self.secret,
            "SHOPIFY_API_SECRET_PREVIOUS": "",
            "SHOPIFY_API_BASE_URL": fake_shop_url,
            "SHOPIFY_API_TIMEOUT": str(SHOPIFY_TIMEOUT),
            "SHOPIFY_APP_URL": "",  # no webhook subscriptions to check against the fake shop
            "SECRET_KEY": self.secret_key,
            "LOYALTY_ENCRYPTION_KEYS": self.encryption_key,  # the same in every process, or tokens cannot be read
            "LOYALTY_SWEEP_AFTER_SECONDS": str(SWEEP_AFTER_SECONDS),
            "LOYALTY_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_SECONDS),
            "LOYALTY_REDEMPTION_LEASE_SECONDS": str(LEASE_SECONDS),
            # Reconciliation would fetch orders from the fake shop, which has none: off, so balances come from the
            # webhooks alone and a lost delivery cannot be repaired behind the check's back.
            "LOYALTY_RECONCILE_EVERY_MINUTES": "0",
            "LOYALTY_DEMO": "",
            "LOYALTY_EVENTS_ALLOW_LOOPBACK": "1",  # the merchant's receiver is this script, on loopback
            "LOYALTY_EVENTS_FIRST_RETRY_SECONDS": str(EVENTS_FIRST_RETRY_SECONDS),
        }

    def create_database(self) -> None:
        url = make_url(self.args.database_url)
        name = url.database or ""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name) or "chaos" not in name:
            raise SystemExit(f"refusing to drop and create {name!r}: the chaos database's name must contain 'chaos'")
        admin = create_engine(_psycopg(url.set(database="postgres")), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            connection.execute(text(f"CREATE DATABASE {name}"))
        admin.dispose()
        self.engine = create_engine(_psycopg(url), pool_size=2)

    def flask(self, env: dict[str, str], *arguments: str) -> str:
        done = subprocess.run(
            [str(BIN / "flask"), "--app", "plugin", "loyalty", *arguments],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=max(min(self.deadline.left(), 180), 1),
        )
        if done.returncode != 0:
            raise RuntimeError(f"flask loyalty {' '.join(arguments)} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def start(self) -> None:
        started = time.monotonic()
        self.figures["_load_before"] = os.getloadavg()
        self.create_database()
        fake_port = free_port()
        fake = spawn(
            [
                sys.executable,
                "-m",
                "plugin.devtools.fake_shop",
                "--port",
                str(fake_port),
                "--token",
                self.token,
                "--fail-rate",
                str(self.args.fail_rate),
                "--slow-seconds",
                str(SLOW_SECONDS),
                "--seed",
                str(self.args.seed),
            ],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            self.logs / "fake-shop.log",
        )
        self.processes.append(fake)
        self.fake_url = f"http://127.0.0.1:{fake_port}"
        wait_until_answering(fake, f"{self.fake_url}/_fake/codes", 30)
        env = self.env(self.fake_url)

        self.flask(env, "db-upgrade")  # the Procfile's release step
        self.flask(env, "shops", "add", chaos_plan.SHOP, "--token", self.token)
        settings = {"pending_days": 0, "rewards": chaos_plan.REWARDS}
        self.flask(env, "settings", chaos_plan.SHOP, "--set", json.dumps(settings))
        self.support_key = json.loads(
            self.flask(env, "keys", "create", chaos_plan.SHOP, "chaos-grants", "--scope", "write")
        )["key"]
        # The merchant's event receiver: every event of the run is delivered to it, signed, while workers die.
        self.receiver.start()
        added = json.loads(self.flask(env, "events", "add-endpoint", chaos_plan.SHOP, self.receiver.url))
        self.receiver.secret = added["secret"]

        web_port = free_port()
        web = spawn(
            [str(BIN / "gunicorn"), "--workers", "2", "--bind", f"127.0.0.1:{web_port}", "plugin:create_app()"],
            env,
            self.logs / "web.log",
        )
        self.processes.append(web)
        self.base_url = f"http://127.0.0.1:{web_port}"
        wait_until_answering(web, f"{self.base_url}/healthz", 60)
        self.pool = WorkerPool(self.args.workers, self.args.redis_url, self.queue, env, self.logs, str(BIN / "rq"))
        self.pool.start()
        self.senders = Senders(self.base_url, self.secret, self.deadline, self.args.senders)

        # Customers join first (a customers/create delivery each), then get their opening grant through the
        # support API, the supported way to give points by hand: audited, with an idempotency key.
        self.outcomes += self.senders.run(self.plan.setup, self.senders.webhook)
        self.wait_for(lambda: self.count("SELECT count(*) FROM members") == len(self.plan.customers), "members join")
        grants = [
            chaos_plan.Send("grant", customer_id=c, idempotency_key=f"chaos-grant-{self.args.seed}-{c}")
            for c in self.plan.customers
        ]
        refused = [o for o in self.senders.run(grants, self.grant) if o.status != 201]
        if refused:
            raise RuntimeError(
                f"{len(refused)} opening grants were refused, e.g. {refused[0].status} {refused[0].body}"
            )
        self.figures["setup_seconds"] = time.monotonic() - started

    def grant(self, http: requests.Session, send: chaos_plan.Send) -> requests.Response:
        return http.post(
            f"{self.base_url}/api/support/members/{send.customer_id}/adjustments",
            json={
                "points": self.plan.grants[send.customer_id],
                "reason_code": "goodwill",
                "note": "chaos opening grant",
            },
            headers={"Authorization": f"Bearer {self.support_key}", "Idempotency-Key": send.idempotency_key},
            timeout=(3, 30),
        )

    # -- the stream ----------------------------------------------------------------------------------------------

    def watch_backlog(self, halt: threading.Event) -> None:
        """Sample the RQ queue's length and the inbox's backlog: they explain the time to drain."""
        redis = Redis.from_url(self.args.redis_url, socket_timeout=5)
        while not halt.wait(1.0):
            try:
                length = redis.llen(f"rq:queue:{self.queue}")
                waiting = self.count("SELECT count(*) FROM deliveries WHERE status = 'received'")
            except Exception:  # a missed sample is not worth failing the run for
                continue
            self.figures["_peak_queue"] = max(self.figures.get("_peak_queue", 0), length)
            self.figures["_peak_inbox"] = max(self.figures.get("_peak_inbox", 0), waiting)

    def replay(self) -> None:
        halt = threading.Event()
        watcher = threading.Thread(target=self.watch_backlog, args=(halt,), name="backlog-watch", daemon=True)
        watcher.start()
        try:
            self._replay()
        finally:
            halt.set()
            watcher.join(timeout=10)

    def _replay(self) -> None:
        if not self.args.no_kills:
            self.killer = Killer(self.pool, self.args.seed + 1)
            self.killer.start()
        began = time.monotonic()
        self.outcomes += self.senders.run(self.plan.stream, self.senders.either)
        sent = time.monotonic()
        self.figures |= {"stream_seconds": sent - began, "stream_began": began, "stream_ended": sent}
        if self.killer is not None:
            # Kills go on for a while after the last request, while the backlog drains.
            self.killer.halt.wait(max(min(self.args.kill_after, self.deadline.left() - 5), 0))
            self.killer.finish()
            if self.killer.error is not None:
                raise RuntimeError(f"the killer thread failed: {self.killer.error!r}")
        self.figures["kills_ended"] = time.monotonic()
        self.pool.revive()

        def settled() -> bool:
            self.pool.revive()  # a worker that died by itself is restarted (and reported), as a platform would
            waiting = self.count("SELECT count(*) FROM deliveries WHERE status = 'received'")
            pending = self.count("SELECT count(*) FROM redemptions WHERE status = 'pending'")
            # Neither can rise again once the stream is over: note when each first reached zero.
            for name, left in (("_inbox_empty", waiting), ("_redemptions_settled", pending)):
                if left == 0:
                    self.figures.setdefault(name, time.monotonic())
            return waiting == 0 and pending == 0

        self.wait_for(settled, "the inbox drains and every redemption settles", poll=0.5)
        self.figures["drained"] = time.monotonic()

    # -- expiry under kills, then every event delivered ----------------------------------------------------------

    def expire(self) -> dict[str, Any]:
        """Per-lot expiry after one month, run as of two months from now: SIGKILLed EXPIRY_KILLS times, then let
        finish. Returns the balances before and after, the points each member's expire postings took, verify-ledger."""
        env = self.env(self.fake_url)
        before = self.balances()
        self.flask(env, "expiry", "set", chaos_plan.SHOP, json.dumps({"policy": "per_lot", "months": 1}))
        as_of = (datetime.now(UTC) + timedelta(days=62)).isoformat()
        command = [str(BIN / "flask"), "--app", "plugin", "loyalty", "expiry", "run", chaos_plan.SHOP, "--as-of", as_of]
        pacing = random.Random(self.args.seed + 3)
        # Each kill lands inside a batch: once the run's batch transaction holds its row of expiry_runs (FOR
        # UPDATE), after 0-50 ms more. Killed at the CLI's start-up plus 0-1.5 s instead, a run on a fast machine
        # finished before its first kill and the check ran under no kill at all.
        started = time.monotonic()
        self.flask(env, "expiry", "show", chaos_plan.SHOP)
        start_up = time.monotonic() - started
        self.figures["expiry_start_up_seconds"] = start_up
        kills = interrupted = 0
        for _ in range(EXPIRY_KILLS):
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._until_a_batch_is_open(process, timeout=start_up * 3 + 60):
                time.sleep(pacing.uniform(0.0, 0.05))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                # Did the kill land inside a run (started, not finished)? Counted, not assumed.
                interrupted += self.count("SELECT count(*) FROM expiry_runs WHERE completed_at IS NULL")
            else:
                process.wait()
        self.flask(env, "expiry", "run", chaos_plan.SHOP, "--as-of", as_of)
        with self.engine.connect() as connection:
            expired = dict(
                connection.execute(
                    text(
                        "SELECT m.customer_id, sum(p.points) FROM postings p JOIN members m ON m.id = p.member_id"
                        " WHERE p.kind = 'expire' GROUP BY m.customer_id"
                    )
                ).all()
            )
        verify = subprocess.run(
            [str(BIN / "flask"), "--app", "plugin", "loyalty", "verify-ledger"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        self.figures["expiry_kills"] = kills
        self.figures["expiry_interrupted"] = interrupted
        return {
            "before": before,
            "after": self.balances(),
            "expired": {c: int(v) for c, v in expired.items()},
            "verify": (verify.returncode, (verify.stdout + verify.stderr).strip()),
            "kills": kills,
            "interrupted": interrupted,
        }

    def _until_a_batch_is_open(self, process: subprocess.Popen, timeout: float) -> bool:
        """Whether, before `process` ended, another session held expiry_runs' row lock (a batch's transaction)."""
        deadline = time.monotonic() + timeout
        with self.engine.connect() as connection:
            while process.poll() is None and time.monotonic() < deadline:
                if connection.execute(text(BATCH_OPEN)).scalar_one():
                    return True
                connection.rollback()  # a fresh snapshot of pg_locks each time
                time.sleep(0.01)
        return False

    def balances(self) -> dict[int, int]:
        with self.engine.connect() as connection:
            return dict(connection.execute(text("SELECT customer_id, balance FROM members")).all())

    def events_delivered(self) -> list[dict]:
        """Wait until every outbox event is fanned out and delivered (the workers' jobs and sweeper do it)."""
        self.pool.revive()

        def done() -> bool:
            self.pool.revive()
            unfanned = self.count("SELECT count(*) FROM outbox_events WHERE fanned_out_at IS NULL")
            pending = self.count("SELECT count(*) FROM event_deliveries WHERE status = 'pending'")
            return unfanned == 0 and pending == 0

        began = time.monotonic()
        self.wait_for(done, "every outgoing event is delivered", poll=0.5)
        self.figures["events_seconds"] = time.monotonic() - began
        with self.engine.connect() as connection:
            return [
                dict(row)
                for row in connection.execute(text("SELECT id, event_id, event_type FROM outbox_events")).mappings()
            ]

    def count(self, sql: str) -> int:
        with self.engine.connect() as connection:
            return connection.execute(text(sql)).scalar_one()

    def wait_for(self, predicate, what: str, poll: float = 0.3) -> None:
        while not predicate():
            self.deadline.check(f"waiting until {what}")
            time.sleep(poll)

    # -- facts for the checks ----------------------------------------------------------------------------------

    def facts(self) -> dict[str, Any]:
        with self.engine.connect() as connection:
            shop_id = connection.execute(
                text("SELECT id FROM shops WHERE domain = :d"), {"d": chaos_plan.SHOP}
            ).scalar_one()
            balances = dict(
                connection.execute(
                    text("SELECT customer_id, balance FROM members WHERE shop_id = :s"), {"s": shop_id}
                ).all()
            )
            deliveries = [
                dict(row)
                for row in connection.execute(
                    text("SELECT id, webhook_id, topic, status, reason FROM deliveries WHERE shop_domain = :d"),
                    {"d": chaos_plan.SHOP},
                ).mappings()
            ]
            redemptions = [
                dict(row)
                for row in connection.execute(
                    text(
                        "SELECT r.id, r.status, r.code, r.discount_id, r.idempotency_key, r.points, r.attempts,"
                        " r.reason, m.customer_id FROM redemptions r JOIN members m ON m.id = r.member_id"
                        " WHERE r.shop_id = :s"
                    ),
                    {"s": shop_id},
                ).mappings()
            ]
        shop = requests.get(f"{self.fake_url}/_fake/codes", timeout=10).json()
        verify = subprocess.run(
            [str(BIN / "flask"), "--app", "plugin", "loyalty", "verify-ledger"],
            cwd=ROOT,
            env=self.env(self.fake_url),
            capture_output=True,
            text=True,
            timeout=300,
        )
        return {
            "balances": balances,
            "deliveries": deliveries,
            "redemptions": redemptions,
            "shop": shop,
            "verify_ledger": (verify.returncode, (verify.stdout + verify.stderr).strip()),
        }

    def close(self) -> None:
        self.receiver.stop()
        if self.killer is not None:
            self.killer.finish()
        if self.pool is not None:
            self.pool.stop()
        for process in reversed(self.processes):
            stop(process)
        if self.engine is not None:
            self.engine.dispose()
        _forget_queue(self.args.redis_url, self.queue)


def _psycopg(url) -> str:
    return url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _forget_queue(redis_url: str, name: str) -> None:
    """Delete this run's RQ queue, registries, jobs, worker records and signal keys; other runs' keys stay."""
    try:
        redis = Redis.from_url(redis_url, socket_timeout=5)
        doomed = [key for key in redis.scan_iter(count=1000) if name.encode() in key]
        for key in redis.scan_iter(match="rq:job:*", count=1000):
            if redis.type(key) == b"hash" and redis.hget(key, "origin") == name.encode():
                doomed.append(key)
        for members in ("rq:workers", f"rq:workers:{name}"):
            stale = [w for w in redis.smembers(members) if name.encode() in w]
            if stale:
                redis.srem(members, *stale)
        for start in range(0, len(doomed), 500):
            redis.delete(*doomed[start : start + 500])
    except Exception as error:  # cleanup must not hide the run's result
        print(f"warning: could not clean Redis keys of queue {name}: {error}", file=sys.stderr)


# -- checks ----------------------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    passed: bool
    summary: str
    details: list[str] = field(default_factory=list)


def check_balances(expected: dict[int, chaos_oracle.Expected], balances: dict[int, int]) -> Check:
    details = []
    for customer in sorted(set(expected) | set(balances)):
        want = expected.get(customer)
        got = balances.get(customer)
        if want is None or got is None or got != want.balance:
            parts = (
                f"expected {want.balance} = grant {want.grant} + orders {want.orders} - redeemed {want.redeemed}"
                if want
                else "not expected to be a member"
            )
            details.append(f"customer {customer}: balance {got if got is not None else 'missing'}; {parts}")
    total = sum(e.balance for e in expected.values())
    summary = f"{len(expected) - len(details)}/{len(expected)} balances equal the oracle (total {total:,} points)"
    return Check("1. every balance equals the oracle", not details and bool(expected), summary, details)


def check_codes(redemptions: list[dict], shop: dict, keys_sent: set[str], outcomes: list[Outcome]) -> Check:
    details = []
    statuses = Counter(r["status"] for r in redemptions)
    for r in redemptions:
        if r["status"] != "issued":
            details.append(f"redemption {r['id']} is {r['status']}: {r['reason']}")
    issued = {r["code"]: r for r in redemptions if r["status"] == "issued"}
    created = {c["code"]: c for c in shop["codes"]}
    for code, times in shop["creates"].items():
        if times != 1:
            details.append(f"code {code} was created {times} times")
    for code in sorted(set(created) - set(issued)):
        details.append(f"the shop holds {code} (deleted: {created[code]['deleted']}) for no issued redemption")
    for code in sorted(set(issued) - set(created)):
        details.append(f"redemption {issued[code]['id']} is issued with {code}, which the shop never created")
    for code in sorted(set(issued) & set(created)):
        if created[code]["deleted"] or created[code]["id"] != issued[code]["discount_id"]:
            details.append(
                f"{code}: deleted={created[code]['deleted']}, shop id {created[code]['id']} "
                f"vs redemption's {issued[code]['discount_id']}"
            )
    stored_keys = Counter(r["idempotency_key"] for r in redemptions)
    if len(redemptions) != len(keys_sent) or set(stored_keys) != keys_sent:
        details.append(f"{len(keys_sent)} distinct redemption requests, {len(redemptions)} redemptions stored")
    details += [f"idempotency key {k} has {n} redemptions" for k, n in stored_keys.items() if n > 1]
    answers: dict[str, set] = {}
    for outcome in outcomes:
        if outcome.send.kind == "redeem":
            answers.setdefault(outcome.send.idempotency_key, set()).add(
                (outcome.body.get("redemption") or {}).get("id")
            )
    details += [
        f"repeats of key {k} were answered with redemptions {sorted(map(str, ids))}"
        for k, ids in answers.items()
        if len(ids) != 1
    ]
    summary = (
        f"{len(keys_sent)} redemption requests -> {len(redemptions)} redemptions ({dict(statuses)}); "
        f"{len(created)} codes in the shop, each created {sorted(set(shop['creates'].values()))} time(s)"
    )
    return Check("2. exactly one code per issued redemption", not details and bool(keys_sent), summary, details)


def check_inbox(deliveries: list[dict], ids_sent: set[str]) -> Check:
    details = []
    stored = Counter(d["webhook_id"] for d in deliveries)
    statuses = Counter(d["status"] for d in deliveries)
    lost = ids_sent - set(stored)
    if lost:
        details.append(f"{len(lost)} acknowledged deliveries have no inbox row, e.g. {sorted(lost)[:5]}")
    if set(stored) - ids_sent:
        details.append(f"{len(set(stored) - ids_sent)} inbox rows were never sent")
    details += [f"webhook id {w} stored {n} times" for w, n in stored.items() if n > 1]
    for d in deliveries:
        if d["status"] != "processed":
            details.append(f"delivery {d['id']} ({d['topic']}) is {d['status']}: {d['reason']}")
    summary = f"{len(ids_sent):,} distinct webhook ids sent, {len(deliveries):,} inbox rows: {dict(statuses)}"
    return Check("3. no inbox row lost", not details and bool(ids_sent), summary, details)


def check_ledger(result: tuple[int, str]) -> Check:
    code, output = result
    lines = output.splitlines()
    return Check("4. verify-ledger is clean", code == 0, f"exit {code}: {lines[-1] if lines else ''}", lines[:20])


# -- report ----------------------------------------------------------------------------------------------------


def machine(engine: Engine | None, redis_url: str) -> dict[str, str]:
    def first(path: str, prefix: str) -> str:
        try:
            return next(
                ln.split(":", 1)[1].strip() for ln in Path(path).read_text().splitlines() if ln.startswith(prefix)
            )
        except (OSError, StopIteration):
            return "unknown"

    try:
        with engine.connect() as connection:
            pg = connection.execute(text("SHOW server_version")).scalar_one()
    except Exception:
        pg = "unknown"
    try:
        redis = Redis.from_url(redis_url, socket_timeout=5).info("server")["redis_version"]
    except Exception:
        redis = "unknown"
    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "CPU": f"{os.cpu_count()} x {first('/proc/cpuinfo', 'model name')}",
        "RAM": f"{int(mem_kb) / 1024 / 1024:.1f} GiB" if mem_kb.isdigit() else "unknown",
        "OS": platform.platform(),
        "Python": platform.python_version(),
        "PostgreSQL": pg,
        "Redis": redis,
    }


def report(args, plan, figures: dict[str, Any], checks: list[Check], host: dict[str, str], error: str) -> str:
    passed = not error and all(c.passed for c in checks) and len(checks) == CHECKS and not args.no_kills
    given = " ".join(shlex.quote(a) for a in sys.argv[1:])
    if os.environ.get("MAKELEVEL"):  # run by `make chaos`, which passes CHAOS_ARGS on
        command = "make chaos" + (f" CHAOS_ARGS={shlex.quote(given)}" if given else "")
    else:
        command = f"python bench/chaos.py {given}".strip()
    lines = [
        "# Reliability: the chaos replay",
        "",
        "A shuffled stream of signed webhooks (paid orders, partial refunds, cancellations) and App Proxy "
        "redemptions, with repeats, is sent to the real processes (gunicorn, `rq worker` with the LoyaltyWorker "
        "class, the fake shop) while a killer SIGKILLs workers and the fake shop fails a share of its calls. "
        "Recovery is left to the product (signals, the sweeper, leases); the script never re-enqueues anything. "
        "Expected balances come from an oracle that reads only the event list (`bench/chaos_oracle.py`): 1 point "
        "per 1.00 of each line's price x quantity less its line discounts (shipping and taxes earn nothing), a refund "
        "of k of n units takes back k/n of that line, an order holds the floor of what remains and a cancelled order "
        "nothing; plus each customer's opening grant (given through the support API before the stream, enough for "
        "every redemption the customer makes), less the cost of each distinct redemption. Every outgoing event "
        "(docs/events.md) goes, signed, to a receiver in this script that refuses a share of requests; once the "
        "stream is settled, per-lot expiry is run as of two months later, SIGKILLed three times and then let "
        "finish, and its events are delivered too: every event must reach the receiver by id with a valid "
        "signature, and every positive balance must expire to zero exactly once.",
        "",
        f"**Verdict: {'PASS' if passed else 'FAIL'}**" + (f" ({error})" if error else ""),
        "",
        f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}, seed {args.seed}. Command: `{command}`.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in host.items()],
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in figures.items() if not k.startswith("_")],
        "",
        "| check | result | |",
        "|---|---|---|",
        *[f"| {c.name} | {'pass' if c.passed else '**FAIL**'} | {c.summary} |" for c in checks],
    ]
    for check in checks:
        if check.details and not check.passed:
            lines += ["", f"{check.name}, details (first 30):", "", *[f"- {d}" for d in check.details[:30]]]
    lines += [
        "",
        "Settings: " + ", ".join(f"`{k}={v}`" for k, v in figures.get("_settings", {}).items()) + ".",
        "",
        "What is counted: *events* are the requests of the stream, repeats included (the customers/create "
        "deliveries and opening grants of the setup are not). A repeat is Shopify retrying one delivery (same "
        "`X-Shopify-Webhook-Id`), the same event under a new id, or a shopper's redeem request sent again with its "
        "idempotency key. A *horse* kill SIGKILLs the work horse running a job; a *worker* kill SIGKILLs the "
        "worker process and its horse, and the worker is started again at once.",
        "",
    ]
    return "\n".join(lines)


def jobs_run(logs: Path) -> str:
    """Jobs the work horses completed, by function, counted from the workers' logs (killed ones are not)."""
    done: Counter[str] = Counter()
    for log in logs.glob("worker-*.log"):
        done.update(re.findall(r"Successfully completed plugin\.jobs\.(\w+)", log.read_text(errors="replace")))
    return ", ".join(f"{name} {count:,}" for name, count in done.most_common()) or "none"


def retried(outcomes: list[Outcome]) -> str:
    """How many requests needed another try, and why (the app answered 5xx, or the connection failed)."""
    reasons = Counter(
        f"{problem} on {'/proxy/redeem' if o.send.kind == 'redeem' else o.send.topic or 'grant'}"
        for o in outcomes
        for problem in o.problems
    )
    count = sum(1 for o in outcomes if o.problems)
    return f"{count}" + (f" ({', '.join(f'{k} x{v}' for k, v in reasons.most_common())})" if reasons else "")


def _app_defaults():
    """The app's default settings (plugin/config.py), which the processes run with where the replay sets nothing."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from plugin.config import Settings

    return Settings()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for name in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(name, _terminated)
    plan = chaos_plan.build(args.seed, args.events, args.customers, args.duplicates)
    expected = chaos_oracle.expected_balances(plan.stream, plan.grants, chaos_plan.REWARD_COST)
    run = Chaos(args, plan)
    checks: list[Check] = []
    error = ""
    figures: dict[str, Any] = {}
    expired: dict[str, Any] | None = None
    outbox: list[dict] = []
    try:
        run.start()
        run.replay()
        facts = run.facts()
        expired = run.expire()
        outbox = run.events_delivered()
    except (DeadlineExceeded, Terminated, KeyboardInterrupt, RuntimeError, subprocess.TimeoutExpired) as failure:
        error = f"{type(failure).__name__}: {failure}"
        facts = None
    finally:
        host = machine(run.engine, args.redis_url)
        run.close()

    f = run.figures
    webhook_outcomes = [o for o in run.outcomes if o.send.kind == "webhook"]
    unanswered = [o for o in run.outcomes if o.status is None or o.status >= 400]
    if unanswered and not error:
        error = f"{len(unanswered)} requests were never accepted, e.g. {unanswered[0].send.topic or 'redeem'}: " + (
            unanswered[0].error or f"HTTP {unanswered[0].status} {unanswered[0].body}"
        )
    if facts is not None:
        ids_sent = {o.send.webhook_id for o in webhook_outcomes if o.status == 200}
        keys_sent = {f"proxy:{s.customer_id}:{s.idempotency_key}" for s in plan.stream if s.kind == "redeem"}
        checks = [
            check_balances(expected, facts["balances"]),
            check_codes(facts["redemptions"], facts["shop"], keys_sent, run.outcomes),
            check_inbox(facts["deliveries"], ids_sent),
            check_ledger(facts["verify_ledger"]),
        ]
        if expired is not None and outbox:
            checks += [
                chaos_events.check_events(outbox, run.receiver.received),
                chaos_events.check_expiry(
                    expired["before"],
                    expired["after"],
                    expired["expired"],
                    expired["verify"],
                    expired["kills"],
                    expired["interrupted"],
                ),
            ]
        shop = facts["shop"]
        attempts = Counter(r["attempts"] for r in facts["redemptions"])
        kills = run.pool.kills if run.pool else Counter()
        stream = f.get("stream_seconds", 0)
        drained = f["drained"]
        stream_rows = len(facts["deliveries"]) - len(plan.setup)
        defaults = _app_defaults()
        figures = {
            "events sent (stream)": f"{args.events:,}",
            "distinct events": (
                f"{plan.counts['distinct']:,}: {plan.counts['orders/paid']:,} orders/paid, "
                f"{plan.counts['refunds/create']:,} refunds/create, {plan.counts['orders/cancelled']:,} "
                f"orders/cancelled, {plan.counts['redeem']:,} redemptions"
            ),
            "duplicates": (
                f"{plan.counts['duplicates']:,} ({plan.counts['duplicates'] / args.events:.0%}): "
                f"{plan.counts['duplicates_same_id']:,} same webhook id, {plan.counts['duplicates_new_id']:,} "
                f"same event under a new id, {plan.counts['duplicates_same_key']:,} redeem repeats (same key)"
            ),
            "customers": f"{len(plan.customers)} (opening grants {sum(plan.grants.values()):,} points)",
            "requests retried by the senders": retried(run.outcomes),
            "worker kills (SIGKILL)": (
                f"{sum(kills.values())}: {kills['horse']} work horse only, {kills['worker']} whole worker, "
                f"{kills['worker (idle: no horse to kill)']} whole worker chosen for a horse kill but idle"
            ),
            "worker starts": f"{run.pool.starts if run.pool else 0} ({args.workers} at first)",
            "workers that died unasked": (
                "; ".join([str(len(run.pool.unexpected_exits)), *run.pool.unexpected_exits[:5]]) if run.pool else "-"
            ),
            "fake-shop calls": f"{shop['calls']:,}",
            "injected failures": (
                f"{sum(shop.get('failures', {}).values()):,} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(shop.get('failures', {}).items()))}); "
                f"fail rate {args.fail_rate:.0%}"
            ),
            "peak backlog (sampled each second)": (
                f"{f.get('_peak_inbox', 0):,} deliveries waiting in the inbox, {f.get('_peak_queue', 0):,} jobs in "
                "the RQ queue"
            ),
            "jobs run (from the worker logs)": jobs_run(run.logs),
            "code-creation attempts per redemption": ", ".join(f"{n}: {c}" for n, c in sorted(attempts.items())),
            "setup (database, processes, members, grants)": f"{f['setup_seconds']:.1f} s",
            "stream": f"{stream:.1f} s, {args.events / stream:,.0f} requests/s acknowledged" if stream else "-",
            "kills went on after the stream for": f"{f['kills_ended'] - f['stream_ended']:.1f} s",
            "time to drain after the last request": (
                f"{drained - f['stream_ended']:.1f} s (inbox empty after "
                f"{f['_inbox_empty'] - f['stream_ended']:.1f} s, last redemption settled after "
                f"{f['_redemptions_settled'] - f['stream_ended']:.1f} s)"
            ),
            "time to drain after the last kill": f"{drained - f['kills_ended']:.1f} s",
            "expiry run SIGKILLed / of which inside a started, unfinished run": (
                f"{f.get('expiry_kills', '-')} / {f.get('expiry_interrupted', '-')} (each kill 0-50 ms after a "
                "batch's transaction locked the run's row; the CLI's start-up "
                f"{f.get('expiry_start_up_seconds', 0):.1f} s)"
            ),
            "time to deliver every outgoing event after expiry": f"{f.get('events_seconds', 0):.1f} s",
            "deliveries per second, first request to drained": (
                f"{stream_rows / (drained - f['stream_began']):,.0f} "
                f"({stream_rows:,} inbox rows of the stream processed in {drained - f['stream_began']:.1f} s)"
            ),
            "load average (1, 5, 15 min) before / after": (
                f"{' '.join(f'{x:.2f}' for x in f['_load_before'])} / {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
                " (other processes on the machine share its cores)"
            ),
            "_settings": {
                "--workers": args.workers,
                "--senders": args.senders,
                "SHOPIFY_API_TIMEOUT": SHOPIFY_TIMEOUT,
                "fake shop --slow-seconds": SLOW_SECONDS,
                "LOYALTY_SWEEP_AFTER_SECONDS": SWEEP_AFTER_SECONDS,
                "LOYALTY_SWEEP_INTERVAL_SECONDS": SWEEP_INTERVAL_SECONDS,
                "LOYALTY_REDEMPTION_LEASE_SECONDS": LEASE_SECONDS,
                "LOYALTY_INBOX_BATCH": f"{defaults.inbox_batch_size} (default)",
                "LOYALTY_INBOX_RETRY_WAIT_SECONDS": f"{defaults.inbox_retry_wait_seconds} (default)",
                "LOYALTY_RECONCILE_EVERY_MINUTES": 0,
                "LOYALTY_EVENTS_FIRST_RETRY_SECONDS": EVENTS_FIRST_RETRY_SECONDS,
                "receiver's refusal rate": args.fail_rate,
            },
        }
    text_report = report(args, plan, figures, checks, host, error)
    out = Path(args.out)
    if not out.is_absolute():
        out = ROOT / out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text_report)
    print(text_report)
    print(f"process logs: {run.logs}", file=sys.stderr)
    passed = not error and len(checks) == CHECKS and all(c.passed for c in checks) and not args.no_kills
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
