"""The admin API for outgoing events: register (secret once), refusals with per-field messages, log, replay."""

from __future__ import annotations

import pytest
import responses

from plugin.db import transaction
from plugin.services import event_delivery, event_endpoints, outbox
from tests.test_admin_api import call, session_token

URL = "https://hooks.example.com/loyalty"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Every name resolves to a public address except those naming a private one (no real DNS in tests)."""
    monkeypatch.setattr(
        event_endpoints, "resolve", lambda host: ["10.0.0.7"] if host.startswith("internal") else ["93.184.216.34"]
    )


def test_an_endpoint_is_registered_and_its_secret_shown_once(client, shop):
    created = call(client, "POST", "events/endpoints", session_token(), json={"url": URL})
    assert created.status_code == 201
    body = created.get_json()
    assert body["secret"].startswith("whsec_") and body["endpoint"]["active"] is True
    listed = call(client, "GET", "events/endpoints", session_token()).get_json()
    assert [e["url"] for e in listed["endpoints"]] == [URL] and listed["notices"] == []
    assert body["secret"] not in str(listed)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"url": "http://hooks.example.com/x"}, "url", "https://"),
        ({"url": "https://internal.example.com/x"}, "url", "private"),
        ({"url": URL, "event_types": ["points.nope"]}, "event_types", "Must be one of"),
        ({"url": URL, "event_types": []}, "event_types", "Shorter than minimum"),
        ({}, "url", "Missing data"),
        ({"url": URL, "description": "x" * 201}, "description", "Longer than maximum"),
    ],
)
def test_bad_endpoints_are_refused_with_per_field_messages(client, shop, body, field, words):
    response = call(client, "POST", "events/endpoints", session_token(), json=body)
    assert response.status_code == 400
    fields = response.get_json()["error"]["fields"]
    fields = fields.get("json", fields)
    assert words in str(fields[field])
    assert call(client, "GET", "events/endpoints", session_token()).get_json()["endpoints"] == []


def test_disabling_shows_a_notice_and_enabling_clears_it(client, shop):
    endpoint_id = call(client, "POST", "events/endpoints", session_token(), json={"url": URL}).get_json()["endpoint"][
        "id"
    ]
    call(client, "POST", f"events/endpoints/{endpoint_id}/disable", session_token())
    listed = call(client, "GET", "events/endpoints", session_token()).get_json()
    assert listed["notices"] == [f"{URL} is disabled: disabled by the merchant"]
    enabled = call(client, "POST", f"events/endpoints/{endpoint_id}/enable", session_token()).get_json()
    assert enabled["active"] is True
    assert call(client, "POST", "events/endpoints/999/enable", session_token()).status_code == 404
    assert call(client, "DELETE", f"events/endpoints/{endpoint_id}", session_token()).status_code == 204


@responses.activate
def test_the_log_shows_deliveries_and_replay_sends_them_again(client, shop, settings):
    call(client, "POST", "events/endpoints", session_token(), json={"url": URL})
    with transaction(settings.database_url) as session:
        outbox.record(session, shop, "points.earned", dedupe_key="k1", data={"points": 5})
    responses.post(URL, status=200)
    event_delivery.deliver(settings)
    log = call(client, "GET", "events/deliveries", session_token()).get_json()["deliveries"]
    assert [(d["event_type"], d["status"], d["attempts"], d["last_status"]) for d in log] == [
        ("points.earned", "delivered", 1, 200)
    ]
    replayed = call(client, "POST", "events/replay", session_token(), json={"event_id": log[0]["event_id"]})
    assert replayed.get_json() == {"queued": 1}
    event_delivery.deliver(settings)
    assert len(responses.calls) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "since"),
        ({"since": "2026-12-01T00:00:00Z"}, "since"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "until"),
        ({"event_id": "x", "since": "2026-12-01T00:00:00Z", "until": "2026-12-02T00:00:00Z"}, "event_id"),
        ({"since": "yesterday", "until": "2026-12-02T00:00:00Z"}, "since"),
    ],
)
def test_a_replay_without_a_clear_target_is_refused(client, shop, body, field):
    response = call(client, "POST", "events/replay", session_token(), json=body)
    assert response.status_code == 400
    fields = response.get_json()["error"]["fields"]
    assert field in fields.get("json", fields)
