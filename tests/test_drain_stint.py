"""A drain job that met a burst stays with it: it drains what arrives meanwhile, and ends when the burst does, when
its stint is over, or when a job other than the burst's own waits for a worker (decision 0086)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable

import pytest

from plugin import inbox
from plugin.config import Settings
from plugin.db import engine_for
from plugin.jobs import JOBS, Job, dispatch, drain_stint, tasks
from plugin.jobs.registry import register
from tests import builders
from tests.conftest import SHOP


class Clock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def stint(clock: Clock, seconds: float = 10.0, other_work: bool = False) -> drain_stint.Stint:
    return drain_stint.Stint(seconds, 50, lambda: other_work, clock=clock, sleep=clock.sleep)


def test_a_job_that_met_no_burst_ends_after_its_drain():
    clock = Clock()
    quiet = stint(clock)
    quiet.drained(49)
    assert not quiet.go_on()
    assert quiet.ended == "no burst" and clock.slept == []


def test_a_stint_goes_on_while_deliveries_come_and_ends_after_three_drains_in_a_row_find_none():
    clock = Clock()
    busy = stint(clock)
    busy.drained(50)
    assert busy.go_on()
    for found in (7, 0, 0, 3, 0, 0):  # a drain that finds some starts the count of idle ones again
        busy.drained(found)
        assert busy.go_on()
    busy.drained(0)
    assert not busy.go_on()
    assert busy.ended == "idle"
    assert clock.slept == [drain_stint.POLL_SECONDS] * 7


def test_a_stint_ends_when_its_time_is_over_before_a_pause_would_pass_it():
    clock = Clock()
    busy = stint(clock, seconds=1.0)
    busy.drained(60)
    clock.now += 0.85
    assert busy.go_on()  # 0.85 + the pause of 0.1 is still within the second
    busy.drained(5)
    assert not busy.go_on()
    assert busy.ended == "stint over"


def test_other_work_waiting_ends_a_stint_and_a_stint_of_no_seconds_never_starts():
    clock = Clock()
    busy = stint(clock, other_work=True)
    busy.drained(500)
    assert not busy.go_on()
    assert busy.ended == "other work waiting" and clock.slept == []
    off = stint(clock, seconds=0)
    off.drained(500)
    assert not off.go_on()
    assert off.ended == "stints off"


def test_between_a_drains_batches_a_stint_cuts_it_short_for_other_work_only():
    clock = Clock()
    waiting = []
    busy = drain_stint.Stint(10.0, 50, lambda: bool(waiting), clock=clock, sleep=clock.sleep)
    waiting.append("issue_code-1")
    clock.now += drain_stint.GIVE_WAY_AFTER_SECONDS - 0.1
    assert not busy.cut_short() and busy.ended == ""  # not yet: a job drains a while before it gives way
    clock.now += 0.1
    assert busy.cut_short() and busy.ended == "other work waiting, inbox not empty" and busy.backlog
    later = drain_stint.Stint(10.0, 50, lambda: False, clock=clock, sleep=clock.sleep)
    clock.now += 60
    assert not later.cut_short() and later.ended == ""  # its time is over: it still goes on with the backlog
    off = drain_stint.Stint(0.0, 50, lambda: True, clock=clock, sleep=clock.sleep)
    assert not off.cut_short() and not off.backlog  # stints off: a drain runs until the inbox is empty


@pytest.mark.parametrize("seconds", [10.0, 0.0])
def test_a_worker_shutting_down_cuts_a_drain_after_its_batch_at_once_and_ends_the_stint(seconds):
    clock = Clock()
    stopping = []
    job = drain_stint.Stint(seconds, 50, lambda: False, clock=clock, sleep=clock.sleep, stopping=lambda: bool(stopping))
    job.drained(50)
    assert not job.cut_short()
    stopping.append("SIGTERM")
    # At once, not after GIVE_WAY_AFTER_SECONDS, and with stints off too (decision 0093).
    assert job.cut_short() and job.ended == "worker stopping, inbox not empty" and job.backlog
    assert not job.go_on() and job.ended == "worker stopping" and clock.slept == []


def test_the_follow_up_jobs_are_due_every_few_seconds_and_once_more_at_the_end():
    clock = Clock()
    busy = stint(clock, seconds=60)
    busy.drained(50)
    assert not busy.signal_due()  # the job's start counts as the last signal
    clock.now += drain_stint.SIGNAL_EVERY_SECONDS
    assert busy.signal_due()
    busy.signalled()
    busy.drained(0)
    clock.now += drain_stint.SIGNAL_EVERY_SECONDS
    assert not busy.signal_due() and not busy.unsignalled  # nothing processed since: nothing to tell
    busy.drained(1)
    assert busy.unsignalled  # what the job tells as it ends


def test_the_stint_setting_is_read_from_the_environment_and_never_negative(monkeypatch):
    monkeypatch.setenv("LOYALTY_DRAIN_STINT_SECONDS", "2.5")
    assert Settings.from_env().drain_stint_seconds == 2.5
    monkeypatch.setenv("LOYALTY_DRAIN_STINT_SECONDS", "-4")
    assert Settings.from_env().drain_stint_seconds == 0.0


# --- a worker's drain job, on PostgreSQL or SQLite, with a real Redis -------------------------------------------


def store(settings: Settings, first: int, count: int) -> None:
    for number in range(first, first + count):
        body = json.dumps(builders.order(number, 7000 + number % 9, [builders.line(10, "20.00")])).encode()
        delivery = inbox.IncomingDelivery(SHOP, "orders/paid", f"d-{number}", body)
        inbox.store(engine_for(settings.database_url), delivery)


def queued_ids(settings: Settings) -> list[str]:
    return dispatch.queue_for(settings).get_job_ids()


def waiting(settings: Settings) -> int:
    with engine_for(settings.database_url).connect() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM deliveries WHERE status <> 'processed'").scalar()


class Stints:
    """The job's stints, recorded; `arrivals[n]` deliveries are stored (in `settings`' database) during a stint's
    n-th pause."""

    def __init__(self) -> None:
        self.made: list[drain_stint.Stint] = []
        self.arrivals: dict[int, int] = {}
        self.settings: Settings | None = None
        self.clock: Clock | None = None  # the job's clock, if not the real one
        self.each_batch: Callable[[], None] | None = None  # run as the drain asks whether to go on, after a batch


@pytest.fixture
def stints(monkeypatch) -> Stints:
    recorded = Stints()

    class Recorded(drain_stint.Stint):
        def __init__(self, *args, **kwargs):
            if recorded.clock is not None:
                kwargs["clock"] = recorded.clock
            super().__init__(*args, **kwargs)
            self.pauses = 0
            self.sleep = self.arrive
            recorded.made.append(self)

        def arrive(self, _seconds: float) -> None:
            self.pauses += 1
            store(recorded.settings, 1000 * self.pauses, recorded.arrivals.get(self.pauses, 0))

        def cut_short(self) -> bool:
            if recorded.each_batch is not None:
                recorded.each_batch()
            return super().cut_short()

    monkeypatch.setattr(tasks.drain_stint, "Stint", Recorded)
    return recorded


def test_a_drain_job_that_met_a_burst_drains_what_arrives_meanwhile_then_ends_when_it_stops(queued, shop, stints):
    settings = stints.settings = dataclasses.replace(queued, drain_stint_seconds=30.0)
    store(settings, 1, 30)  # more than a batch (25 here): the job met a burst
    stints.arrivals.update({1: 10, 2: 4})
    assert tasks.drain_inbox_with(settings) == {"processed": 44}
    (job,) = stints.made
    assert job.ended == "idle" and job.pauses == 2 + drain_stint.IDLE_DRAINS
    ids = queued_ids(settings)
    # Its full batch signalled another drain (a copy of itself: no reason to end), and it queued its follow-ups.
    assert any(queued.startswith("drain_inbox-") for queued in ids)
    assert any(queued.startswith("push_balances-") for queued in ids)
    assert waiting(settings) == 0


def test_a_job_another_kind_of_job_waits_for_ends_its_stint_at_once(queued, shop, stints):
    settings = stints.settings = dataclasses.replace(queued, drain_stint_seconds=30.0)
    store(settings, 1, 30)
    stints.arrivals.update({1: 10})
    dispatch.dispatch(settings, tasks.CHECK_WEBHOOKS)  # a job a burst does not make: it must not wait 30 s
    stints.clock = Clock()

    def batch_done() -> None:
        stints.clock.now += drain_stint.GIVE_WAY_AFTER_SECONDS  # the batch took that long
        queue = dispatch.queue_for(settings)  # and another worker has taken the drain job the full batch queued
        for each in queue.get_job_ids():
            if each.startswith("drain_inbox-"):
                queue.remove(each)
        dispatch.clear_claim(settings, "inbox")

    stints.each_batch = batch_done
    # It waits for the batch in progress only: the drain is cut short after its first batch, and a drain job is
    # queued for the rest, which will tell the follow-ups.
    assert tasks.drain_inbox_with(settings) == {"processed": 25}
    (job,) = stints.made
    assert job.ended == "other work waiting, inbox not empty" and job.pauses == 0
    assert waiting(settings) == 5
    ids = queued_ids(settings)
    assert any(queued.startswith("drain_inbox-") for queued in ids)
    assert not any(queued.startswith("push_balances-") for queued in ids)
    dispatch.queue_for(settings).empty()  # the other work done
    assert tasks.drain_inbox_with(settings) == {"processed": 5}  # the next job
    assert any(queued.startswith("push_balances-") for queued in queued_ids(settings))


def test_a_backlog_longer_than_a_stint_is_drained_whole_by_one_job(queued, shop, stints):
    settings = stints.settings = dataclasses.replace(queued, drain_stint_seconds=30.0)
    store(settings, 1, 110)  # one drain: each claim of 25 comes back full until the last
    stints.clock = Clock()

    def batch_done() -> None:
        stints.clock.now += 11.0  # each batch takes 11 s of the stint's 30

    stints.each_batch = batch_done
    # Not cut when its time is over: a job per 10 s of backlog, each a new work horse with new connections, cost
    # the programme's end-to-end run a tenth of its orders/s (decision 0088).
    assert tasks.drain_inbox_with(settings) == {"processed": 110}
    (job,) = stints.made
    assert job.ended == "stint over" and job.pauses == 0
    assert waiting(settings) == 0
    assert any(queued.startswith("push_balances-") for queued in queued_ids(settings))


def test_a_quiet_shops_drain_and_an_inline_drain_never_stay(queued, settings, shop, stints):
    stints.settings = queued
    store(queued, 1, 3)
    assert tasks.drain_inbox_with(dataclasses.replace(queued, drain_stint_seconds=30.0)) == {"processed": 3}
    store(settings, 10, 30)
    assert tasks.drain_inbox_with(settings) == {"processed": 30}  # no Redis: jobs run inline, no stint
    assert [job.ended for job in stints.made] == ["no burst", "stints off"]
    assert [job.pauses for job in stints.made] == [0, 0]


def test_other_work_is_told_by_the_queued_ids_and_a_redis_error_says_yes(queued):
    assert not dispatch.other_work_waiting(queued, tasks.BURST_JOBS)
    for job in (tasks.DRAIN_INBOX, tasks.PUSH_BALANCES, tasks.PUSH_TIERS, tasks.SETTLE_GRANTS):
        dispatch.dispatch(queued, job)
    assert all(
        each.startswith(("drain_inbox-", "push_balances-", "push_tiers-", "settle_grants-"))
        for each in queued_ids(queued)
    )
    assert not dispatch.other_work_waiting(queued, tasks.BURST_JOBS)
    assert dispatch.other_work_waiting(queued, (tasks.DRAIN_INBOX,))  # the pushes are other work to a drain alone
    dispatch.dispatch(queued, tasks.CHECK_WEBHOOKS)
    assert dispatch.other_work_waiting(queued, tasks.BURST_JOBS)
    unreachable = dataclasses.replace(queued, redis_url="redis://127.0.0.1:1/0")
    assert dispatch.other_work_waiting(unreachable, tasks.BURST_JOBS)


def test_every_jobs_id_prefix_is_its_functions_name_and_no_two_are_alike():
    prefixes = [job.id_prefix for job in JOBS.values()]
    assert len(set(prefixes)) == len(prefixes)
    assert [job.id_prefix for job in tasks.BURST_JOBS] == [
        "drain_inbox-",
        "push_balances-",
        "push_tiers-",
        "settle_grants-",
    ]

    def impostor() -> None: ...

    impostor.__qualname__ = "drain_inbox"  # another module's function of the same name
    with pytest.raises(ValueError, match="id prefix"):
        register(Job(impostor, impostor, timeout=1, result_ttl=1))
    assert f"{__name__}.drain_inbox" not in JOBS


def test_a_stint_whose_later_drain_fails_still_queues_the_follow_ups_of_what_it_committed(
    queued, shop, stints, monkeypatch
):
    settings = stints.settings = dataclasses.replace(queued, drain_stint_seconds=30.0)
    store(settings, 1, 30)
    real_drain = inbox.drain
    calls = []

    def second_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("the database went away mid-stint")
        return real_drain(*args, **kwargs)

    monkeypatch.setattr(tasks.inbox, "drain", second_fails)
    with pytest.raises(RuntimeError):
        tasks.drain_inbox_with(settings)
    assert any(each.startswith("push_balances-") for each in queued_ids(settings))
