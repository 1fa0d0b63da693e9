"""The set-based expiry run against the one-member path: the same postings, orders and events on random members.

Two shops get the same seeded random histories (earnings with and without orders, pending lots, redemptions,
reversals, gifts); one runs the batch path, the other is forced onto the one-member fallback. Their results,
with posting ids replaced by the seed's keys, must be equal. A crash in the middle of a batch must roll back whole
and the next run must finish exactly as an uninterrupted one.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from plugin import ledger
from plugin.db import transaction
from plugin.ledger import postings as ledger_postings
from plugin.models import ExpiryRun, Member, Order, OutboxEvent, Posting
from plugin.services import expiry, expiry_batch, shops
from tests.conftest import SHOP

OTHER_SHOP = "other-loyalty.myshopify.com"
MEMBERS = 60
RUN_DAYS = ("2027-05-20", "2027-06-01", "2027-06-25")  # three daily runs: later runs meet earlier expiries


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def seed_history(settings, shop_id: int, seed: int, monkeypatch) -> None:
    """The same random history in any shop for the same seed (postings keyed `seed:<customer>:<n>`)."""
    rng = random.Random(seed)
    start = at("2025-09-01")
    with monkeypatch.context() as patch, transaction(settings.database_url) as session:
        for customer in range(1, MEMBERS + 1):
            member = Member(shop_id=shop_id, customer_id=9000 + customer, balance=0)
            session.add(member)
            session.flush()
            clock = start + timedelta(days=rng.randint(0, 60))
            orders: list[int] = []
            balance = 0
            for step in range(rng.randint(1, 8)):
                clock += timedelta(days=rng.randint(1, 90), hours=rng.randint(0, 23))
                patch.setattr(ledger_postings, "utcnow", lambda when=clock: when)
                roll = rng.random()
                key = f"seed:{customer}:{step}"
                if roll < 0.45 or balance <= 0:
                    points = rng.randint(10, 400)
                    order_id = customer * 100 + step if rng.random() < 0.7 else None
                    available = clock + timedelta(days=14) if rng.random() < 0.5 else None
                    if order_id is not None:
                        session.add(
                            Order(
                                shop_id=shop_id, order_id=order_id, member_id=member.id, points_held=points,
                                available_at=available, paid_at=clock,
                            )
                        )  # fmt: skip
                        orders.append(order_id)
                    kind = rng.choice(("earn", "earn", "adjust", "bonus")) if order_id is None else "earn"
                    entry = ledger.Entry(
                        member_id=member.id, kind=kind, points=points, source_type="order", source_id=key,
                        idempotency_key=key, rule_version="seed", order_id=order_id, available_at=available,
                    )  # fmt: skip
                elif roll < 0.8:
                    points = rng.randint(1, balance + 50)
                    entry = ledger.Entry(
                        member_id=member.id, kind="redeem", points=-points, source_type="redemption",
                        source_id=key, idempotency_key=key, rule_version="seed",
                    )  # fmt: skip
                elif orders:
                    order_id = rng.choice(orders)
                    order = session.query(Order).filter_by(shop_id=shop_id, order_id=order_id).one()
                    if order.points_held <= 0:
                        continue
                    points = rng.randint(1, order.points_held)
                    order.points_held -= points
                    entry = ledger.Entry(
                        member_id=member.id, kind="reverse", points=-points, source_type="refund", source_id=key,
                        idempotency_key=key, rule_version="seed", order_id=order_id,
                    )  # fmt: skip
                else:
                    continue
                ledger.post(session, shop_id, entry)
                session.flush()
                balance += entry.points


def outcome(settings, shop_id: int) -> dict:
    """What the runs did in one shop, with every posting id replaced by the seed key of the lot it names."""
    with transaction(settings.database_url) as session:
        members = {m.id: m.customer_id for m in session.query(Member).filter_by(shop_id=shop_id)}
        key_of = {p.id: p.idempotency_key for p in session.query(Posting).filter_by(shop_id=shop_id)}
        expired = sorted(
            (
                members[p.member_id], key_of[int(p.source_id)], p.points, p.balance_after, p.note, p.order_id,
                p.rule_version, p.idempotency_key.split(":")[1],
            )
            for p in session.query(Posting).filter_by(shop_id=shop_id, kind="expire")
        )  # fmt: skip
        events = []
        for event in session.query(OutboxEvent).filter_by(shop_id=shop_id).order_by(OutboxEvent.id):
            payload = dict(event.payload)
            if "lot_posting_id" in payload:
                payload["lot_posting_id"] = key_of[payload["lot_posting_id"]]
            payload.pop("posting_id", None)
            events.append((members[event.member_id], event.event_type, payload))
        per_member = {}
        for customer, event_type, payload in events:  # each member's events in their order of occurrence
            per_member.setdefault(customer, []).append((event_type, sorted(payload.items())))
        orders = sorted(
            (o.order_id, o.points_held, o.expired_points) for o in session.query(Order).filter_by(shop_id=shop_id)
        )
        balances = sorted((members[m.id], m.balance) for m in session.query(Member).filter_by(shop_id=shop_id))
        assert ledger.verify(session) == []
        return {"expired": expired, "events": per_member, "orders": orders, "balances": balances}


def run_days(settings, shop_id: int) -> list[tuple[int, int, int]]:
    reports = [expiry.run_shop(settings.database_url, shop_id, now=at(day)) for day in RUN_DAYS]
    return [(r.members, r.points_expired, r.reminders) for r in reports]


def two_shops(settings, seed: int, monkeypatch, policy: dict) -> tuple[int, int]:
    with transaction(settings.database_url) as session:
        batched = shops.install(session, SHOP, None, settings.encryption_keys).id
        one_by_one = shops.install(session, OTHER_SHOP, None, settings.encryption_keys).id
        for shop_id in (batched, one_by_one):
            expiry.save_policy(session, shop_id, policy)
    for shop_id in (batched, one_by_one):
        seed_history(settings, shop_id, seed, monkeypatch)
    return batched, one_by_one


def no_fallback(*_args, **_kwargs):
    raise AssertionError("the batch failed and fell back to the one-member path")


@pytest.mark.parametrize(
    ("seed", "policy"),
    [
        (1, {"policy": "per_lot", "months": 12, "reminder_days": [30, 7]}),
        (2, {"policy": "per_lot", "months": 6, "reminder_days": [60, 14, 1]}),
        (3, {"policy": "inactivity", "months": 3, "reminder_days": [30, 7]}),
    ],
)
def test_the_batch_does_what_the_one_member_path_does(settings, monkeypatch, seed, policy):
    batched, one_by_one = two_shops(settings, seed, monkeypatch, policy)
    monkeypatch.setattr(expiry, "MEMBERS_PER_BATCH", 25)  # several batches, the last one short
    with monkeypatch.context() as patch:
        patch.setattr(expiry, "_member", no_fallback)  # the batch path must do it all by itself
        batched_reports = run_days(settings, batched)

    def batch_fails(*_args, **_kwargs):
        raise RuntimeError("forced onto the one-member path")

    monkeypatch.setattr(expiry_batch, "run_batch", batch_fails)
    fallback_reports = run_days(settings, one_by_one)

    assert batched_reports == fallback_reports
    assert sum(points for _m, points, _r in batched_reports) > 0  # the seed really expires something
    assert sum(reminders for _m, _p, reminders in batched_reports) > 0
    assert outcome(settings, batched) == outcome(settings, one_by_one)


def test_a_crash_in_the_middle_of_a_batch_resumes_exactly(settings, monkeypatch):
    policy = {"policy": "per_lot", "months": 12, "reminder_days": [30, 7]}
    crashed, reference = two_shops(settings, 4, monkeypatch, policy)
    monkeypatch.setattr(expiry, "MEMBERS_PER_BATCH", 20)
    expected = run_days(settings, reference)

    class Killed(BaseException):
        """As a SIGKILL would: not an error the batch's fallback may catch."""

    real_lower_orders = expiry_batch._lower_orders
    calls = {"n": 0}

    def killed_on_second_batch(*args):
        calls["n"] += 1
        if calls["n"] == 2:  # the second batch: its postings are written, its orders and events not yet
            raise Killed
        return real_lower_orders(*args)

    monkeypatch.setattr(expiry_batch, "_lower_orders", killed_on_second_batch)
    with pytest.raises(Killed):
        expiry.run_shop(settings.database_url, crashed, now=at(RUN_DAYS[0]))
    with transaction(settings.database_url) as session:
        run = session.get(ExpiryRun, (crashed, at(RUN_DAYS[0]).date()))
        assert run.completed_at is None and run.after_member_id > 0  # the first batch committed, not the second
    monkeypatch.setattr(expiry_batch, "_lower_orders", real_lower_orders)
    resumed = run_days(settings, crashed)
    with transaction(settings.database_url) as session:
        first_day = session.get(ExpiryRun, (crashed, at(RUN_DAYS[0]).date()))
        assert (first_day.points_expired, first_day.reminders) == expected[0][1:]
    assert resumed[1:] == expected[1:]
    assert outcome(settings, crashed) == outcome(settings, reference)
