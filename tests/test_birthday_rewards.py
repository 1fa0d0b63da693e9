"""The daily birthday job: the tier's birthday reward beside the shop's bonus, and days the job missed caught up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import BirthdayRun, Member, MilestoneHolding, OutboxEvent, Posting, TierMove
from plugin.programme import accounting, explanations
from plugin.services import shops, tier_sets
from plugin.services.milestones import birthdays
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP, deliver, signed_headers

ALICE, BOB = 7001, 7002
TIERS = {
    "metric": "spend",
    "period": "lifetime",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100"},
        {"id": "gold", "name": "Gold", "threshold": "300", "birthday_reward": 100},
    ],
}


def configure(settings, points: int, zone: str = "UTC", tiers=TIERS, locale: str | None = None) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        shop.time_zone = zone
        if locale:
            shop.locale = locale
        milestone_settings.save(session, shop, {"birthday": {"points": points}}, "test")
        if tiers:
            tier_sets.save(session, shop, tiers, "test")


def member(client, settings, customer_id: int, spend: str | None = None) -> int:
    deliver(client, "customers/create", {"id": customer_id, "email": f"c{customer_id}@example.com"})
    if spend:
        body = json.dumps(builders.order(customer_id, customer_id, [builders.line(customer_id, spend)])).encode()
        headers = {**signed_headers(body, "orders/paid"), "X-Shopify-Triggered-At": "2026-11-20T10:00:00Z"}
        assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.id).where(Member.customer_id == customer_id)).scalar_one()


def born(settings, member_id: int, month: int, day: int) -> None:
    with transaction(settings.database_url) as session:
        birthdays.give(session, 1, member_id, month, day, "admin")


def postings(settings, member_id: int) -> list[tuple[str, str, int]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(Posting.source_type, Posting.source_id, Posting.points)
            .where(Posting.member_id == member_id, Posting.source_type.in_(("birthday", "tier_birthday")))
            .order_by(Posting.id)
        )
        return [tuple(r) for r in rows]


def run(settings, at: datetime) -> dict:
    return birthdays.award_all(settings.database_url, at)


def test_a_tier_reward_is_posted_when_the_shop_bonus_is_off(client, settings, shop):
    configure(settings, points=0, locale="fr")
    alice = member(client, settings, ALICE, spend="350.00")  # Gold
    born(settings, alice, 12, 10)
    assert run(settings, datetime(2026, 12, 10, 9, tzinfo=UTC))["awarded"] == 1
    assert postings(settings, alice) == [("tier_birthday", "2026", 100)]
    with transaction(settings.database_url) as session:
        posting = session.scalars(select(Posting).where(Posting.source_type == "tier_birthday")).one()
        assert (posting.kind, posting.rule_version) == ("bonus", "tiers-1")
        assert explanations.localized(posting.note, posting.details, "fr") == (
            "Cadeau d\u2019anniversaire du niveau Gold 2026"
        )
        assert posting.note == "Gold tier birthday reward 2026"
        earned = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.event_type == "points.earned", OutboxEvent.member_id == alice)
        ).all()
        assert [e for e in earned if e.get("source_type") == "tier_birthday"] == [
            {"points": 100, "source_type": "tier_birthday", "source_id": "2026"}
        ]
        assert session.get(Member, (1, alice)).balance == 350 + 100  # 1 point per 1.00 spent, then the reward
        assert ledger.verify(session) == []
    assert accounting.line_of("bonus", "tier_birthday") == "issued.bonus.tier_birthday"
    assert accounting.label("issued.bonus.tier_birthday") == "Issued: tier birthday rewards"


def test_the_shop_bonus_and_the_tier_reward_are_two_postings(client, settings, shop):
    configure(settings, points=200)
    alice = member(client, settings, ALICE, spend="350.00")
    born(settings, alice, 12, 10)
    run(settings, datetime(2026, 12, 10, 9, tzinfo=UTC))
    assert postings(settings, alice) == [("birthday", "2026", 200), ("tier_birthday", "2026", 100)]
    with transaction(settings.database_url) as session:
        bonus = session.scalars(select(Posting).where(Posting.source_type == "birthday")).one()
        assert explanations.localized(bonus.note, bonus.details, "fr") == "Bonus d\u2019anniversaire 2026"


def test_a_member_without_a_rewarded_tier_gets_only_the_shop_bonus(client, settings, shop):
    configure(settings, points=200)
    alice = member(client, settings, ALICE)  # no tier
    bob = member(client, settings, BOB, spend="150.00")  # Silver: no birthday reward
    born(settings, alice, 12, 10)
    born(settings, bob, 12, 10)
    assert run(settings, datetime(2026, 12, 10, 9, tzinfo=UTC))["awarded"] == 2
    assert postings(settings, alice) == [("birthday", "2026", 200)]
    assert postings(settings, bob) == [("birthday", "2026", 200)]
    with transaction(settings.database_url) as session:  # decided for the year: an empty tier holding
        holding = session.get(MilestoneHolding, (1, alice, "tier_birthday:2026"))
        assert holding is not None and holding.grants == []


def test_no_tiers_and_no_bonus_awards_nothing(client, settings, shop):
    configure(settings, points=0, tiers=None)
    alice = member(client, settings, ALICE)
    born(settings, alice, 12, 10)
    assert run(settings, datetime(2026, 12, 10, 9, tzinfo=UTC))["awarded"] == 0
    assert postings(settings, alice) == []


def test_a_rerun_posts_nothing(client, settings, shop):
    configure(settings, points=200)
    alice = member(client, settings, ALICE, spend="350.00")
    born(settings, alice, 12, 10)
    at = datetime(2026, 12, 10, 9, tzinfo=UTC)
    assert run(settings, at)["awarded"] == 1
    assert run(settings, at)["awarded"] == 0
    assert run(settings, at + timedelta(hours=5))["awarded"] == 0
    with transaction(settings.database_url) as session:  # a crashed batch is resumed by the batch itself too
        assert birthdays.award_batch(session, shops.get(session, SHOP), at) == (0, 0)
    assert len(postings(settings, alice)) == 2


def test_both_rewards_once_a_year_across_the_shops_year_boundary(client, settings, shop):
    """A 1 January birthday in Auckland: due while UTC is still 31 December; keyed by the shop's year."""
    configure(settings, points=200, zone="Pacific/Auckland")
    alice = member(client, settings, ALICE, spend="350.00")
    born(settings, alice, 1, 1)
    assert run(settings, datetime(2026, 12, 31, 10, tzinfo=UTC))["awarded"] == 0  # 23:00 on 31 December there
    assert run(settings, datetime(2026, 12, 31, 11, 30, tzinfo=UTC))["awarded"] == 1  # 00:30 on 1 January 2027
    assert run(settings, datetime(2027, 1, 1, 10, tzinfo=UTC))["awarded"] == 0  # still 1 January there
    assert run(settings, datetime(2027, 12, 31, 11, 30, tzinfo=UTC))["awarded"] == 1  # 1 January 2028
    assert postings(settings, alice) == [
        ("birthday", "2027", 200), ("tier_birthday", "2027", 100),
        ("birthday", "2028", 200), ("tier_birthday", "2028", 100),
    ]  # fmt: skip


def test_days_the_job_missed_are_caught_up_once(client, settings, shop):
    """Run on the 1st, not on the 2nd to the 4th (the machine was down), run on the 5th: the 3rd is awarded once."""
    configure(settings, points=200)
    alice = member(client, settings, ALICE, spend="350.00")
    bob = member(client, settings, BOB)
    born(settings, alice, 3, 3)
    born(settings, bob, 3, 1)
    assert run(settings, datetime(2027, 3, 1, 9, tzinfo=UTC))["awarded"] == 1  # Bob
    report = run(settings, datetime(2027, 3, 5, 9, tzinfo=UTC))
    assert (report["awarded"], report["days"]) == (1, 4)  # the 2nd to the 5th
    assert run(settings, datetime(2027, 3, 5, 15, tzinfo=UTC))["awarded"] == 0
    assert run(settings, datetime(2027, 3, 6, 9, tzinfo=UTC))["awarded"] == 0
    assert postings(settings, alice) == [("birthday", "2027", 200), ("tier_birthday", "2027", 100)]
    assert postings(settings, bob) == [("birthday", "2027", 200)]
    with transaction(settings.database_url) as session:
        days = session.scalars(select(BirthdayRun.run_date).order_by(BirthdayRun.run_date)).all()
        assert [d.day for d in days] == [1, 5, 6]


def test_the_catch_up_looks_back_at_most_31_days_and_over_a_year_end(client, settings, shop):
    configure(settings, points=200)
    alice, bob = member(client, settings, ALICE), member(client, settings, BOB)
    born(settings, alice, 12, 31)  # missed on the last day of 2026, caught up in 2027 as 2026's
    born(settings, bob, 11, 20)  # more than 31 days before the next run: not caught up
    run(settings, datetime(2026, 11, 15, 9, tzinfo=UTC))
    report = run(settings, datetime(2027, 1, 2, 9, tzinfo=UTC))
    assert report["days"] == 31
    assert postings(settings, alice) == [("birthday", "2026", 200)]
    assert postings(settings, bob) == []


def test_a_missed_day_uses_the_tier_the_member_held_that_day(client, settings, shop):
    configure(settings, points=0)
    alice = member(client, settings, ALICE, spend="350.00")
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        reached = session.scalars(select(TierMove.occurred_at).where(TierMove.member_id == alice)).one()
        day = reached.astimezone(UTC).date()
        later = day + timedelta(days=3)
        assert birthdays.tiers_on(session, shop_row, [alice], day - timedelta(days=1), later) == {alice: None}
        assert birthdays.tiers_on(session, shop_row, [alice], day, later) == {alice: "gold"}
        assert birthdays.tiers_on(session, shop_row, [alice], later, later) == {alice: "gold"}
