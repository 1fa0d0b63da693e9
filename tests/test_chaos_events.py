"""The chaos replay's event and expiry checks on their own: a lost, invented or badly signed event fails, and so
does an expiry that took too much, too little or touched a negative balance."""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
import time

import requests

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import chaos_events


def outbox(*ids: str) -> list[dict]:
    return [{"id": n, "event_id": event_id, "event_type": "points.earned"} for n, event_id in enumerate(ids, 1)]


def received(*ids: str, duplicates: int = 0, bad: int = 0) -> chaos_events.Received:
    found = chaos_events.Received(duplicates=duplicates, bad_signatures=bad)
    found.accepted = {event_id: {"id": event_id, "sequence": n} for n, event_id in enumerate(ids, 1)}
    return found


def test_every_event_received_once_passes_and_repeats_are_only_counted():
    assert chaos_events.check_events(outbox("a", "b"), received("a", "b", duplicates=3)).passed


def test_a_lost_an_invented_or_a_badly_signed_event_fails():
    assert not chaos_events.check_events(outbox("a", "b"), received("a")).passed
    assert not chaos_events.check_events(outbox("a"), received("a", "z")).passed
    assert not chaos_events.check_events(outbox("a"), received("a", bad=1)).passed


def test_a_members_event_arriving_before_an_earlier_one_of_theirs_fails():
    in_order = received("a", "b", "c")
    in_order.first_accepted = [(7001, 1), (7002, 2), (7001, 3)]
    assert chaos_events.check_events(outbox("a", "b", "c"), in_order).passed
    overtaken = received("a", "b", "c")
    overtaken.first_accepted = [(7001, 3), (7002, 2), (7001, 1)]  # 7001's 3rd event overtook its 1st
    check = chaos_events.check_events(outbox("a", "b", "c"), overtaken)
    assert not check.passed and "before an earlier one" in check.details[0]


def test_expiry_must_take_positive_balances_to_zero_once_and_leave_negative_ones():
    before = {1: 120, 2: -30, 3: 0}
    good = chaos_events.check_expiry(before, {1: 0, 2: -30, 3: 0}, {1: -120}, (0, "ok"), kills=3, interrupted=3)
    assert good.passed
    doubled = chaos_events.check_expiry(before, {1: -120, 2: -30, 3: 0}, {1: -240}, (0, "ok"), kills=3, interrupted=3)
    assert not doubled.passed
    touched = chaos_events.check_expiry(before, {1: 0, 2: 0, 3: 0}, {1: -120, 2: 30}, (0, "ok"), kills=3, interrupted=3)
    assert not touched.passed
    unkilled = chaos_events.check_expiry(before, {1: 0, 2: -30, 3: 0}, {1: -120}, (0, "ok"), kills=0, interrupted=0)
    assert not unkilled.passed and "no kill" in unkilled.details[0]  # exact, but tested under no kill


def test_the_receiver_accepts_a_valid_signature_once_and_refuses_a_forged_one():
    receiver = chaos_events.Receiver(fail_rate=0.0, seed=1)
    receiver.secret = "whsec_test"
    receiver.start()
    try:
        body = json.dumps({"id": "e1", "sequence": 1}).encode()
        now = int(time.time())
        good = hmac.new(b"whsec_test", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        for header, want in [(f"t={now},v1={good}", 200), (f"t={now},v1={good}", 200), (f"t={now},v1=00", 401)]:
            answer = requests.post(receiver.url, data=body, headers={"Loyalty-Signature": header}, timeout=5)
            assert answer.status_code == want
    finally:
        receiver.stop()
    assert list(receiver.received.accepted) == ["e1"] and receiver.received.duplicates == 1
    assert receiver.received.bad_signatures == 1
