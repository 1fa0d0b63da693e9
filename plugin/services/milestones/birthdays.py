"""Birthdays: the shopper gives theirs (changeable once a year) or a mapped metafield does; a daily job awards.

The award is a grant keyed by member and year (`birthday:2026`), so the job can run twice, or be resumed after a
crash, and still post once; a batch commits on its own, so a crash loses at most the batch it was in.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from plugin.db import insert_for, transaction
from plugin.models import BirthdayRun, Member, MemberBirthday, MilestoneHolding, Shop, TierMove, utcnow
from plugin.programme import birthdays, explanations
from plugin.services import shops, tiers
from plugin.services.errors import Invalid, ServiceError
from plugin.services.milestones import grants
from plugin.services.milestones import settings as programme

CHANGE_AFTER = timedelta(days=365)  # a shopper's birthday is changeable once a year
BATCH = 500
LOOK_BACK_DAYS = 31  # how far a run catches up the days the job missed
TIER_SOURCE = "tier_birthday"  # the tier's birthday reward: its own grant, posting source and report line


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


def award_batch(
    session, shop: Shop, now: datetime, after_member_id: int = 0, limit: int = BATCH, on: date | None = None
) -> tuple[int, int]:
    """Award the next `limit` members whose birthday is due on the shop-local day `on` (default today) and who
    are not yet done for that day's year: the shop's birthday bonus and their tier's birthday reward, two grants
    keyed by member and year. Returns (members given points, the last member id seen: 0 when the day is done)."""
    today = today_in(shop, now)
    on = on or today
    current = programme.current(session, shop.id)
    bonus = current["birthday"]
    tier_set = tiers.programme(shop)
    tier_rewards = {t.tier_id: t for t in tier_set.tiers if t.birthday_reward > 0} if tier_set else {}
    if bonus["points"] <= 0 and not tier_rewards:
        return 0, 0
    shop_source = grants.Source(
        "birthday", str(on.year), programme.rule_version(current["version"]), "Birthday bonus",
        explanations.detail("birthday_bonus", year=str(on.year)),
    )  # fmt: skip
    pending = []  # a member is due while one of the year's grants is undecided
    if bonus["points"] > 0:
        pending.append(~_holding(shop.id, shop_source.rule_key))
    if tier_rewards:
        pending.append(~_holding(shop.id, f"{TIER_SOURCE}:{on.year}"))
    candidates = select(MemberBirthday.member_id, MemberBirthday.month, MemberBirthday.day).where(
        MemberBirthday.shop_id == shop.id,
        MemberBirthday.month == on.month,
        MemberBirthday.member_id > after_member_id,
        or_(*pending),
    )
    if bonus["when"] == "day":
        days = [on.day] + ([29] if (on.month, on.day) == (2, 28) else [])
        candidates = candidates.where(MemberBirthday.day.in_(days))
    rows = session.execute(candidates.order_by(MemberBirthday.member_id).limit(limit)).all()
    due = [member_id for member_id, month, day in rows if birthdays.due(month, day, on, bonus["when"])]
    held = tiers_on(session, shop, due, on, today) if tier_rewards else {}
    awarded = 0
    for member_id in due:
        moved = 0
        if bonus["points"] > 0:
            moved += grants.bring_to(session, shop, member_id, shop_source, 1, bonus["points"])
        if tier_rewards:
            # Decided once a year: a member without a rewarded tier on the day gets an empty holding, so the
            # job does not look at them again this year.
            tier = tier_rewards.get(held.get(member_id))
            tier_source = grants.Source(
                TIER_SOURCE, str(on.year), f"tiers-{tier_set.version}",
                f"{tier.name} tier birthday reward" if tier else "Tier birthday reward",
                explanations.detail("tier_birthday_reward", name=tier.name, year=str(on.year)) if tier else None,
            )  # fmt: skip
            moved += grants.bring_to(session, shop, member_id, tier_source, 1, tier.birthday_reward if tier else 0)
        awarded += 1 if moved else 0
    return awarded, (rows[-1].member_id if len(rows) == limit else 0)


def _holding(shop_id: int, rule_key: str):
    return (
        select(MilestoneHolding.member_id)
        .where(
            and_(
                MilestoneHolding.shop_id == shop_id,
                MilestoneHolding.member_id == MemberBirthday.member_id,
                MilestoneHolding.rule_key == rule_key,
            )
        )
        .exists()
    )


def tiers_on(session, shop: Shop, member_ids: list[int], on: date, today: date) -> dict[int, str | None]:
    """The tier each member held on the shop-local day `on`: today their tier now; an earlier (missed) day's
    from `tier_moves`, the last move before that day ended (or the tier before their first move after it)."""
    if not member_ids:
        return {}
    now_held = dict(
        session.execute(
            select(Member.id, Member.tier).where(Member.shop_id == shop.id, Member.id.in_(member_ids))
        ).all()
    )
    if on >= today:
        return now_held
    day_ends = datetime.combine(on + timedelta(days=1), time(0), tzinfo=_zone(shop))
    moves = session.execute(
        select(TierMove.member_id, TierMove.from_tier, TierMove.to_tier, TierMove.occurred_at)
        .where(TierMove.shop_id == shop.id, TierMove.member_id.in_(member_ids))
        .order_by(TierMove.member_id, TierMove.seq)
    ).all()
    held: dict[int, str | None] = {}
    for member_id, from_tier, to_tier, occurred_at in moves:
        if occurred_at < day_ends:
            held[member_id] = to_tier
        else:
            held.setdefault(member_id, from_tier)
    return {member_id: held.get(member_id, tier) for member_id, tier in now_held.items()}


def _zone(shop: Shop):
    return shops.zone(shop)


def awarded_in(session, shop_id: int, member_id: int, year: int) -> bool:
    holding = session.get(MilestoneHolding, (shop_id, member_id, f"birthday:{year}"))
    return holding is not None and bool(holding.grants)


def today_in(shop: Shop, now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(_zone(shop)).date()


def days_to_award(session, shop: Shop, now: datetime) -> list[date]:
    """The shop-local days this run covers: each day since the last finished run (at most LOOK_BACK_DAYS, today
    included), so a day the job did not run is caught up; a shop's first run covers today only."""
    today = today_in(shop, now)
    last = session.scalar(
        select(func.max(BirthdayRun.run_date)).where(BirthdayRun.shop_id == shop.id, BirthdayRun.run_date <= today)
    )
    first = today if last is None else max(last + timedelta(days=1), today - timedelta(days=LOOK_BACK_DAYS - 1))
    days = [first + timedelta(days=n) for n in range((today - first).days + 1)] or [today]
    if programme.current(session, shop.id)["birthday"]["when"] == "month":
        latest = {(d.year, d.month): d for d in days}  # one pass per month: the whole month is due on any day of it
        days = sorted(latest.values())
    return days


def award_all(database_url: str, now: datetime | None = None, batch: int = BATCH) -> dict[str, int]:
    """The daily job's body: every active shop with members' birthdays, one committed batch at a time.

    Run as often as wanted (the sweeper queues it at most hourly, so each shop's day is seen in its own time
    zone): a member already awarded this year is skipped by the query, and a grant is keyed by member and year.
    Each shop's finished day is recorded (`birthday_runs`), and the next run starts the day after the last
    finished one, so days the job missed (a machine down, a crash mid-run) are awarded late rather than never.
    """
    now = now or utcnow()
    with transaction(database_url) as session:
        shop_ids = session.scalars(
            select(Shop.id)
            .where(
                Shop.active.is_(True),
                select(MemberBirthday.member_id).where(MemberBirthday.shop_id == Shop.id).exists(),
            )
            .order_by(Shop.id)
        ).all()
    report = {"shops": 0, "awarded": 0, "days": 0}
    for shop_id in shop_ids:
        report["shops"] += 1
        with transaction(database_url) as session:
            shop = session.get(Shop, shop_id)
            days, today = days_to_award(session, shop, now), today_in(shop, now)
        shop_awarded = 0
        for day in days:
            report["days"] += 1
            after = 0
            while True:
                with transaction(database_url) as session:  # one batch per transaction: a crash loses one batch
                    awarded, after = award_batch(session, session.get(Shop, shop_id), now, after, batch, on=day)
                shop_awarded += awarded
                if not after:
                    break
        with transaction(database_url) as session:
            _finished(session, shop_id, today, now, shop_awarded)
        report["awarded"] += shop_awarded
    return report


def _finished(session, shop_id: int, day: date, now: datetime, awarded: int) -> None:
    """Record the shop's day as done (a second run the same day adds its awards to the row)."""
    insert = insert_for(session)(BirthdayRun).values(shop_id=shop_id, run_date=day, completed_at=now, awarded=awarded)
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["shop_id", "run_date"],
            set_={"completed_at": now, "awarded": BirthdayRun.awarded + awarded},
        )
    )
