"""gunicorn's access log leaves out a webhook delivery the inbox has just stored, and only that (decision 0087)."""

from __future__ import annotations

import json
import runpy
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from gunicorn.config import Config
from gunicorn.glogging import Logger

from plugin.web.access_log import STORED_DELIVERY, AccessLogger
from tests.conftest import SHOP, signed_headers
from tests.processes import start_procfile_web, stop

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
ORDER = {"id": 4401, "name": "#4401", "customer": {"id": 7001}, "line_items": [], "currency": "EUR"}


def post_order(url_or_client, body: bytes, webhook_id: str, *, forged: bool = False):
    headers = signed_headers(body, "orders/paid", webhook_id=webhook_id)
    if forged:
        headers["X-Shopify-Hmac-Sha256"] = "AAAA" + headers["X-Shopify-Hmac-Sha256"][4:]
    if isinstance(url_or_client, str):
        return requests.post(f"{url_or_client}/webhooks/shopify", data=body, headers=headers, timeout=10)
    return url_or_client.post("/webhooks/shopify", data=body, headers=headers)


def recording_environs(app) -> list[dict]:
    """The WSGI environ of each request the app serves, as gunicorn hands it to the app and then to the logger."""
    seen: list[dict] = []
    inner = app.wsgi_app

    def recording(environ, start_response):
        seen.append(environ)
        return inner(environ, start_response)

    app.wsgi_app = recording
    return seen


@pytest.mark.http
def test_only_a_new_delivery_marks_its_request(app, shop):
    environs = recording_environs(app)
    client = app.test_client()
    body = json.dumps(ORDER).encode()
    webhook_id = f"access-{uuid.uuid4()}"
    new = post_order(client, body, webhook_id)
    again = post_order(client, body, webhook_id)
    forged = post_order(client, body, f"access-{uuid.uuid4()}", forged=True)
    assert (new.status_code, again.status_code, forged.status_code) == (200, 200, 401)
    assert new.json["status"] == "accepted" and again.json["status"] == "duplicate"
    assert [environ.get(STORED_DELIVERY) for environ in environs] == [True, None, None]


@pytest.mark.http
def test_the_view_marks_a_new_delivery_when_the_wsgi_layer_passes_it_on(app, shop):
    app.before_request(lambda: None)  # a per-request hook: the WSGI layer leaves every request to Flask's view
    environs = recording_environs(app)
    client = app.test_client()
    body = json.dumps(ORDER).encode()
    webhook_id = f"access-{uuid.uuid4()}"
    new, again = post_order(client, body, webhook_id), post_order(client, body, webhook_id)
    assert (new.json["status"], again.json["status"]) == ("accepted", "duplicate")
    assert [environ.get(STORED_DELIVERY) for environ in environs] == [True, None]


class _Answer:
    status, sent, headers = "200 OK", 44, [("Content-Type", "application/json")]


@pytest.mark.parametrize("logger_class", [AccessLogger, Logger], ids=["ours", "gunicorn's"])
def test_a_marked_request_gets_no_line_and_any_other_the_same_line_as_gunicorns(tmp_path, logger_class):
    cfg = Config()
    cfg.set("accesslog", str(tmp_path / "access.log"))
    cfg.set("access_log_format", runpy.run_path(str(CONF))["access_log_format"])
    log = logger_class(cfg)
    environ = {
        "REMOTE_ADDR": "127.0.0.1", "REQUEST_METHOD": "POST", "RAW_URI": "/webhooks/shopify",
        "PATH_INFO": "/webhooks/shopify", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_USER_AGENT": 'Shop "x"',
    }  # fmt: skip
    log.access(_Answer(), [], environ, timedelta(milliseconds=3))
    log.access(_Answer(), [], {**environ, STORED_DELIVERY: True}, timedelta(milliseconds=3))
    lines = (tmp_path / "access.log").read_text().splitlines()
    stored_lines = 2 if logger_class is Logger else 1
    assert len(lines) == stored_lines
    assert all('"POST /webhooks/shopify HTTP/1.1" 200 44 "-" "Shop \\"x\\""' in line for line in lines)


def test_the_conf_installs_it_unless_told_to_log_every_delivery(monkeypatch):
    monkeypatch.delenv("WEB_LOG_STORED_DELIVERIES", raising=False)
    cfg = Config()
    cfg.set("logger_class", runpy.run_path(str(CONF))["logger_class"])
    assert cfg.logger_class is AccessLogger
    monkeypatch.setenv("WEB_LOG_STORED_DELIVERIES", "1")
    assert "logger_class" not in runpy.run_path(str(CONF))  # gunicorn's own, a line for every request


@pytest.mark.e2e
@pytest.mark.parametrize("every", [False, True], ids=["default", "WEB_LOG_STORED_DELIVERIES=1"])
def test_gunicorn_as_the_procfile_runs_it_logs_all_but_a_new_delivery(settings, shop, tmp_path, every):
    log_path = tmp_path / "gunicorn.log"
    extra = {"WEB_LOG_STORED_DELIVERIES": "1"} if every else {}
    server, url = start_procfile_web(settings, log_path, **extra)
    body = json.dumps(ORDER).encode()
    webhook_id = f"access-{uuid.uuid4()}"
    try:
        answers = [post_order(url, body, webhook_id), post_order(url, body, webhook_id)]
        answers.append(post_order(url, body, f"access-{uuid.uuid4()}", forged=True))
    finally:
        stop(server)  # a graceful stop: every answered request's line is written by then
    lines = [line for line in log_path.read_text().splitlines() if "/webhooks/shopify" in line]
    assert [answer.status_code for answer in answers] == [200, 200, 401]
    statuses = sorted(line.split('" ')[1].split(" ")[0] for line in lines)
    # the new delivery's 200 (only when told to log every one), its duplicate's 200 and the forged one's 401
    assert statuses == (["200", "200", "401"] if every else ["200", "401"])
    assert SHOP not in "".join(lines)  # the shop is in the headers and the body, never in an access line
