"""The web worker: while its threads all run a request, it leaves a new connection to the other workers (0063)."""

from __future__ import annotations

import os
import selectors
import socket
from concurrent.futures import Future
from unittest import mock

import pytest
from gunicorn.config import Config

from plugin.web import balanced_accept


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
    """A 2-thread worker set up as gunicorn's init_process does, with a pool that runs nothing: the test ends each
    request, as a thread would, through the future gunicorn waits on."""
    server, _clients = listener
    cfg = Config()
    cfg.set("threads", 2)
    worker = balanced_accept.BalancedThreadWorker(1, os.getppid(), [server], None, 30, cfg, mock.Mock())
    worker.poller = selectors.DefaultSelector()
    worker.method_queue.init()
    # As run() does: a finished request's callback reaches the loop through this queue.
    worker.poller.register(worker.method_queue.fileno(), selectors.EVENT_READ, worker.method_queue.run_callbacks)
    worker.running = []  # (connection, future) of each request handed to a thread
    worker.tpool = mock.Mock(
        submit=lambda _handle, conn: worker.running.append((conn, Future())) or worker.running[-1][1]
    )
    worker.set_accept_enabled(True)
    yield worker
    for conn, _ in worker.running:
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


def end_request(worker, index: int, keep_alive: bool) -> None:
    """A thread answers the index-th request: its connection is kept alive (idle, on the poller) or closed."""
    conn, future = worker.running[index]
    if keep_alive:
        conn.parser = mock.Mock(**{"unreader.buf.getvalue.return_value": b""})  # nothing read ahead
    future.set_result(keep_alive)


def test_a_worker_whose_threads_are_all_busy_leaves_the_next_connection_on_the_shared_socket(worker, listener):
    connect(listener, 3)
    turns(worker)
    assert len(worker.running) == 2  # the third is still waiting on the shared socket, for another worker
    turns(worker)
    assert len(worker.running) == 2


def test_it_takes_the_waiting_connection_as_soon_as_a_request_ends(worker, listener):
    connect(listener, 3)
    turns(worker)
    end_request(worker, 0, keep_alive=False)
    turns(worker)
    assert len(worker.running) == 3


def test_idle_keep_alive_connections_hold_no_thread_so_new_connections_are_taken(worker, listener):
    connect(listener, 2)
    turns(worker)
    end_request(worker, 0, keep_alive=True)
    end_request(worker, 1, keep_alive=True)
    turns(worker)
    assert worker.nr_conns == 2 and len(worker.keepalived_conns) == 2  # both idle, still open
    connect(listener, 2)
    turns(worker, count=2)  # one accept a turn: no turn goes by declining (counting connections, it held back)
    assert len(worker.running) == 4
