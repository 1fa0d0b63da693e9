"""A full batch leaves a shopper another worker's batch is applying to a later batch, without counting an attempt."""

from __future__ import annotations

import json
from contextlib import ExitStack, contextmanager

import pytest
from sqlalchemy import select, text

from plugin import inbox, inbox_shoppers
from plugin.db import engine_for, transaction
from plugin.models import Delivery, DeliveryClaim
from tests import builders
from tests.conftest import SHOP

pytestmark = pytest.mark.db


@pytest.fixture(autouse=True)
def postgresql_only(settings):
    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: no other batch holds a shopper")


def store(settings, order_id: int, customer_id: int | None, topic: str = "orders/paid") -> None:
    body = json.dumps(builders.order(order_id, customer_id, [builders.line(order_id * 10, "10.00")])).encode()
    incoming = inbox.IncomingDelivery(SHOP, topic, f"w-{order_id}", body)
    inbox.store(engine_for(settings.database_url), incoming)


@contextmanager
def another_batch_holding(settings, *customer_ids: int):
    """An open transaction holding the shoppers' advisory locks, as another worker's batch applying them does."""
    with engine_for(settings.database_url).connect() as connection, connection.begin():
        for customer_id in customer_ids:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:namespace), hashtext(:key))"),
                {"namespace": inbox_shoppers.NAMESPACE, "key": inbox_shoppers.shopper_key(SHOP, customer_id)},
            )
        yield


def outcome(settings) -> dict[str, tuple[str, int, int]]:
    """{webhook id: (status, attempts, claims counted)}, and the order in which the batches finished them."""
    with transaction(settings.database_url) as session:
        claims = dict(session.execute(select(DeliveryClaim.delivery_id, DeliveryClaim.claims)).all())
        return {d.webhook_id: (d.status, d.attempts, claims[d.id]) for d in session.scalars(select(Delivery))}


def finished_order(settings) -> list[str]:
    with transaction(settings.database_url) as session:
        deliveries = session.scalars(select(Delivery).order_by(Delivery.processed_at, Delivery.id))
        return [d.webhook_id for d in deliveries]


@pytest.fixture
def claims_counted(monkeypatch):
    """How many claims the drain made; a drain that claims the same deliveries over and over fails, not hangs."""
    calls: list[int] = []
    real = inbox._claim

    def counted(*args, **kwargs):
        calls.append(1)
        assert len(calls) < 20, "the drain keeps claiming without finishing"
        return real(*args, **kwargs)

    monkeypatch.setattr(inbox, "_claim", counted)
    return calls


def test_a_shopper_another_batch_holds_is_left_for_the_next_claim_and_no_attempt_is_counted(
    settings, shop, claims_counted
):
    for order_id, customer_id in ((1, 7001), (2, 7002), (3, 7003), (4, 7004)):
        store(settings, order_id, customer_id)
    with another_batch_holding(settings, 7001):
        assert inbox.drain(settings.database_url, batch_size=3)["processed"] == 4
    # The first batch took 1-3 and left 1 (its shopper held); the next took 1 and 4, too few to leave anything.
    assert finished_order(settings)[-2:] in (["w-1", "w-4"], ["w-4", "w-1"])
    assert finished_order(settings)[:2] == ["w-2", "w-3"]
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3, 4)}
    assert len(claims_counted) == 2


@pytest.fixture
def given_back(monkeypatch) -> list[list[int]]:
    """The deliveries each give-back took the claim of: those left out of a batch (no batch here is rolled back)."""
    calls: list[list[int]] = []
    real = inbox._forget_claims

    def recorded(database_url, delivery_ids):
        calls.append(list(delivery_ids))
        return real(database_url, delivery_ids)

    monkeypatch.setattr(inbox, "_forget_claims", recorded)
    return calls


def test_without_another_batch_nothing_is_left(settings, shop, claims_counted, given_back):
    # The first batch names shopper 7001 twice (its own lock, taken again) and two guests (no shopper to lock).
    for order_id, customer_id in ((1, 7001), (2, 7001), (3, None), (4, None), (5, 7005)):
        store(settings, order_id, customer_id)
    assert inbox.drain(settings.database_url, batch_size=4)["processed"] == 5
    assert given_back == []
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3, 4, 5)}


def test_a_batch_with_more_than_half_its_deliveries_held_waits_instead_of_being_claimed_again_at_once(
    settings, shop, claims_counted, given_back
):
    for order_id, customer_id in ((1, 7001), (2, 7002), (3, 7001)):
        store(settings, order_id, customer_id)
    # Only an advisory lock is held, not the member's row: the batch that goes ahead is not blocked.
    with another_batch_holding(settings, 7001):
        assert inbox.drain(settings.database_url, batch_size=3)["processed"] == 3
    assert given_back == []
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3)}
    assert len(claims_counted) == 2  # the full batch, then the empty claim that ends the drain


def test_a_delivery_left_once_is_not_left_again_by_the_same_drain(settings, shop, claims_counted, given_back):
    for order_id, customer_id in ((1, 7001), (2, 7002), (3, 7003), (4, 7004)):
        store(settings, order_id, customer_id)
    with another_batch_holding(settings, 7001):
        assert inbox.drain(settings.database_url, batch_size=2)["processed"] == 4
    # Batch 1 took 1-2 and left 1; batch 2 took 1 and 3 and kept 1, though its shopper was still held; then 4.
    assert given_back == [[1]]
    assert finished_order(settings)[0] == "w-2" and finished_order(settings)[-1] == "w-4"
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3, 4)}


def lock_held_elsewhere(settings, customer_id: int) -> bool:
    """Whether some other transaction holds the shopper's advisory lock, asked from a fresh transaction with the
    batches' own statement (it tries the lock without waiting, and names the shoppers held elsewhere)."""
    key = inbox_shoppers.shopper_key(SHOP, customer_id)
    with engine_for(settings.database_url).connect() as connection, connection.begin():
        held = connection.exec_driver_sql(
            inbox_shoppers._HELD_ELSEWHERE, {"keys": [key], "namespace": inbox_shoppers.NAMESPACE}
        )
        return [key] == held.scalars().all()


def test_a_shopper_a_drain_applies_after_leaving_them_once_has_their_lock_taken_once_free(
    settings, shop, claims_counted, monkeypatch
):
    for order_id, customer_id in ((1, 7001), (2, 7002), (3, 7003), (4, 7004)):
        store(settings, order_id, customer_id)
    other = ExitStack()
    other.enter_context(another_batch_holding(settings, 7001))
    real_forget, real_apply = inbox._forget_claims, inbox._apply_set_based

    def given_back_then_other_commits(database_url, delivery_ids):
        real_forget(database_url, delivery_ids)
        other.close()  # the batch holding 7001 commits before this drain claims again

    applied: list[tuple[set[str], bool]] = []

    def applying(session, batch, *args, **kwargs):
        applied.append(({d.webhook_id for d in batch}, lock_held_elsewhere(settings, 7001)))
        return real_apply(session, batch, *args, **kwargs)

    monkeypatch.setattr(inbox, "_forget_claims", given_back_then_other_commits)
    monkeypatch.setattr(inbox, "_apply_set_based", applying)
    with other:
        assert inbox.drain(settings.database_url, batch_size=2)["processed"] == 4
    # Batch 1 took 1-2 and left 1; batch 2 took 1 again, with 3, and holds 7001's lock while it applies them: a
    # third worker's batch naming 7001 leaves it instead of waiting on the member's row behind this one.
    assert applied[0] == ({"w-2"}, False)  # 1 given back, then the other batch committed: 7001 free
    assert applied[1] == ({"w-1", "w-3"}, True)
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3, 4)}


def test_a_shopper_a_drain_applies_after_leaving_them_once_has_none_of_their_deliveries_left(
    settings, shop, claims_counted, given_back
):
    for order_id, customer_id in ((1, 7001), (2, 7002), (3, 7003), (4, 7001), (5, 7005)):
        store(settings, order_id, customer_id)
    with another_batch_holding(settings, 7001):
        assert inbox.drain(settings.database_url, batch_size=3)["processed"] == 5
    # Batch 1 took 1-3 and left 1; batch 2 took 1, 4 and 5 and left nothing: it applies 7001 anyway (for 1, left
    # once), so leaving 4 as well would only have delayed it behind the same wait.
    assert given_back == [[1]]
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3, 4, 5)}
    assert len(claims_counted) == 3  # two full batches, then the empty claim that ends the drain


def test_a_delivery_without_a_shopper_is_never_left(settings, shop, claims_counted):
    store(settings, 1, 7001)
    store(settings, 2, None)  # a guest's order: no shopper to wait on
    store(settings, 3, 7003)
    with another_batch_holding(settings, 7001):
        inbox.drain(settings.database_url, batch_size=3)
    assert finished_order(settings)[-1] == "w-1"
    assert outcome(settings) == {f"w-{n}": ("processed", 1, 1) for n in (1, 2, 3)}


def test_only_a_claim_that_came_back_full_signals_for_more_workers(settings, shop):
    for order_id in (1, 2, 3):
        store(settings, order_id, 7000 + order_id)
    unreadable = inbox.IncomingDelivery(SHOP, "orders/paid", "w-bad", b"{not json")
    inbox.store(engine_for(settings.database_url), unreadable)
    signals: list[int] = []
    # The first batch of four fails on the unreadable body and is redone one delivery per transaction: those
    # claims of one are not full batches.
    outcomes = inbox.drain(settings.database_url, batch_size=4, on_full_batch=lambda: signals.append(1))
    assert outcomes == {"processed": 3, "parked": 1}
    assert signals == [1]
