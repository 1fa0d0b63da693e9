"""Outgoing events: endpoints refused when unsafe, signed deliveries, backoff, 410, disabling, give-up, replay."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
import responses

from plugin.db import transaction
from plugin.models import EventDelivery, EventEndpoint, utcnow
from plugin.services import event_delivery, event_endpoints, outbox
from plugin.services.errors import Invalid

PUBLIC = "93.184.216.34"
URL = "https://hooks.example.com/loyalty"


def public(_host):
    return [PUBLIC]


class Clock:
    """A clock the test moves by hand, so retries, the 24-hour window and the 3-day limit need no waiting."""

    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


def register(settings, shop, url=URL, **kwargs):
    with transaction(settings.database_url) as session:
        endpoint, secret = event_endpoints.register(
            session, shop, url, settings.encryption_keys, resolver=kwargs.pop("resolver", public), **kwargs
        )
        return endpoint.id, secret


def record(settings, shop, key="points.earned:posting:1", event_type="points.earned", member_id=None, **data):
    with transaction(settings.database_url) as session:
        outbox.record(session, shop, event_type, dedupe_key=key, data=data or {"points": 10}, member_id=member_id)


def deliver(settings, clock):
    return event_delivery.deliver(settings, clock=clock, resolver=public)


@pytest.mark.parametrize(
    ("url", "addresses", "message"),
    [
        ("http://hooks.example.com/x", [PUBLIC], "must be an https:// URL"),
        ("ftp://hooks.example.com/x", [PUBLIC], "must be an https:// URL"),
        ("https://internal.example.com/x", ["10.1.2.3"], "private, loopback or reserved"),
        ("https://metadata.example.com/x", ["169.254.169.254"], "private, loopback or reserved"),
        ("https://localhost/x", ["127.0.0.1"], "private, loopback or reserved"),
        ("https://mixed.example.com/x", [PUBLIC, "192.168.0.1"], "private, loopback or reserved"),
        ("https://nowhere.invalid/x", [], "does not resolve"),
        ("https://user:pw@hooks.example.com/x", [PUBLIC], "user name or password"),
        ("", [PUBLIC], "a URL is required"),
    ],
)
def test_an_unsafe_endpoint_url_is_refused_with_a_message(settings, shop, url, addresses, message):
    with pytest.raises(Invalid) as refused:
        register(settings, shop, url, resolver=lambda _host: addresses)
    assert refused.value.status == 400
    assert message in refused.value.fields["url"][0]
    with transaction(settings.database_url) as session:
        assert event_endpoints.endpoints(session, shop) == []  # nothing half-made


def test_loopback_is_allowed_only_in_development(settings, shop):
    loopback = lambda _host: ["127.0.0.1"]  # noqa: E731
    with pytest.raises(Invalid):
        register(settings, shop, "http://127.0.0.1:9/hook", resolver=loopback)
    endpoint_id, _ = register(settings, shop, "http://127.0.0.1:9/hook", resolver=loopback, allow_loopback=True)
    assert endpoint_id


def test_unknown_event_types_are_refused(settings, shop):
    with pytest.raises(Invalid) as refused:
        register(settings, shop, event_types=["points.earned", "points.teleported"])
    assert "points.teleported" in refused.value.fields["event_types"][0]


def test_the_secret_is_stored_encrypted_and_never_listed(settings, shop):
    _, secret = register(settings, shop)
    with transaction(settings.database_url) as session:
        row = session.query(EventEndpoint).one()
        assert secret.encode() not in row.secret
        assert "secret" not in event_endpoints.to_json(row)
        assert event_endpoints.secret_of(row, settings.encryption_keys) == secret


@responses.activate
def test_an_event_is_delivered_signed_with_its_id_and_sequence(settings, shop):
    clock = Clock()
    _, secret = register(settings, shop)
    record(settings, shop, points=120)
    responses.post(URL, status=200)
    assert deliver(settings, clock) == {"delivered": 1}
    request = responses.calls[0].request
    body = json.loads(request.body)
    assert body["type"] == "points.earned" and body["data"] == {"points": 120}
    assert body["shop"] == "loyal-shop.myshopify.com" and isinstance(body["sequence"], int)
    assert request.headers["Loyalty-Event-Id"] == body["id"]
    assert event_delivery.verify(secret, request.headers["Loyalty-Signature"], request.body, int(clock.now.timestamp()))
    assert not event_delivery.verify("whsec_other", request.headers["Loyalty-Signature"], request.body, 0)
    # An old signature is refused by a receiver that checks the timestamp (replay of a captured request).
    later = int((clock.now + timedelta(hours=1)).timestamp())
    assert not event_delivery.verify(secret, request.headers["Loyalty-Signature"], request.body, later)
    assert deliver(settings, clock) == {}  # delivered once


def test_an_endpoint_receives_only_the_types_it_asked_for(settings, shop):
    clock = Clock()
    register(settings, shop, event_types=["reward.issued"])
    record(settings, shop)
    with responses.RequestsMock() as mocked:
        assert deliver(settings, clock) == {}
        assert len(mocked.calls) == 0


@responses.activate
def test_failures_are_retried_with_exponential_backoff_until_delivered(settings, shop):
    clock = Clock()
    register(settings, shop)
    record(settings, shop)
    responses.post(URL, status=500)
    assert deliver(settings, clock) == {"retry": 1}
    assert deliver(settings, clock) == {}  # not due yet: 30 seconds
    waits = []
    for _ in range(4):
        with transaction(settings.database_url) as session:
            row = session.query(EventDelivery).one()
            waits.append(row.next_attempt_at - clock.now)
            clock.now = row.next_attempt_at
        deliver(settings, clock)
    assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    responses.replace(responses.POST, URL, status=204)
    clock.advance(hours=1)
    assert deliver(settings, clock) == {"delivered": 1}
    with transaction(settings.database_url) as session:
        row = session.query(EventDelivery).one()
        assert (row.status, row.attempts, row.last_status) == ("delivered", 6, 204)
        assert session.query(EventEndpoint).one().failing_since is None


@responses.activate
def test_a_410_disables_the_endpoint(settings, shop):
    clock = Clock()
    register(settings, shop)
    record(settings, shop)
    record(settings, shop, key="second")
    responses.post(URL, status=410)
    deliver(settings, clock)
    assert len(responses.calls) == 1  # the first answer disabled it: the second event is not sent
    with transaction(settings.database_url) as session:
        endpoint = session.query(EventEndpoint).one()
        assert endpoint.disabled_at is not None and "410" in endpoint.disabled_reason
        assert event_endpoints.to_json(endpoint)["active"] is False


@responses.activate
def test_a_delivery_is_given_up_after_24_hours_and_an_endpoint_failing_3_days_is_disabled(settings, shop):
    clock = Clock()
    register(settings, shop)
    responses.post(URL, status=503)
    for day in range(4):
        record(settings, shop, key=f"day-{day}")
        for _ in range(30):  # every retry of the day
            deliver(settings, clock)
            clock.advance(hours=1)
    with transaction(settings.database_url) as session:
        statuses = sorted(row.status for row in session.query(EventDelivery))
        endpoint = session.query(EventEndpoint).one()
    # Days 0 and 1 were given up after 24 hours each; the endpoint was disabled on day 3, so day 3's event
    # was never queued for it, and day 2's waits for the endpoint to be enabled again.
    assert statuses == ["gave_up", "gave_up", "pending"]
    assert endpoint.disabled_at is not None and "3 days" in endpoint.disabled_reason


@responses.activate
def test_a_name_pointed_at_a_private_address_later_is_not_sent_to(settings, shop):
    clock = Clock()
    register(settings, shop)
    record(settings, shop)
    counts = event_delivery.deliver(settings, clock=clock, resolver=lambda _host: ["10.0.0.5"])
    assert counts == {"retry": 1} and len(responses.calls) == 0
    with transaction(settings.database_url) as session:
        assert "refused" in session.query(EventDelivery).one().last_error


@responses.activate
def test_one_event_or_a_time_range_is_replayed_with_the_same_event_id(settings, shop):
    clock = Clock()
    register(settings, shop)
    record(settings, shop, key="a")
    record(settings, shop, key="b")
    responses.post(URL, status=200)
    deliver(settings, clock)
    first_ids = [json.loads(call.request.body)["id"] for call in responses.calls]
    with transaction(settings.database_url) as session:
        assert event_delivery.replay(session, shop, event_id=first_ids[0], clock=clock) == 1
    deliver(settings, clock)
    assert json.loads(responses.calls[2].request.body)["id"] == first_ids[0]
    with transaction(settings.database_url) as session:
        queued = event_delivery.replay(
            session, shop, since=clock.now - timedelta(hours=1), until=clock.now + timedelta(hours=1), clock=clock
        )
        assert queued == 2
        log = event_delivery.delivery_log(session, shop)
    deliver(settings, clock)
    assert [json.loads(call.request.body)["id"] for call in responses.calls[3:]] == first_ids
    assert {entry["status"] for entry in log} == {"pending"}


def test_events_wait_in_the_database_when_no_worker_runs(settings, shop):
    register(settings, shop)
    record(settings, shop)
    assert event_delivery.any_due(settings.database_url)
    quiet = dataclasses.replace(settings)
    with responses.RequestsMock() as mocked:
        mocked.post(URL, status=200)
        event_delivery.deliver(quiet, resolver=public)
    assert not event_delivery.any_due(settings.database_url)


@responses.activate
def test_an_event_survives_redis_being_down_and_is_delivered_once_it_is_back(settings, shop):
    from plugin import jobs

    clock = Clock()
    register(settings, shop)
    record(settings, shop)
    redis_down = dataclasses.replace(settings, redis_url="redis://127.0.0.1:1/0")  # nothing listens there
    jobs.signal_events(redis_down)  # the signal is lost (logged), the event is not: it waits in the database
    assert event_delivery.any_due(settings.database_url)
    responses.post(URL, status=200)
    assert deliver(settings, clock) == {"delivered": 1}  # the sweeper's job, once a worker runs again
