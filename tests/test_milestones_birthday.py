"""Birthday bonus: valid dates, the once-a-year change, a metafield mapping, and the daily job over a year boundary."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, MemberBirthday, Posting
from plugin.programme import birthdays as rules
from plugin.services import shops
from plugin.services.errors import Invalid
from plugin.services.milestones import birthdays
from plugin.services.milestones import settings as milestone_settings
from tests.conftest import SHOP, deliver

ALICE = 7001


def configure(settings, zone: str = "UTC", **birthday) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        shop.time_zone = zone
        milestone_settings.save(session, shop, {"birthday": {"points": 200, **birthday}}, "test")


def member(client, settings, customer_id: int = ALICE) -> int:
    deliver(client, "customers/create", {"id": customer_id, "email": f"c{customer_id}@example.com"})
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.id).where(Member.customer_id == customer_id)).scalar_one()


def give(settings, member_id: int, month: int, day: int, source: str = "widget", now: datetime | None = None):
    with transaction(settings.database_url) as session:
        return birthdays.describe(birthdays.give(session, 1, member_id, month, day, source, now), now)


def birthday_postings(settings) -> list[tuple[str, int]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(Posting.source_id, Posting.points).where(Posting.source_type == "birthday").order_by(Posting.id)
        )
        return [tuple(r) for r in rows]


def test_a_birthday_is_a_real_month_and_day_and_29_february_is_one():
    assert rules.problems(2, 31) == {"day": ["February has 29 days"]}
    assert rules.problems(4, 31) == {"day": ["April has 30 days"]}
    assert rules.problems(13, 1) == {"month": ["a month from 1 to 12"]}
    assert rules.problems(2, 29) == {}
    assert rules.falls_on(2, 29, date(2027, 2, 28)) and rules.falls_on(2, 29, date(2028, 2, 29))
    assert not rules.falls_on(2, 29, date(2028, 2, 28))
    assert rules.parse("1990-07-14") == (7, 14) and rules.parse("07-14") == (7, 14) and rules.parse("02-31") is None


def test_31_february_is_refused_per_field(client, settings, shop):
    member_id = member(client, settings)
    with pytest.raises(Invalid) as refused:
        give(settings, member_id, 2, 31)
    assert refused.value.status == 400 and refused.value.fields == {"day": ["February has 29 days"]}


def test_a_shopper_can_change_their_birthday_once_a_year(client, settings, shop):
    member_id = member(client, settings)
    first = datetime(2026, 3, 1, tzinfo=UTC)
    give(settings, member_id, 5, 10, now=first)
    assert give(settings, member_id, 5, 10, now=first)["month"] == 5  # the same date again is no change
    with pytest.raises(birthdays.BirthdayLocked) as locked:
        give(settings, member_id, 6, 10, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert locked.value.status == 409 and "2027-03-01" in str(locked.value)
    assert give(settings, member_id, 6, 10, now=datetime(2027, 3, 2, tzinfo=UTC))["month"] == 6
    assert give(settings, member_id, 7, 1, source="admin")["month"] == 7  # support may always correct it


def test_a_mapped_customer_metafield_gives_the_birthday(client, settings, shop):
    configure(settings, metafield="facts.birth_date")
    payload = {"id": ALICE, "metafields": [{"namespace": "facts", "key": "birth_date", "value": "1990-12-31"}]}
    deliver(client, "customers/update", payload)
    with transaction(settings.database_url) as session:
        row = session.execute(select(MemberBirthday)).scalar_one()
        assert (row.month, row.day, row.source) == (12, 31, "metafield")


def test_the_daily_job_awards_once_a_year_across_the_shops_year_boundary(app, client, settings, shop):
    """A 1 January birthday in Auckland: due when UTC is still 31 December, and once in 2027 however often run."""
    configure(settings, zone="Pacific/Auckland")
    member_id = member(client, settings)
    give(settings, member_id, 1, 1)
    runner = app.test_cli_runner()

    def run(at: str) -> dict:
        result = runner.invoke(args=["loyalty", "milestones", "birthdays", "--at", at])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert run("2026-12-31T10:00:00+00:00")["awarded"] == 0  # 23:00 on 31 December in Auckland
    assert run("2026-12-31T11:30:00+00:00")["awarded"] == 1  # 00:30 on 1 January 2027 there
    assert run("2026-12-31T20:00:00+00:00")["awarded"] == 0  # the same day again: nothing
    assert run("2027-01-01T10:00:00+00:00")["awarded"] == 0  # still 1 January there (23:00)
    assert run("2027-12-31T11:30:00+00:00")["awarded"] == 1  # 1 January 2028
    assert birthday_postings(settings) == [("2027", 200), ("2028", 200)]


def test_a_month_bonus_is_given_once_on_any_day_of_the_birthday_month(client, settings, shop):
    configure(settings, when="month")
    member_id = member(client, settings)
    give(settings, member_id, 3, 20)
    for day in (1, 2, 20, 31):
        birthdays.award_all(settings.database_url, datetime(2026, 3, day, 12, tzinfo=UTC))
    assert birthday_postings(settings) == [("2026", 200)]


def test_a_crashed_run_resumes_without_doubling(client, settings, shop):
    configure(settings)
    members = [member(client, settings, 9000 + i) for i in range(5)]
    for member_id in members:
        give(settings, member_id, 8, 1)
    now = datetime(2026, 8, 1, 9, tzinfo=UTC)
    with transaction(settings.database_url) as session:  # the first batch commits, then the job dies
        awarded, after = birthdays.award_batch(session, shops.get(session, SHOP), now, 0, limit=2)
    assert (awarded, after) == (2, members[1])
    report = birthdays.award_all(settings.database_url, now, batch=2)  # run again from the start
    assert report["awarded"] == 3
    assert len(birthday_postings(settings)) == 5
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_no_bonus_configured_awards_nothing(client, settings, shop):
    member_id = member(client, settings)
    give(settings, member_id, 8, 1)
    assert birthdays.award_all(settings.database_url, datetime(2026, 8, 1, 9, tzinfo=UTC))["awarded"] == 0
