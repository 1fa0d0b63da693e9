"""Attempts are counted when a delivery is claimed, so one that kills or times out its worker gets parked."""

from __future__ import annotations

import contextlib
import json
from datetime import timedelta

import pytest
from rq.timeouts import JobTimeoutException
from sqlalchemy import select

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.jobs import tasks
from plugin.models import Delivery, DeliveryClaim, Member, utcnow
from tests import builders
from tests.conftest import SHOP

MAX_ATTEMPTS = 3  # inbox.MAX_ATTEMPTS, spelled out so the test also runs where it does not exist


class Clock:
    """The drain's clock, moved by hand: a delivery's wait between claims passes without sleeping."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now


class WorkerKilled(BaseException):
    """Stands for SIGKILL or RQ's hard kill: nothing in the drain runs after it, no handler sees it."""


def store(settings, webhook_id: str, order_id: int) -> None:
    body = json.dumps(builders.order(order_id, 7001, [builders.line(order_id * 10, "10.00")])).encode()
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", webhook_id, body))


def claims(settings) -> list[int]:
    with transaction(settings.database_url) as session:
        return list(session.scalars(select(DeliveryClaim.claims)))


def rows(settings) -> dict[str, tuple[str, int, str | None]]:
    with transaction(settings.database_url) as session:
        return {d.webhook_id: (d.status, d.attempts, d.reason) for d in session.scalars(select(Delivery))}


@pytest.fixture
def poison(monkeypatch, settings):
    """Deliveries whose webhook id starts with 'poison' raise the given exception while being processed."""
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite counts claims inside the drain's transaction: jobs run inline there, never killed")
    raised: list[type[BaseException]] = []

    def poisoned(real):
        def read(session, delivery, *args, **kwargs):
            if delivery.webhook_id.startswith("poison"):
                raise raised[0]("the worker dies here")
            return real(session, delivery, *args, **kwargs)

        return read

    # Read one by one (_handle), or with its batch by the set-based apply (_readable_event): it dies either way.
    monkeypatch.setattr(inbox, "_handle", poisoned(inbox._handle))
    monkeypatch.setattr(inbox, "_readable_event", poisoned(inbox._readable_event))
    return raised


def test_a_delivery_that_kills_its_worker_is_parked_after_a_few_attempts_and_its_batch_is_processed(
    settings, shop, poison
):
    poison.append(WorkerKilled)
    store(settings, "w-1", 1)
    store(settings, "poison", 2)
    store(settings, "w-3", 3)
    kills = 0
    clock = Clock()
    for _ in range(MAX_ATTEMPTS + 2):
        try:
            inbox.drain(settings.database_url, batch_size=10, clock=clock)
        except WorkerKilled:
            kills += 1
        clock.now += inbox.RETRY_WAIT  # each drain after the last one's wait
    assert kills == MAX_ATTEMPTS
    found = rows(settings)
    status, attempts, reason = found.pop("poison")
    assert status == "parked" and attempts == inbox.MAX_ATTEMPTS + 1
    assert f"claimed {inbox.MAX_ATTEMPTS} times without finishing" in reason
    assert {webhook_id: row[:2] for webhook_id, row in found.items()} == {
        "w-1": ("processed", 2),  # its first batch died with the poison; retried alone once, never again
        "w-3": ("processed", 2),
    }
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 20  # orders 1 and 3, once each


def test_an_attempt_is_counted_in_the_database_even_when_the_drain_never_finishes(settings, shop, poison):
    poison.append(WorkerKilled)
    store(settings, "poison", 1)
    with pytest.raises(WorkerKilled):
        inbox.drain(settings.database_url)
    assert rows(settings) == {"poison": ("received", 0, None)}  # the batch rolled back...
    assert claims(settings) == [1]  # ...but not its claim


def test_rqs_job_timeout_ends_the_drain_instead_of_being_parked_as_a_failure(settings, shop, poison):
    poison.append(JobTimeoutException)
    store(settings, "poison", 1)
    with pytest.raises(JobTimeoutException):
        tasks.drain_inbox_with(settings)
    assert rows(settings) == {"poison": ("received", 0, None)}  # waits for its retry, not parked...
    assert claims(settings) == [1]  # ...its attempt counted


def test_a_replay_always_tries_even_after_the_attempts_ran_out(settings, shop, poison):
    poison.append(WorkerKilled)
    store(settings, "poison-then-fixed", 1)
    for _ in range(inbox.MAX_ATTEMPTS + 1):
        with contextlib.suppress(WorkerKilled):
            inbox.drain(settings.database_url, retry_wait=timedelta(0))  # its attempts used up at once
    assert rows(settings)["poison-then-fixed"][0] == "parked"
    poison[0] = ValueError  # "fixed": now an ordinary failure, parked with its reason by the replay
    with transaction(settings.database_url) as session:
        delivery_id = session.scalars(select(Delivery.id)).one()
    assert inbox.replay(settings.database_url, delivery_id) == "parked"
    assert "internal error: ValueError" in rows(settings)["poison-then-fixed"][2]


def drain_killed(settings, clock) -> bool:
    """One drain job; True when its worker was killed."""
    try:
        inbox.drain(settings.database_url, batch_size=10, clock=clock)
    except WorkerKilled:
        return True
    return False


def test_a_burst_of_kills_does_not_use_up_a_deliverys_attempts(settings, shop, monkeypatch):
    """Every drain dies for 20 seconds, whatever it holds (kills, not the delivery); then the kills stop.

    The delivery dies with its batch, then alone, then waits: the drains of the burst do not claim it, so it
    is processed once the burst is over instead of being parked after MAX_ATTEMPTS deaths within seconds.
    """
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite counts claims inside the drain's transaction: jobs run inline there, never killed")
    clock = Clock()
    storm_ends = clock.now + timedelta(seconds=20)

    def killed_in_the_storm(real):
        def read(session, delivery, *args, **kwargs):
            if clock.now < storm_ends:
                raise WorkerKilled("SIGKILL")
            return real(session, delivery, *args, **kwargs)

        return read

    monkeypatch.setattr(inbox, "_handle", killed_in_the_storm(inbox._handle))
    monkeypatch.setattr(inbox, "_readable_event", killed_in_the_storm(inbox._readable_event))
    store(settings, "w-1", 1)
    kills = []
    while clock.now < storm_ends + inbox.RETRY_WAIT:  # a drain every second, as signals and sweeps start them
        kills.append(drain_killed(settings, clock))
        clock.now += timedelta(seconds=1)
    assert kills[:2] == [True, True] and not any(kills[2:])  # two deaths, then left alone while it waits
    assert rows(settings) == {"w-1": ("processed", 3, None)}
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 10


def test_a_poison_delivery_is_still_parked_and_the_deliveries_after_it_go_on_meanwhile(settings, shop, poison):
    poison.append(WorkerKilled)
    clock = Clock()
    store(settings, "poison", 1)
    kills, seconds = 0, 0
    while rows(settings)["poison"][0] == "received":
        store(settings, f"w-{seconds}", 100 + seconds)  # the shop goes on sending
        kills += drain_killed(settings, clock)
        clock.now += timedelta(seconds=1)
        seconds += 1
        assert seconds < 200
    found = rows(settings)
    assert found.pop("poison")[:2] == ("parked", MAX_ATTEMPTS + 1) and kills == MAX_ATTEMPTS
    # Parked after its last death plus the wait, twice over: spread out, not in one burst.
    assert seconds >= 2 * inbox.RETRY_WAIT.total_seconds()
    # Every drain but the three it killed processed what had arrived: the poison never stalled the queue.
    assert {status for status, _attempts, _reason in found.values()} == {"processed"}
    assert len(found) == seconds
