"""gunicorn's own refusals (request line or headers past its limits, malformed requests) answered in the app's JSON."""

from __future__ import annotations

import json

from gunicorn import util

# What each status gunicorn refuses with means to a client; gunicorn's own text can quote the request line,
# whose query may carry a signature, so none of it is sent back.
MESSAGES = {
    400: "the request is not valid HTTP",
    403: "the request was refused before the app read it",
    414: "the request line is longer than the server accepts",
    417: "the Expect header is not supported",
    431: "the request's headers are too many or too large",
    500: "the server failed to handle the request",
    501: "the transfer coding is not supported",
}


class _Captured:
    """The client socket as gunicorn's error writer sees it: what it sends is kept, not written."""

    def __init__(self, sock) -> None:
        self._sock = sock
        self.sent = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn's write_nonblock then sends at once, without touching the real socket's mode

    def sendall(self, data: bytes) -> None:
        self.sent += data

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def json_answer(status: int, reason: str) -> bytes:
    """A whole HTTP/1.1 response in the app's error shape ({"error": {"code", "message"}}), closing the connection."""
    code = reason.lower().replace(" ", "_")
    body = json.dumps({"error": {"code": code, "message": MESSAGES.get(status, reason)}}).encode() + b"\n"
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class JsonErrors:
    """Mixin for a gunicorn worker class: gunicorn chooses the status and logs as before; the body is JSON, not HTML."""

    def handle_error(self, req, client, addr, exc) -> None:
        captured = _Captured(client)
        super().handle_error(req, captured, addr, exc)
        status_line = captured.sent.split(b"\r\n", 1)[0].decode("latin-1")
        parts = status_line.split(" ", 2)
        if len(parts) < 3 or not parts[1].isdigit():
            return  # gunicorn wrote nothing (it could not): neither do we
        try:
            util.write_nonblock(client, json_answer(int(parts[1]), parts[2]))
        except Exception:  # the client may be gone, as gunicorn's own writer allows
            self.log.debug("Failed to send error message.")
