"""Outgoing events at volume: successes settled together, one kept-alive connection, and delivery yielding to orders."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
import responses
from redis import Redis
from rq import Queue
from sqlalchemy import event, text

from plugin import jobs
from plugin.db import engine_for, transaction
from plugin.jobs import dispatch, shutdown, tasks
from plugin.models import EventDelivery, EventEndpoint, utcnow
from plugin.services import event_delivery, event_endpoints, outbox
from plugin.worker import LoyaltyWorker
from tests.conftest import TEST_REDIS_URL
from tests.http_receiver import LoopbackReceiver

URL = "https://hooks.example.com/loyalty"


def public(_host):
    return ["93.184.216.34"]


def register(settings, shop, url=URL) -> int:
    with transaction(settings.database_url) as session:
        resolver = {"resolver": public} if url == URL else {"allow_loopback": True}
        endpoint, _secret = event_endpoints.register(session, shop, url, settings.encryption_keys, **resolver)
        return endpoint.id


def record(settings, shop, members: list[int]) -> None:
    """One event per entry, for that member, in list order."""
    with transaction(settings.database_url) as session:
        outbox.record_many(
            session,
            shop,
            [
                {"event_type": "points.earned", "dedupe_key": f"e{n}", "member_id": member, "data": {"n": n}}
                for n, member in enumerate(members)
            ],
        )


class Statements:
    """Counts the statements sent to the database that start with `prefix` (case-insensitive); with
    `per_parameter_set`, an executemany counts once per parameter set, as the server runs each as a statement."""

    def __init__(self, database_url: str, prefix: str = "", per_parameter_set: bool = False):
        self.engine, self.prefix, self.count = engine_for(database_url), prefix.lower(), 0
        self.per_parameter_set = per_parameter_set

    def __call__(self, _conn, _cursor, statement, parameters, _context, executemany):
        if statement.lstrip().lower().startswith(self.prefix):
            self.count += len(parameters) if executemany and self.per_parameter_set else 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self)


@responses.activate
def test_a_batchs_successes_are_settled_together_not_one_transaction_each(settings, shop):
    register(settings, shop)
    record(settings, shop, list(range(1, 121)))  # 120 members: one batch
    responses.post(URL, status=200)
    with Statements(settings.database_url, "update event_deliveries") as updates:
        counts = event_delivery.deliver(settings, resolver=public)
    assert counts == {"delivered": 120} and len(responses.calls) == 120
    assert updates.count <= 5  # the claim's lease, then one per 50 settled (one a delivery, settled one by one)
    with transaction(settings.database_url) as session:
        rows = session.query(EventDelivery).all()
        assert {(row.status, row.attempts, row.last_status, row.last_error) for row in rows} == {
            ("delivered", 1, 200, None)
        }
        assert all(row.delivered_at is not None for row in rows)
        endpoint = session.query(EventEndpoint).one()
        assert endpoint.last_success_at is not None and endpoint.failing_since is None


def test_a_delivery_another_worker_settled_meanwhile_is_left_alone(settings, shop):
    register(settings, shop)
    record(settings, shop, [1])
    event_delivery.fan_out(settings.database_url)
    (claimed,) = event_delivery._claim(settings.database_url, event_delivery.utcnow(), 10)
    ok = event_delivery.Outcome(200, None)
    assert event_delivery._settle_delivered(settings.database_url, [(claimed, ok)], event_delivery.utcnow()) == 1
    # Its lease lapsed, another worker sent it again and settles it too: counted once, attempts not bumped.
    assert event_delivery._settle_delivered(settings.database_url, [(claimed, ok)], event_delivery.utcnow()) == 0
    with transaction(settings.database_url) as session:
        assert session.query(EventDelivery.attempts).scalar() == 1


@responses.activate
def test_a_failure_after_successes_in_a_batch_leaves_the_endpoint_failing(settings, shop):
    """The endpoint's state follows its answers in order: successes settled after the failure would clear it."""
    register(settings, shop)
    record(settings, shop, [1, 2, 3, 4])
    answers = iter([200, 200, 200, 500])
    responses.add_callback(responses.POST, URL, callback=lambda _request: (next(answers), {}, ""))
    assert event_delivery.deliver(settings, resolver=public) == {"delivered": 3, "retry": 1}
    with transaction(settings.database_url) as session:
        endpoint = session.query(EventEndpoint).one()
        assert endpoint.failing_since is not None and endpoint.last_success_at is not None


def cookie_setting_receiver() -> LoopbackReceiver:
    """A receiver that sets a cookie on every answer: the sender must never send it back."""
    return LoopbackReceiver(headers={"Set-Cookie": "session=from-one-shop; Path=/"})


def test_a_run_sends_over_one_kept_alive_connection_and_keeps_no_cookie(settings, shop):
    local = dataclasses.replace(settings, events_allow_loopback=True)
    with cookie_setting_receiver() as receiver:
        register(local, shop, receiver.url)
        record(local, shop, [1, 2, 3, 4, 5])
        assert event_delivery.deliver(local) == {"delivered": 5}
    ports = {posted.port for posted in receiver.posted}
    assert len(receiver.posted) == 5 and len(ports) == 1  # requests.post would open 5 connections
    # One session sends to every shop's receivers: a cookie one of them set is never sent back (to it or another).
    assert [posted.headers.get("Cookie") for posted in receiver.posted] == [None] * 5


def test_a_run_stops_between_batches_when_asked_to_yield(settings, shop):
    local = dataclasses.replace(settings, events_allow_loopback=True)
    with cookie_setting_receiver() as receiver:
        register(local, shop, receiver.url)
        record(local, shop, [1, 1])  # one member: the second event goes in the next batch
        assert event_delivery.deliver(local, should_yield=lambda: True) == {"delivered": 1, "yielded": 1}
        assert event_delivery.deliver(local, should_yield=lambda: False) == {"delivered": 1}


def test_a_worker_takes_from_the_low_priority_queue_only_after_the_main_one():
    connection = Redis.from_url(TEST_REDIS_URL)
    assert LoyaltyWorker(["loyalty"], connection=connection).queue_names() == ["loyalty", "loyalty-low"]
    assert LoyaltyWorker(["{q}", "{q}-low"], connection=connection).queue_names() == ["{q}", "{q}-low"]
    given = Queue("loyalty", connection=connection)  # as the rq CLI passes them
    assert LoyaltyWorker([given], connection=connection).queue_names() == ["loyalty", "loyalty-low"]


def test_a_worker_runs_the_main_queues_job_before_an_older_low_priority_one_then_that(worker_environment):
    queued = worker_environment
    connection = dispatch.redis_client(queued.redis_url)
    low = dispatch.queue_for(queued, tasks.DELIVER_EVENTS).enqueue("os.getpid")  # queued first
    main = dispatch.queue_for(queued).enqueue("os.getpid")
    worker = LoyaltyWorker([queued.queue_name], connection=connection, name=f"{queued.queue_name}-worker")
    assert worker.work(burst=True)
    main.refresh(), low.refresh()
    assert (main.get_status(), low.get_status()) == ("finished", "finished")  # it listens to the low queue too
    assert main.started_at < low.started_at  # ... after the main one


def test_event_delivery_is_queued_at_low_priority_and_yields_to_a_waiting_drain(queued, shop):
    local = dataclasses.replace(queued, events_allow_loopback=True)
    main, low = dispatch.queue_for(local), dispatch.queue_for(local, tasks.DELIVER_EVENTS)
    assert low.name == dispatch.low_queue_name(local.queue_name)
    jobs.signal_events(local)
    assert (main.count, low.count) == (0, 1)
    low.empty()
    dispatch.clear_claim(local, "events")
    with cookie_setting_receiver() as receiver:
        register(local, shop, receiver.url)
        record(local, shop, [1, 1])
        jobs.signal_inbox(local)  # a drain waits in the main queue: the delivery stops after one batch
        assert tasks.deliver_events_with(local) == {"delivered": 1}
        assert (main.count, low.count) == (1, 1)  # ... and queued itself again, behind the drain
        main.empty()
        assert tasks.deliver_events_with(local) == {"delivered": 1}


def test_event_delivery_stops_after_its_batch_when_the_worker_shuts_down(queued, shop, monkeypatch):
    local = dataclasses.replace(queued, events_allow_loopback=True)
    main, low = dispatch.queue_for(local), dispatch.queue_for(local, tasks.DELIVER_EVENTS)
    with cookie_setting_receiver() as receiver:
        register(local, shop, receiver.url)
        record(local, shop, [1, 1])
        monkeypatch.setattr(shutdown, "_requested", True)  # as the work horse's SIGTERM handler notes it
        assert tasks.deliver_events_with(local) == {"delivered": 1}
        assert (main.count, low.count) == (0, 1)  # the rest queued again, for the workers that stay or come next
        monkeypatch.setattr(shutdown, "_requested", False)
        assert tasks.deliver_events_with(local) == {"delivered": 1}


def test_the_dispatcher_keeps_one_queue_per_name_and_every_check_asks_redis(queued):
    main = dispatch.queue_for(queued)
    assert dispatch.queue_for(dataclasses.replace(queued)) is main  # settings alike: the same queue, not a new one
    assert dispatch.queue_for(queued, tasks.DELIVER_EVENTS) is not main
    assert not dispatch.main_queue_waiting(queued)
    elsewhere = Queue(queued.queue_name, connection=Redis.from_url(queued.redis_url))  # as another process queues
    elsewhere.enqueue("os.getpid")
    assert dispatch.main_queue_waiting(queued)
    elsewhere.empty()
    assert not dispatch.main_queue_waiting(queued)


def test_a_claim_whose_choice_another_worker_took_chooses_again(settings, shop, monkeypatch):
    """Every worker chooses the same oldest rows; the one that locks them second must not come back empty-handed
    (and end its run) while other deliveries are due."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite's writers take the whole database: claims cannot overlap there")
    register(settings, shop)
    record(settings, shop, list(range(1, 7)))  # six members, one event each
    event_delivery.fan_out(settings.database_url)
    real_lock, taken = event_delivery._lock, []

    def another_worker_leases_them_first(session, chosen, now):
        if not taken:  # the first choice: leased by another worker, committed, before this one locks
            with transaction(settings.database_url) as other:
                rows = other.query(EventDelivery).filter(EventDelivery.id.in_([row.id for row in chosen])).all()
                for row in rows:
                    row.next_attempt_at = now + event_delivery.LEASE
                taken.extend(row.id for row in rows)
        return real_lock(session, chosen, now)

    monkeypatch.setattr(event_delivery, "_lock", another_worker_leases_them_first)
    claimed = event_delivery._claim(settings.database_url, event_delivery.utcnow(), 3)
    assert len(taken) == 3
    assert claimed is not None and len(claimed) == 3 and not {c.delivery_id for c in claimed} & set(taken)
    monkeypatch.setattr(event_delivery, "_lock", real_lock)
    assert event_delivery._claim(settings.database_url, event_delivery.utcnow(), 3) is None  # nothing due now


def test_a_settlement_waits_for_a_worker_holding_a_delivery_and_leaves_it_if_that_worker_settled_it(settings, shop):
    """PostgreSQL's settlement locks the still-pending rows by key, then updates the rows it locked (decision 0099):
    a row another worker holds is waited for, and if that worker settled it meanwhile it is left alone, uncounted."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("row locks held across connections are PostgreSQL's")
    register(settings, shop)
    record(settings, shop, [1, 2, 3])
    event_delivery.fan_out(settings.database_url)
    claimed = event_delivery._claim(settings.database_url, event_delivery.utcnow(), 10)
    assert len(claimed) == 3
    engine = engine_for(settings.database_url)
    held = claimed[0].delivery_id
    ok = event_delivery.Outcome(200, None)
    settled: list[int] = []
    with engine.connect() as other, engine.connect() as watcher:
        other.execute(text("SELECT 1 FROM event_deliveries WHERE id = :id FOR UPDATE"), {"id": held})
        settling = threading.Thread(
            target=lambda: settled.append(
                event_delivery._settle_delivered(settings.database_url, [(c, ok) for c in claimed], utcnow())
            )
        )
        settling.start()
        waiting = text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        deadline = time.monotonic() + 10
        while watcher.execute(waiting).scalar() == 0 and time.monotonic() < deadline:
            watcher.rollback()
            time.sleep(0.05)
        assert watcher.execute(waiting).scalar() == 1, "the settlement never waited for the held delivery"
        other.execute(
            text("UPDATE event_deliveries SET status = 'delivered', attempts = 1, last_status = 201 WHERE id = :id"),
            {"id": held},
        )
        other.commit()
        settling.join(10)
    assert settled == [2]
    with transaction(settings.database_url) as session:
        rows = {row.id: (row.status, row.attempts, row.last_status) for row in session.query(EventDelivery)}
    assert rows.pop(held) == ("delivered", 1, 201)  # the other worker's settlement, untouched
    assert set(rows.values()) == {("delivered", 1, 200)}
