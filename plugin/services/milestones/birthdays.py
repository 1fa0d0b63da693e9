"""Birthdays: the shopper gives theirs (changeable once a year) or a mapped metafield does; a daily job awards.

The award is a grant keyed by member and year (`birthday:2026`), so the job can run twice, or be resumed after a
crash, and still post once; a batch commits on its own, so a crash loses at most the batch it was in.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, select

from plugin.db import transaction
from plugin.models import MemberBirthday, MilestoneHolding, MilestoneSettings, Shop, utcnow
from plugin.programme import birthdays
from plugin.services import shops
from plugin.services.errors import Invalid, ServiceError
from plugin.services.milestones import grants
from plugin.services.milestones import settings as programme

CHANGE_AFTER = timedelta(days=365)  # a shopper's birthday is changeable once a year
BATCH = 500


class BirthdayLocked(ServiceError):
    """The shopper changed their birthday less than a year ago."""

    code, status = "birthday_locked", 409


def of(session, shop_id: int, member_id: int) -> MemberBirthday | None:
    return session.get(MemberBirthday, (shop_id, member_id))


def describe(row: MemberBirthday | None, now: datetime | None = None) -> dict[str, Any] | None:
    if row is None:
        return None
    changeable_from = row.changed_at + CHANGE_AFTER if row.source == "widget" else None
    now = now or utcnow()
    return {
        "month": row.month,
        "day": row.day,
        "source": row.source,
        "changeable": changeable_from is None or changeable_from <= now,
        "changeable_from": changeable_from.isoformat() if changeable_from and changeable_from > now else None,
    }


def give(session, shop_id: int, member_id: int, month: Any, day: Any, source: str, now: datetime | None = None):
    """Set a member's birthday; refuses a date that is not one (400) and a shopper's second change in a year (409)."""
    found = birthdays.problems(month, day)
    if found:
        raise Invalid("that is not a birthday", found)
    now = now or utcnow()
    row = session.execute(
        select(MemberBirthday)
        .where(MemberBirthday.shop_id == shop_id, MemberBirthday.member_id == member_id)
        .with_for_update()
    ).scalar_one_or_none()
    if row is not None and (row.month, row.day) == (month, day):
        return row  # the same birthday again: nothing changes, and the yearly change is not used up
    if row is not None and source == "widget" and row.source == "widget" and row.changed_at + CHANGE_AFTER > now:
        raise BirthdayLocked(
            f"a birthday can be changed once a year: next from {(row.changed_at + CHANGE_AFTER).date().isoformat()}",
            {"month": ["changeable once a year"], "day": ["changeable once a year"]},
        )
    if row is None:
        row = MemberBirthday(shop_id=shop_id, member_id=member_id, month=month, day=day, source=source, changed_at=now)
        session.add(row)
    else:
        row.month, row.day, row.source, row.changed_at = month, day, source, now
    session.flush()
    return row


def from_metafields(session, shop: Shop, member_id: int, metafields: tuple[tuple[str, str], ...]) -> None:
    """Take the birthday from the customer metafield the merchant mapped, when the payload carries a valid one."""
    mapped = programme.current(session, shop.id)["birthday"].get("metafield")
    if not mapped:
        return
    for name, value in metafields:
        if name == mapped and (parsed := birthdays.parse(value)):
            give(session, shop.id, member_id, parsed[0], parsed[1], "metafield")
            return


def award_batch(session, shop: Shop, now: datetime, after_member_id: int = 0, limit: int = BATCH) -> tuple[int, int]:
    """Award the birthday bonus to the next `limit` members due today in the shop's time zone and not yet awarded
    this year; returns (members awarded, the last member id seen: 0 when the shop is done)."""
    current = programme.current(session, shop.id)
    bonus = current["birthday"]
    if bonus["points"] <= 0:
        return 0, 0
    today = now.astimezone(_zone(shop)).date()
    rule_key = f"birthday:{today.year}"
    candidates = select(MemberBirthday.member_id, MemberBirthday.month, MemberBirthday.day).where(
        MemberBirthday.shop_id == shop.id,
        MemberBirthday.month == today.month,
        MemberBirthday.member_id > after_member_id,
    )
    if bonus["when"] == "day":
        days = [today.day] + ([29] if (today.month, today.day) == (2, 28) else [])
        candidates = candidates.where(MemberBirthday.day.in_(days))
    already = (
        select(MilestoneHolding.member_id)
        .where(
            and_(
                MilestoneHolding.shop_id == shop.id,
                MilestoneHolding.member_id == MemberBirthday.member_id,
                MilestoneHolding.rule_key == rule_key,
            )
        )
        .exists()
    )
    rows = session.execute(candidates.where(~already).order_by(MemberBirthday.member_id).limit(limit)).all()
    source = grants.Source("birthday", str(today.year), programme.rule_version(current["version"]), "Birthday bonus")
    awarded = 0
    for member_id, month, day in rows:
        if birthdays.due(month, day, today, bonus["when"]):
            awarded += 1 if grants.bring_to(session, shop, member_id, source, 1, bonus["points"]) else 0
    return awarded, (rows[-1].member_id if len(rows) == limit else 0)


def _zone(shop: Shop):
    return shops.zone(shop)


def awarded_in(session, shop_id: int, member_id: int, year: int) -> bool:
    holding = session.get(MilestoneHolding, (shop_id, member_id, f"birthday:{year}"))
    return holding is not None and bool(holding.grants)


def today_in(shop: Shop, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(_zone(shop)).date()


def award_all(database_url: str, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """The daily job's body: every active shop with a birthday bonus, one committed batch at a time.

    Run as often as wanted (the sweeper queues it at most hourly, so each shop's day is seen in its own time
    zone): a member already awarded this year is skipped by the query, and a grant is keyed by member and year.
    """
    now = now or utcnow()
    with transaction(database_url) as session:
        shop_ids = session.scalars(
            select(MilestoneSettings.shop_id)
            .join(Shop, Shop.id == MilestoneSettings.shop_id)
            .where(Shop.active.is_(True))
            .order_by(MilestoneSettings.shop_id)
        ).all()
    report = {"shops": 0, "awarded": 0}
    for shop_id in shop_ids:
        after = 0
        report["shops"] += 1
        while True:
            with transaction(database_url) as session:  # one batch per transaction: a crash loses one batch
                awarded, after = award_batch(session, session.get(Shop, shop_id), now, after, batch)
            report["awarded"] += awarded
            if not after:
                break
    return report
