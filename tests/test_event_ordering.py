"""A member's events reach an endpoint in order: a later one waits while an earlier one is failing.

A local receiver fails member M's first event, then recovers (or never does, until the 24 hours run out). M's
later events must not arrive before that first one is delivered or given up; another member's events, and the
same member's events to an endpoint that works, are not held up.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import EventDelivery, OutboxEvent, utcnow
from plugin.services import event_delivery, event_endpoints, outbox
from tests import builders
from tests.conftest import deliver
from tests.test_events_receiver import Receiver

M, OTHER = 7001, 7002


class FailsOneMembersFirstEvent(Receiver):
    """Answers 503 to the first event of `customer` it sees, `times` times (None: always); logs every attempt."""

    def __init__(self, customer: int | None, times: int | None):
        super().__init__(failures=0)
        self.customer, self.times = customer, times
        self.failing_id: str | None = None
        self.attempts: list[tuple[int, int, str, object]] = []  # (customer, sequence, event id, receiver's time)

    def receive(self, body: bytes, headers) -> int:
        event = json.loads(body)
        with self.lock:
            self.attempts.append((event["customer_id"], event["sequence"], event["id"], self.clock()))
            mine = event["customer_id"] == self.customer and self.failing_id in (None, event["id"])
            if mine and (self.times is None or self.times > 0):
                self.failing_id = event["id"]
                self.times = None if self.times is None else self.times - 1
                return 503
        return super().receive(body, headers)

    def accepted_in_order(self, customer: int) -> list[int]:
        return [e["sequence"] for e in self.accepted.values() if e["customer_id"] == customer]


def register(settings, shop, receiver) -> None:
    with transaction(settings.database_url) as session:
        _, receiver.secret = event_endpoints.register(
            session, shop, receiver.url, settings.encryption_keys, allow_loopback=True
        )


def orders_of_two_members(client) -> None:
    for order_id, customer in ((1, M), (2, OTHER), (3, M), (4, OTHER), (5, M)):
        deliver(client, "orders/paid", builders.order(order_id, customer))


def deliver_rounds(settings, receivers, rounds: int, step: timedelta) -> None:
    local = dataclasses.replace(settings, events_allow_loopback=True)
    now = [utcnow()]
    for receiver in receivers:
        receiver.clock = lambda: now[0]
    for _ in range(rounds):
        event_delivery.deliver(local, sender=requests.post, clock=lambda: now[0])
        now[0] += step


def nth_attempt(attempts, event_id: str, n: int) -> int:
    """The index, among all attempts, of the n-th attempt of one event."""
    indexes = [index for index, attempt in enumerate(attempts) if attempt[2] == event_id]
    assert len(indexes) >= n, f"{event_id} was attempted {len(indexes)} times, not {n}"
    return indexes[n - 1]


def test_a_members_later_events_wait_for_the_failing_first_one(client, settings, shop):
    with (
        FailsOneMembersFirstEvent(M, times=3) as failing,
        FailsOneMembersFirstEvent(None, times=0) as healthy,
    ):
        register(settings, shop, failing)
        register(settings, shop, healthy)
        orders_of_two_members(client)
        deliver_rounds(settings, [failing, healthy], rounds=12, step=timedelta(minutes=10))

    m_attempts = [(sequence, event_id) for customer, sequence, event_id, _t in failing.attempts if customer == M]
    first_sequence, first_id = m_attempts[0]
    assert [event_id for _s, event_id in m_attempts[:4]] == [first_id] * 4  # 3 failures, then the success
    assert len(m_attempts) == 6 and all(sequence > first_sequence for sequence, _id in m_attempts[4:])
    # The other member was not held up by M's failures: its events arrived before M's first one succeeded.
    succeeded_at = nth_attempt(failing.attempts, first_id, 4)
    assert len([a for a in failing.attempts[:succeeded_at] if a[0] == OTHER]) == 2
    # Every event once, each member's in order of occurrence, at both endpoints.
    for receiver in (failing, healthy):
        assert len(receiver.accepted) == 5 and receiver.duplicates == 0 and receiver.bad_signatures == 0
        assert receiver.accepted_in_order(M) == sorted(receiver.accepted_in_order(M))
        assert receiver.accepted_in_order(OTHER) == sorted(receiver.accepted_in_order(OTHER))
    # The healthy endpoint got all of M's events in the first round: the hold is per endpoint.
    assert len({t for customer, _s, _id, t in healthy.attempts if customer == M}) == 1


def test_a_first_event_given_up_after_24_hours_releases_the_members_later_ones(client, settings, shop):
    with FailsOneMembersFirstEvent(M, times=None) as receiver:
        register(settings, shop, receiver)
        orders_of_two_members(client)
        deliver_rounds(settings, [receiver], rounds=16, step=timedelta(hours=2))

    first = next(attempt for attempt in receiver.attempts if attempt[0] == M)
    tries_of_first = [i for i, attempt in enumerate(receiver.attempts) if attempt[2] == first[2]]
    later = [i for i, attempt in enumerate(receiver.attempts) if attempt[0] == M and attempt[2] != first[2]]
    assert len(later) == 2 and min(later) > max(tries_of_first)  # only after the first one was given up
    # Given up 24 hours after its delivery was made; the receiver first saw it one round (2 hours) later, since
    # the intake's own delivery job refused the loopback address (only the rounds here allow it).
    assert receiver.attempts[max(tries_of_first)][3] - first[3] >= event_delivery.RETRY_FOR - timedelta(hours=2)
    assert receiver.accepted_in_order(M) == sorted(receiver.accepted_in_order(M))
    assert len(receiver.accepted_in_order(M)) == 2 and len(receiver.accepted_in_order(OTHER)) == 2
    with transaction(settings.database_url) as session:
        statuses = sorted(d.status for d in session.query(EventDelivery))
    assert statuses == ["delivered"] * 4 + ["gave_up"]


class Recording:
    """A sender that accepts everything and notes each event's sequence (requests.post's shape)."""

    def __init__(self):
        self.sequences: list[int] = []

    def __call__(self, url, data, **_kwargs):
        self.sequences.append(json.loads(data)["sequence"])
        return dataclasses.make_dataclass("Response", [("status_code", int)])(200)


def four_events_of_one_member(settings, shop) -> list[int]:
    """Four events of one member in one transaction, as the expiry run records a member's expired lots."""
    with transaction(settings.database_url) as session:
        outbox.record_many(
            session,
            shop,
            [
                {"event_type": "points.expired", "dedupe_key": f"lot:{n}", "member_id": 1, "data": {"n": n}}
                for n in range(4)
            ],
        )
        return [event.id for event in outbox.recorded(session, shop)]


@pytest.mark.parametrize("first_fan_out", ["killed", "commits late"])
def test_a_member_is_not_sent_a_later_event_while_another_worker_fans_out_an_earlier_one(settings, shop, first_fan_out):
    """Two workers fan out at once: A has locked the member's first 3 events (its chunk ends there), B skips them.

    B's chunk starts at the 4th event and commits first; its claim must not send that event while A's
    deliveries of the first 3 are not made yet (A then dies, or commits after B).
    """
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("two fan-outs at once need SKIP LOCKED row locks; SQLite writers take the whole database")
    register_public(settings, shop)
    sequences = four_events_of_one_member(settings, shop)
    sender = Recording()
    with transaction(settings.database_url) as worker_a:
        chunk = worker_a.scalars(
            select(OutboxEvent).where(OutboxEvent.id.in_(sequences[:3])).with_for_update(skip_locked=True)
        ).all()
        assert len(chunk) == 3
        event_delivery.deliver(settings, sender=sender, resolver=public)  # worker B, meanwhile
        assert sender.sequences == []  # the 4th waits: the member's earlier events are not fanned out yet
        if first_fan_out == "killed":
            worker_a.rollback()
        else:
            event_delivery.make_deliveries(worker_a, list(chunk), utcnow())  # A's fan-out, committed after B's
    event_delivery.deliver(settings, sender=sender, resolver=public)
    assert sender.sequences == sequences


def register_public(settings, shop) -> None:
    with transaction(settings.database_url) as session:
        event_endpoints.register(
            session, shop, "https://hooks.example.com/loyalty", settings.encryption_keys, resolver=public
        )


def public(_host):
    return ["93.184.216.34"]
