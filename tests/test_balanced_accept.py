"""The web worker: once its threads all hold a connection, it leaves the next one to the other workers (0063)."""

from __future__ import annotations

import os
import selectors
import socket
from unittest import mock

import pytest
from gunicorn.config import Config

from plugin.web import balanced_accept


class Clock:
    """The worker's monotonic clock, moved by the test: no test here waits for real time to pass."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(balanced_accept, "monotonic", clock)
    return clock


@pytest.fixture
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    clients: list[socket.socket] = []
    yield server, clients
    for client in clients:
        client.close()
    server.close()


@pytest.fixture
def worker(listener):
    """A 2-thread worker set up as gunicorn's init_process does, minus its thread pool: what it accepts is listed."""
    server, _clients = listener
    cfg = Config()
    cfg.set("threads", 2)
    worker = balanced_accept.BalancedThreadWorker(1, os.getppid(), [server], None, 30, cfg, mock.Mock())
    worker.poller = selectors.DefaultSelector()
    worker.method_queue.init()
    worker.taken = []
    worker.enqueue_req = worker.taken.append  # the connection handed to a thread
    worker.set_accept_enabled(True)
    yield worker
    for conn in worker.taken:
        conn.sock.close()
    worker.poller.close()
    worker.method_queue.close()
    worker.tmp.close()


def connect(listener, count: int) -> None:
    server, clients = listener
    for _ in range(count):
        clients.append(socket.create_connection(server.getsockname()))


def turns(worker, count: int = 4) -> None:
    """Turns of gunicorn's ThreadWorker.run loop: accept again if it may, then dispatch what is ready."""
    for _ in range(count):
        can_accept = worker.nr_conns < worker.worker_connections
        if can_accept != worker._accepting:
            worker.set_accept_enabled(can_accept)
        worker.wait_for_and_dispatch_events(timeout=0.05)


def test_a_full_worker_leaves_a_waiting_connection_to_the_others_and_takes_it_when_none_did(worker, listener, clock):
    connect(listener, 3)
    turns(worker)
    assert len(worker.taken) == 2  # the third is still waiting on the shared socket, for another worker
    clock.now += balanced_accept.HOLD_SECONDS / 2
    turns(worker)
    assert len(worker.taken) == 2
    clock.now += balanced_accept.HOLD_SECONDS / 2  # the hold is over, and no other worker took it: all are full
    turns(worker)
    assert len(worker.taken) == 3


def test_it_takes_the_connection_at_once_when_one_of_its_own_closes(worker, listener, clock):
    connect(listener, 3)
    turns(worker)
    assert len(worker.taken) == 2
    worker.nr_conns -= 1  # what finish_request does when a connection is closed
    turns(worker)
    assert len(worker.taken) == 3


def test_it_wakes_when_the_hold_ends_and_not_before_or_after(worker, listener, clock):
    connect(listener, 3)
    turns(worker)
    clock.now += balanced_accept.HOLD_SECONDS / 4
    with mock.patch.object(worker.poller, "select", return_value=[]) as select:
        worker.wait_for_and_dispatch_events(timeout=1.0)  # holding: the loop would otherwise sleep a second
        clock.now += balanced_accept.HOLD_SECONDS
        worker.wait_for_and_dispatch_events(timeout=1.0)  # the hold is over: no wake-up loop
    assert select.call_args_list == [mock.call(pytest.approx(balanced_accept.HOLD_SECONDS * 3 / 4)), mock.call(1.0)]
