"""Expiry end to end on a frozen clock across months: FIFO redemption, reminders, expiry, a refund after expiry.

The worked example of docs/expiry.md. Orders arrive through the signed webhook intake; the expiry run is called
with the day it would run on (a clock the test sets), as the daily job would on each of those days.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from plugin import ledger
from plugin.db import transaction
from plugin.models import ExpiryRun, Order, OutboxEvent, Posting
from plugin.services import expiry, outbox, redemption, shops
from plugin.services.errors import Invalid
from tests import builders
from tests.conftest import SHOP, deliver, signed_headers
from tests.test_storefront_proxy import get, signed

CUSTOMER = 7001


def paid(client, order_id: int, amount: str, when: str, customer: int = CUSTOMER):
    """orders/paid as the shop sends it at `when` (the time the order was paid, from its webhook's trigger time)."""
    body = json.dumps(builders.order(order_id, customer, [builders.line(order_id * 10 + 1, amount)])).encode()
    headers = signed_headers(body, "orders/paid")
    headers["X-Shopify-Triggered-At"] = when
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200


def setup_shop(settings, policy: str = "allow_negative", expiry_settings: dict | None = None) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        shops.update_settings(session, shop, {"pending_days": 14, "spent_points_policy": policy})
        expiry.save_policy(
            session, shop.id, expiry_settings or {"policy": "per_lot", "months": 12, "reminder_days": [30, 7]}
        )


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)


def run(settings, shop, day: str):
    return expiry.run_shop(settings.database_url, shop, now=at(day))


def member_state(settings):
    with transaction(settings.database_url) as session:
        member = shops.member(session, shops.get(session, SHOP), CUSTOMER)
        return member.balance, expiry.next_expiry(session, shops.get(session, SHOP), member.id, at("2027-01-01"))


def events(settings, shop, event_type):
    with transaction(settings.database_url) as session:
        return [e.payload for e in outbox.recorded(session, shop, limit=10_000) if e.event_type == event_type]


def earn_and_redeem(client, settings, shop):
    paid(client, 1, "800.00", "2026-05-01T10:00:00+00:00")  # lot A: 800, from 15 May
    paid(client, 2, "300.00", "2026-08-01T10:00:00+00:00")  # lot B: 300, from 15 Aug
    with transaction(settings.database_url) as session:
        redemption.redeem(session, shops.get(session, SHOP), CUSTOMER, "5-off")  # 500 points, from lot A first


@pytest.mark.parametrize(
    ("policy", "balance_after_refund", "forgiven"),
    [("allow_negative", -200, 0), ("stop_at_zero", 0, 200)],
)
def test_the_worked_example(client, settings, shop, policy, balance_after_refund, forgiven):
    setup_shop(settings, policy)
    earn_and_redeem(client, settings, shop)
    # FIFO: the redemption took 500 of lot A, so 300 of A expire on 15 May 2027 and B's 300 on 15 Aug 2027.
    assert member_state(settings) == (600, {"date": "2027-05-15", "points": 300})

    assert run(settings, shop, "2027-04-14").reminders == 0
    assert run(settings, shop, "2027-04-15").reminders == 1  # 30 days before
    assert run(settings, shop, "2027-05-08").reminders == 1  # 7 days before
    assert run(settings, shop, "2027-05-08").already_done  # the day's run is done: nothing twice
    reminders = events(settings, shop, "points.expiring")
    assert [(r["points"], r["expires_on"], r["days_before"]) for r in reminders] == [
        (300, "2027-05-15", 30),
        (300, "2027-05-15", 7),
    ]

    assert run(settings, shop, "2027-05-15").points_expired == 300
    assert run(settings, shop, "2027-05-16").points_expired == 0
    assert member_state(settings)[0] == 300
    expired = events(settings, shop, "points.expired")
    assert [(e["points"], e["balance"], e["expires_on"]) for e in expired] == [(-300, 300, "2027-05-15")]

    # Order A is refunded in full after its points expired: the 300 that expired are not taken back again;
    # the 500 spent on the reward follow the shop's spent-points policy.
    deliver(client, "refunds/create", builders.refund(901, 1, {11: 1}))
    balance, _ = member_state(settings)
    assert balance == balance_after_refund
    with transaction(settings.database_url) as session:
        kinds = [(p.kind, p.points) for p in session.query(Posting).order_by(Posting.id)]
        order_a = session.query(Order).filter_by(order_id=1).one()
        assert (order_a.points_held, order_a.expired_points) == (0, 300)
        assert ledger.verify(session) == []
    assert ("reverse", -500) in kinds and ("expire", -300) in kinds
    assert sum(points for kind, points in kinds if kind == "forgive") == forgiven

    # The 500 taken back were paid from what was left (lot B, FIFO after A's own lots), so on B's date there is
    # nothing left to expire: expiry never takes a balance below zero or expires points twice.
    assert run(settings, shop, "2027-08-15").points_expired == 0
    assert member_state(settings)[0] == balance_after_refund


def test_each_lot_expires_on_its_own_date(client, settings, shop):
    setup_shop(settings)
    earn_and_redeem(client, settings, shop)
    assert run(settings, shop, "2027-05-15").points_expired == 300
    assert run(settings, shop, "2027-08-14").points_expired == 0
    assert run(settings, shop, "2027-08-15").points_expired == 300
    assert member_state(settings) == (0, None)
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_a_refund_before_expiry_and_pending_points(client, settings, shop):
    setup_shop(settings)
    paid(client, 1, "100.00", "2026-05-01T10:00:00+00:00")
    deliver(client, "refunds/create", builders.refund(901, 1, {11: 1}))
    assert run(settings, shop, "2027-06-01").points_expired == 0  # nothing left to expire
    # Points still pending on the run's day are not touched (paid 20 May 2027: available 3 Jun).
    paid(client, 2, "50.00", "2027-05-20T10:00:00+00:00")
    assert run(settings, shop, "2027-06-02").points_expired == 0


def test_inactivity_expires_the_available_balance_once_per_idle_spell(client, settings, shop):
    setup_shop(settings, expiry_settings={"policy": "inactivity", "months": 3, "reminder_days": [14]})
    paid(client, 1, "100.00", "2026-05-01T10:00:00+00:00")
    paid(client, 2, "40.00", "2026-06-01T10:00:00+00:00")
    with transaction(settings.database_url) as session:
        last = max(p.created_at for p in session.query(Posting))
    # Activity is the postings' own time (today, in this test): three months later everything goes at once.
    idle_until = expiry.rules.add_months(last.date(), 3)
    assert run(settings, shop, (idle_until - timedelta(days=14)).isoformat()).reminders == 1
    report = run(settings, shop, idle_until.isoformat())
    assert report.points_expired == 140
    assert member_state(settings)[0] == 0
    assert run(settings, shop, expiry.rules.add_months(idle_until, 1).isoformat()).points_expired == 0


def test_a_crashed_run_resumes_without_doubling(client, settings, shop, monkeypatch):
    setup_shop(settings)
    for index, customer in enumerate((7001, 7002, 7003), start=1):
        paid(client, index, "100.00", "2026-05-01T10:00:00+00:00", customer)
    monkeypatch.setattr(expiry, "MEMBERS_PER_BATCH", 1)
    first = expiry.run_shop(settings.database_url, shop, now=at("2027-05-20"), stop_after=1)  # "killed"
    assert first.points_expired == 100
    resumed = run(settings, shop, "2027-05-20")
    assert resumed.points_expired == 200
    with transaction(settings.database_url) as session:
        assert sum(p.points for p in session.query(Posting).filter_by(kind="expire")) == -300
        assert session.get(ExpiryRun, (shop, at("2027-05-20").date())).completed_at is not None
        assert len([e for e in session.query(OutboxEvent) if e.event_type == "points.expired"]) == 3


def test_the_run_counts_days_in_the_shops_time_zone(client, settings, shop):
    setup_shop(settings)
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).time_zone = "Pacific/Auckland"
    paid(client, 1, "100.00", "2026-05-01T10:00:00+00:00")  # available 15 May, 22:00 NZ
    # 14 May 2027 13:00 UTC is already 15 May in Auckland: the lot's day has come there.
    assert expiry.due_shops(settings.database_url, datetime(2027, 5, 14, 13, tzinfo=UTC)) == [shop]
    report = expiry.run_shop(settings.database_url, shop, now=datetime(2027, 5, 14, 13, tzinfo=UTC))
    assert (report.run_date.isoformat(), report.points_expired) == ("2027-05-15", 100)
    assert expiry.due_shops(settings.database_url, datetime(2027, 5, 14, 13, tzinfo=UTC)) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": "per_lot"}, "months"),
        ({"policy": "off", "months": 12}, "months"),
        ({"policy": "off", "reminder_days": [7]}, "reminder_days"),
        ({"policy": "per_lot", "months": 1, "reminder_days": [30]}, "reminder_days"),
        ({"policy": "per_lot", "months": 12, "reminder_days": [7, 7]}, "reminder_days"),
        ({"policy": "per_lot", "months": 12, "reminder_days": [1, 2, 3, 4, 5, 6]}, "reminder_days"),
        ({"policy": "per_lot", "months": 0}, "months"),
        ({"policy": "per_lot", "months": 12.5}, "months"),
        ({"policy": "sometimes", "months": 12}, "policy"),
        ({"policy": "per_lot", "months": 12, "colour": "red"}, "colour"),
    ],
)
def test_contradictory_or_bad_expiry_settings_are_refused(settings, shop, body, field):
    with pytest.raises(Invalid) as refused, transaction(settings.database_url) as session:
        expiry.save_policy(session, shop, body)
    assert field in refused.value.fields
    with transaction(settings.database_url) as session:
        assert expiry.policy_of(session, shop) == expiry.rules.Policy()  # still off: nothing saved


def test_the_widget_shows_the_next_expiry(client, settings, shop):
    # The widget reads "now" from the real clock, so the lots are dated from today's postings here.
    with transaction(settings.database_url) as session:
        expiry.save_policy(session, shop, {"policy": "per_lot", "months": 6})
    deliver(client, "orders/paid", builders.order(1, CUSTOMER))  # 100 points, available at once
    customer = get(client, "widget", signed(CUSTOMER)).get_json()["customer"]
    with transaction(settings.database_url) as session:
        posted = session.query(Posting).one().created_at
    expected = expiry.rules.add_months(posted.date(), 6).isoformat()
    assert customer["next_expiry"] == {"date": expected, "points": 100}
    with transaction(settings.database_url) as session:
        expiry.save_policy(session, shop, {"policy": "off"})
    assert get(client, "widget", signed(CUSTOMER)).get_json()["customer"]["next_expiry"] is None
