"""The ack path's own work, bounded: Python calls per delivery through the WSGI app, and the statements it sends."""

from __future__ import annotations

import io
import json
import sys
import uuid

import pytest

from plugin import create_app
from tests import builders
from tests.conftest import signed_headers

# Counted here (Flask 3.1, Werkzeug 3.1, PostgreSQL, the signal's claim already held): 839 calls per delivery when
# each header was read through request.headers, the answer written by jsonify and the claim's SET packed per
# delivery; 736 without them (decision 0055); 267 once the delivery was answered before Flask (decision 0057), with
# the INSERT's connection checked out of SQLAlchemy's pool and returned for each delivery; 209 on a connection
# plugin.direct keeps (decision 0069). The bound leaves room for small changes in the libraries, not for that work
# to come back.
MAX_CALLS_PER_DELIVERY = 230


def _environ(body: bytes, headers: dict[str, str]) -> dict:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/webhooks/shopify",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "localhost",
    }
    for name, value in headers.items():
        key = name.upper().replace("-", "_")
        environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    return environ


def _calls(app, body: bytes) -> tuple[int, bytes]:
    """Python function calls (and calls into C) made by one request through the WSGI app, and its answer."""
    environ = _environ(body, signed_headers(body, "orders/paid", webhook_id=str(uuid.uuid4())))
    statuses: list[str] = []
    count = 0

    def counter(frame, event, arg):
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(counter)
    try:
        answer = b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
    finally:
        sys.setprofile(None)
    assert statuses == ["200 OK"], answer
    return count, answer


def test_a_delivery_costs_a_bounded_number_of_python_calls(queued, shop):
    if not queued.database_url.startswith("postgresql"):
        pytest.skip("the ack path's INSERT is plugin.direct's on PostgreSQL, SQLAlchemy's on SQLite")
    app = create_app(queued)
    body = json.dumps(builders.order(1001, 7001)).encode()
    for _ in range(3):  # the first requests open the pools, prepare the INSERT and fill the caches
        _calls(app, body)
    counts = []
    for _ in range(5):
        count, answer = _calls(app, body)
        counts.append(count)
        assert json.loads(answer)["status"] == "accepted"
    assert min(counts) <= MAX_CALLS_PER_DELIVERY, counts
