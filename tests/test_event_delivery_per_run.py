"""Outgoing events' per-run work (decision 0060): each endpoint's secret decrypted once, the environment read once."""

from __future__ import annotations

import dataclasses
import json
import time

import requests
import sqlalchemy

from plugin import crypto
from plugin.db import transaction
from plugin.models import Member, OutboxEvent
from plugin.services import event_delivery, event_endpoints
from tests.http_receiver import LoopbackReceiver
from tests.test_event_delivery_batches import record


def loopback(_host):
    return ["127.0.0.1"]


def register(settings, shop, url) -> str:
    with transaction(settings.database_url) as session:
        _endpoint, secret = event_endpoints.register(
            session, shop, url, settings.encryption_keys, allow_loopback=True, resolver=loopback
        )
        return secret


def signed(receiver: LoopbackReceiver, secret: str) -> bool:
    now = int(time.time())
    return all(
        event_delivery.verify(secret, posted.headers[event_delivery.SIGNATURE_HEADER], posted.body, now)
        for posted in receiver.posted
    )


def test_each_endpoints_secret_is_decrypted_once_per_run_and_signs_only_its_own(settings, shop, monkeypatch):
    local = dataclasses.replace(settings, events_allow_loopback=True)
    decrypts = []
    real_decrypt = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda *args: decrypts.append(args) or real_decrypt(*args))
    with LoopbackReceiver() as first, LoopbackReceiver() as second:
        secrets = register(local, shop, first.url), register(local, shop, second.url)
        record(local, shop, [1, 2, 3, 1, 2, 3])  # two batches: each member's second event waits for its first
        assert event_delivery.deliver(local, resolver=loopback) == {"delivered": 12}
    assert len(first.posted) == len(second.posted) == 6
    assert signed(first, secrets[0]) and signed(second, secrets[1])
    assert not signed(first, secrets[1])  # the check above can tell the two apart
    assert len(decrypts) == 2  # one per endpoint, not one per event (12)


def test_the_environments_proxy_is_read_once_per_url_and_still_used(settings, shop, monkeypatch):
    """The sender reads proxies (and CA bundle) from the environment once per URL in a run; every send uses them."""
    local = dataclasses.replace(settings, events_allow_loopback=True)
    reads = []
    real_read = requests.sessions.get_environ_proxies
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    with LoopbackReceiver() as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url.rsplit("/", 1)[0])
        secret = register(local, shop, "http://events.receiver.test/hook")  # resolves to loopback, via the proxy
        record(local, shop, [1, 2, 3, 4, 5])
        assert event_delivery.deliver(local, resolver=loopback) == {"delivered": 5}
    assert len(proxy.posted) == 5 and signed(proxy, secret)  # all five went through the proxy, signed
    assert len(reads) == 1  # not once per send (5)


def test_a_claim_reads_its_events_and_members_as_columns_not_mapped_objects(settings, shop):
    """The envelope needs five columns of an event and a member's customer id: no mapped object is built for them."""
    with transaction(settings.database_url) as session:
        members = [Member(shop_id=shop, customer_id=customer_id, balance=0) for customer_id in (501, 502, 503)]
        session.add_all(members)
        session.flush()
        member_ids = [member.id for member in members]
    local = dataclasses.replace(settings, events_allow_loopback=True)
    loaded = []

    def note(target, _context):
        loaded.append(type(target).__name__)

    for model in (OutboxEvent, Member):
        sqlalchemy.event.listen(model, "load", note)
    try:
        with LoopbackReceiver() as receiver:
            register(local, shop, receiver.url)
            record(local, shop, member_ids)
            event_delivery.fan_out(local.database_url)
            claimed = event_delivery._claim(local.database_url, event_delivery.utcnow(), 10)
    finally:
        for model in (OutboxEvent, Member):
            sqlalchemy.event.remove(model, "load", note)
    assert len(claimed) == 3 and loaded == []
    assert sorted(json.loads(item.body)["customer_id"] for item in claimed) == [501, 502, 503]


def test_each_urls_request_is_prepared_once_per_run_and_sent_as_session_post_sends_it(settings, shop, monkeypatch):
    """Decision 0076: a template per URL, copied with each event's body and signed headers; on the wire the same
    request line, headers and body as requests.Session.post's."""
    local = dataclasses.replace(settings, events_allow_loopback=True)
    prepared = []
    real_prepare = requests.Session.prepare_request
    monkeypatch.setattr(requests.Session, "prepare_request", lambda *a: prepared.append(a[1].url) or real_prepare(*a))
    with LoopbackReceiver() as first, LoopbackReceiver() as second:
        secrets = register(local, shop, first.url), register(local, shop, second.url)
        record(local, shop, [1, 2, 3, 1, 2, 3])
        assert event_delivery.deliver(local, resolver=loopback) == {"delivered": 12}
        assert sorted(prepared) == sorted([first.url, second.url])  # once per URL, not once per event (12)
        assert len({posted.body for posted in first.posted}) == 6 and signed(first, secrets[0])
        sent = first.posted[-1]
        names = ("Content-Type", "User-Agent", event_delivery.SIGNATURE_HEADER, event_delivery.EVENT_ID_HEADER,
                 event_delivery.EVENT_TYPE_HEADER)  # fmt: skip
        with requests.Session() as plain:
            plain.trust_env = False
            plain.post(first.url, data=sent.body, headers={name: sent.headers[name] for name in names},
                       timeout=event_delivery.TIMEOUT_SECONDS, allow_redirects=False)  # fmt: skip
        reference = first.posted[-1]
    assert sent.body == reference.body
    assert sorted(sent.headers.items()) == sorted(reference.headers.items())
