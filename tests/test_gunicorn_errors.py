"""gunicorn's own refusals, before the app reads a request, answer in the app's JSON error shape, not HTML."""

from __future__ import annotations

import json
import socket

import pytest

from tests.processes import start_procfile_web, stop

pytestmark = pytest.mark.e2e

SIGNATURE = "0123456789abcdef" * 4  # a signed query's secret part: never echoed back


def exchange(port: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, the headers (lower-cased names) and the body."""
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as client:
        client.sendall(raw)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict((name.lower(), value.strip()) for name, _, value in (line.partition(":") for line in lines[1:]))
    return int(lines[0].split(" ")[1]), headers, body


def error_of(headers: dict[str, str], body: bytes) -> dict:
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"}
    return error


@pytest.mark.parametrize("threads", ["2", "1"], ids=["balanced-gthread", "sync"])
def test_gunicorn_refusals_answer_in_json_and_echo_nothing(settings, tmp_path, threads):
    """WEB_THREADS=2 runs the balanced gthread worker, 1 the sync one: both answer gunicorn's refusals in JSON.
    One server per worker class (a start costs seconds), every refusal sent to it."""
    server, url = start_procfile_web(settings, tmp_path / "gunicorn.log", WEB_THREADS=threads)
    port = url.rsplit(":", 1)[1]
    try:
        too_long = f"GET /proxy/widget?signature={SIGNATURE}&x={'a' * 5000} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        status, headers, body = exchange(port, too_long.encode())
        assert status == 414
        assert error_of(headers, body)["code"] == "uri_too_long"
        assert SIGNATURE.encode() not in body

        fields = "".join(f"X-Field-{n}: {n}\r\n" for n in range(150))
        status, headers, body = exchange(port, f"GET /healthz HTTP/1.1\r\nHost: localhost\r\n{fields}\r\n".encode())
        assert status == 431
        assert error_of(headers, body)["code"] == "request_header_fields_too_large"

        big = f"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {'b' * 9000}\r\n\r\n"
        status, headers, body = exchange(port, big.encode())
        assert status == 431
        assert error_of(headers, body)["code"] == "request_header_fields_too_large"

        malformed = f"GET /proxy?signature={SIGNATURE}\r\nHost: localhost\r\n\r\n"
        status, headers, body = exchange(port, malformed.encode())
        assert status == 400
        assert error_of(headers, body) == {"code": "bad_request", "message": "the request is not valid HTTP"}
        assert SIGNATURE.encode() not in body

        # and a request gunicorn accepts still reaches the app
        status, _, body = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert status == 200
    finally:
        stop(server)
