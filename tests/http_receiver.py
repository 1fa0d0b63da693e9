"""A loopback HTTP receiver for the outgoing-event tests: notes every POST and answers a set status and headers."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Posted:
    body: bytes
    headers: Message
    port: int  # the client's port: one per connection, so the same port means a kept-alive connection


class LoopbackReceiver:
    """An HTTP/1.1 (kept-alive) receiver on 127.0.0.1: answers `status` with `headers` unless a subclass's
    `answer` decides per request. A context manager: serves from entry to exit."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None):
        self.status = status
        self.headers = dict(headers or {})
        self.posted: list[Posted] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                posted = Posted(
                    self.rfile.read(int(self.headers["Content-Length"])), self.headers, self.client_address[1]
                )
                receiver.posted.append(posted)
                status, headers = receiver.answer(posted)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")  # no body: the sender's connection stays usable
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/events"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, posted: Posted) -> tuple[int, dict[str, str]]:
        """The status and headers to answer `posted` with."""
        return self.status, self.headers

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
