"""A local receiver that fails, then recovers, gets every event exactly once by id, each with a valid signature.

Events come from real causes: paid orders and a refund through the webhook intake, and a support adjustment.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import timedelta

import requests

from plugin.db import transaction
from plugin.models import OutboxEvent, utcnow
from plugin.services import event_delivery, event_endpoints, event_schemas, support
from tests import builders
from tests.conftest import deliver
from tests.http_receiver import LoopbackReceiver, Posted
from tests.test_event_schemas import problems


class Receiver(LoopbackReceiver):
    """A merchant's receiver: answers 503 to its first `failures` requests, then verifies, dedupes and accepts."""

    def __init__(self, failures: int):
        super().__init__()
        self.failures = failures
        self.secret = ""
        self.accepted: dict[str, dict] = {}
        self.duplicates = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        self.clock = utcnow  # the time the receiver checks signatures' timestamps against

    def answer(self, posted: Posted) -> tuple[int, dict[str, str]]:
        return self.receive(posted.body, posted.headers), {}

    def receive(self, body: bytes, headers) -> int:
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                return 503
            # Timestamps are checked against the receiver's clock: the test's, moved on with the sender's.
            if not event_delivery.verify(
                self.secret, headers["Loyalty-Signature"], body, int(self.clock().timestamp())
            ):
                self.bad_signatures += 1
                return 401
            event = json.loads(body)
            if event["id"] in self.accepted:
                self.duplicates += 1  # a repeat: acknowledged, not acted on again
            else:
                self.accepted[event["id"]] = event
            return 200


def test_a_receiver_that_fails_then_recovers_gets_every_event_once_with_valid_signatures(client, settings, shop):
    local = dataclasses.replace(settings, events_allow_loopback=True)
    with Receiver(failures=5) as receiver:
        with transaction(settings.database_url) as session:
            _, receiver.secret = event_endpoints.register(
                session, shop, receiver.url, settings.encryption_keys, allow_loopback=True
            )
        for order_id in (1, 2, 3):
            deliver(client, "orders/paid", builders.order(order_id, 7001))
        deliver(client, "refunds/create", builders.refund(91, 2, {21: 1}))
        with transaction(settings.database_url) as session:
            support.adjust(session, session.get(type_shop(), shop), 7001, 25, "goodwill", "late parcel", "staff:1")

        now = [utcnow()]
        receiver.clock = lambda: now[0]
        for _ in range(12):  # the receiver is down for the first tries; the backoff is waited out on a test clock
            event_delivery.deliver(local, sender=requests.post, clock=lambda: now[0])
            now[0] += timedelta(minutes=10)

    with transaction(settings.database_url) as session:
        recorded = {row.event_id: row for row in session.query(OutboxEvent)}
    types = sorted(row.event_type for row in recorded.values())
    assert types == ["points.adjusted", "points.earned", "points.earned", "points.earned", "points.reversed"]
    assert set(receiver.accepted) == set(recorded)  # every event, none invented
    assert receiver.duplicates == 0 and receiver.bad_signatures == 0
    sequences = [event["sequence"] for event in sorted(receiver.accepted.values(), key=lambda e: e["sequence"])]
    assert sequences == sorted(row.id for row in recorded.values())
    for event in receiver.accepted.values():  # every event matches its published schema
        assert problems(event, event_schemas.schema(event["type"])) == []
    earned = [e for e in receiver.accepted.values() if e["type"] == "points.earned"]
    assert {e["customer_id"] for e in earned} == {7001} and all(e["data"]["points"] > 0 for e in earned)


def type_shop():
    from plugin.models import Shop

    return Shop


def test_the_cli_registers_delivers_and_replays(app, settings, shop):
    runner = app.test_cli_runner()
    refused = runner.invoke(args=["loyalty", "events", "add-endpoint", "loyal-shop.myshopify.com", "http://x.test/"])
    assert refused.exit_code != 0 and "url:" in refused.output
    with Receiver(failures=0) as receiver:
        local = dataclasses.replace(settings, events_allow_loopback=True)
        app.extensions["loyalty"] = local
        added = runner.invoke(args=["loyalty", "events", "add-endpoint", "loyal-shop.myshopify.com", receiver.url])
        assert added.exit_code == 0, added.output
        receiver.secret = json.loads(added.output)["secret"]
        with transaction(settings.database_url) as session:
            from plugin.services import outbox

            outbox.record(session, shop, "reward.issued", dedupe_key="r1", data={"code": "X"})
        assert runner.invoke(args=["loyalty", "events", "deliver"]).exit_code == 0
        log = json.loads(runner.invoke(args=["loyalty", "events", "log", "loyal-shop.myshopify.com"]).output)
        assert [entry["status"] for entry in log] == ["delivered"]
        replayed = runner.invoke(
            args=["loyalty", "events", "replay", "loyal-shop.myshopify.com", "--event-id", log[0]["event_id"]]
        )
        assert json.loads(replayed.output) == {"queued": 1}
        runner.invoke(args=["loyalty", "events", "deliver"])
        assert receiver.duplicates == 1 and len(receiver.accepted) == 1
        bad = runner.invoke(args=["loyalty", "events", "replay", "loyal-shop.myshopify.com", "--since", "2026-01-01"])
        assert bad.exit_code != 0 and "--until" in bad.output
