"""The chaos replay's outgoing-events and expiry parts: a merchant's receiver that fails a share of requests, and
the checks that no event was lost (every outbox event received, signatures valid) and that expiry under kills is
exact (every balance the oracle says is positive expires to zero, once; negative balances are left alone).

The receiver verifies signatures with the standard library only, as docs/receiving-events.md tells a receiver to.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOLERANCE_SECONDS = 300


@dataclass
class Received:
    accepted: dict[str, dict] = field(default_factory=dict)  # event id -> the first body accepted
    duplicates: int = 0
    refused_on_purpose: int = 0
    bad_signatures: int = 0
    requests: int = 0
    first_accepted: list[tuple[int | None, int]] = field(default_factory=list)  # (customer, sequence), in order


class Receiver:
    """A loopback HTTP receiver: answers 503 to a seeded share of requests, 401 to a bad signature, else 200."""

    def __init__(self, fail_rate: float, seed: int):
        self.secret = ""
        self.fail_rate = fail_rate
        self.random = random.Random(seed)
        self.received = Received()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver: the sender reuses its connections

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = receiver.receive(body, self.headers.get("Loyalty-Signature", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/loyalty-events"
        self.thread = threading.Thread(target=self.server.serve_forever, name="event-receiver", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def verified(self, body: bytes, header: str) -> bool:
        parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
        try:
            timestamp = int(parts["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - timestamp) > TOLERANCE_SECONDS:
            return False
        expected = hmac.new(self.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts.get("v1", ""))

    def receive(self, body: bytes, header: str) -> int:
        with self.lock:
            self.received.requests += 1
            if self.random.random() < self.fail_rate:
                self.received.refused_on_purpose += 1
                return 503
            if not self.verified(body, header):
                self.received.bad_signatures += 1
                return 401
            event = json.loads(body)
            if event["id"] in self.received.accepted:
                self.received.duplicates += 1
            else:
                self.received.accepted[event["id"]] = event
                self.received.first_accepted.append((event.get("customer_id"), event["sequence"]))
            return 200


@dataclass
class Check:
    name: str
    passed: bool
    summary: str
    details: list[str] = field(default_factory=list)


def check_events(outbox: list[dict], received: Received) -> Check:
    """5. Every event the outbox holds reached the receiver (by id), with a valid signature, each member's in order."""
    recorded = {row["event_id"]: row for row in outbox}
    details = []
    lost = set(recorded) - set(received.accepted)
    if lost:
        details.append(f"{len(lost)} events never received, e.g. {sorted(lost)[:5]}")
    invented = set(received.accepted) - set(recorded)
    if invented:
        details.append(f"{len(invented)} received events the outbox does not hold")
    if received.bad_signatures:
        details.append(f"{received.bad_signatures} requests carried a bad or stale signature")
    for event_id in sorted(set(recorded) & set(received.accepted))[:50000]:
        if received.accepted[event_id]["sequence"] != recorded[event_id]["id"]:
            details.append(f"event {event_id}: sequence {received.accepted[event_id]['sequence']} is not its row")
            break
    # Each member's events arrive in order of occurrence: a later one waits while an earlier one is refused
    # (decision 0028), so the first acceptances of one customer's events must have rising sequences.
    last: dict[int, int] = {}
    out_of_order = []
    for customer, sequence in received.first_accepted:
        if customer is None:
            continue
        if sequence < last.get(customer, 0):
            out_of_order.append(f"customer {customer}: sequence {sequence} arrived after {last[customer]}")
        last[customer] = max(sequence, last.get(customer, 0))
    if out_of_order:
        details.append(f"{len(out_of_order)} events arrived before an earlier one of their member, e.g. "
                       f"{out_of_order[:3]}")  # fmt: skip
    types = Counter(row["event_type"] for row in outbox)
    summary = (
        f"{len(recorded):,} events recorded ({', '.join(f'{k} {v:,}' for k, v in sorted(types.items()))}); "
        f"{len(received.accepted):,} received once by id; {received.duplicates:,} repeats acknowledged and "
        f"ignored; {received.refused_on_purpose:,} requests refused on purpose (503); "
        f"{received.bad_signatures} bad signatures; {len(out_of_order)} out of their member's order"
    )
    return Check("5. no outgoing event lost (receiver fails a share)", not details and bool(recorded), summary, details)


def check_expiry(before: dict[int, int], after: dict[int, int], expired: dict[int, int], verify: tuple[int, str],
                 kills: int, interrupted: int) -> Check:  # fmt: skip
    """6. Expiry run under kills: positive balances expire to zero exactly once; negative ones are untouched; at
    least one kill landed inside a started, unfinished run (or the check tested no kill at all)."""
    details = []
    if not interrupted:
        details.append(f"no kill of the {kills} landed inside a started, unfinished expiry run")
    for customer, balance in sorted(before.items()):
        want = min(balance, 0)
        if after.get(customer) != want:
            details.append(f"customer {customer}: balance {after.get(customer)} after expiry, expected {want}")
        if expired.get(customer, 0) != -max(balance, 0):
            details.append(f"customer {customer}: expired {expired.get(customer, 0)}, expected {-max(balance, 0)}")
    code, output = verify
    if code != 0:
        details.append(f"verify-ledger after expiry: exit {code}: {output.splitlines()[-1:]}")
    summary = (
        f"{sum(1 for b in before.values() if b > 0)} members' {sum(max(b, 0) for b in before.values()):,} points "
        f"expired in a run SIGKILLed {kills} times then resumed; {sum(1 for b in before.values() if b < 0)} "
        f"negative balances untouched; verify-ledger exit {code}"
    )
    return Check("6. expiry under kills is exact", not details and bool(before), summary, details)
