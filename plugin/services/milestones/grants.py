"""Bring one member-level rule's grants to the count its facts say, posting only the difference under a lock.

Each grant remembers its points, so a take-back removes the newest grants at what they were worth, whatever
the rule says today. A take-back the member's balance cannot cover follows the shop's spent-points policy, as
an order's reversal does (services/accrual.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from plugin import ledger
from plugin.db import insert_for
from plugin.models import Member, MilestoneHolding, Shop, utcnow
from plugin.programme import explanations
from plugin.programme import reward_grants as programme_grants
from plugin.programme.rewards import catalogue
from plugin.programme.settings import program_settings
from plugin.services import outbox, reward_grants

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """The rule a grant comes from, as its postings name it (reports split issued points by `source_type`)."""

    source_type: str  # threshold, punch_card, signup, birthday
    source_id: str  # the rule's id ("big-spender"), or the birthday's year
    version: str  # the milestone programme's version: "milestones-1+v3"
    label: str  # for people: "Spend 500.00 (lifetime)"
    # A grant's explanation as data (explanations.py), rendered in the shop's language; None: the label, in English.
    details: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def rule_key(self) -> str:
        return f"{self.source_type}:{self.source_id}"


def lock(session, shop_id: int, member_id: int, rule_key: str) -> MilestoneHolding:
    """Create the holding if new and lock it, in one statement (as accrual locks an order)."""
    insert = insert_for(session)(MilestoneHolding).values(
        shop_id=shop_id, member_id=member_id, rule_key=rule_key, grants=[], points_held=0, unpaid=0, sequence=0,
        updated_at=utcnow(),
    )  # fmt: skip
    upsert = insert.on_conflict_do_update(
        index_elements=["shop_id", "member_id", "rule_key"], set_={"updated_at": utcnow()}
    ).returning(MilestoneHolding)
    return session.scalars(upsert, execution_options={"populate_existing": True}).one()


def bring_to(
    session, shop: Shop, member_id: int, source: Source, count: int, points_each: int, reward_id: str | None = None
) -> int:
    """Hold exactly `count` grants of this rule (new ones worth `points_each`, and issuing the catalogue reward
    `reward_id` when it names one); returns the balance's move."""
    holding = lock(session, shop.id, member_id, source.rule_key)
    held = list(holding.grants)
    if count == len(held):
        return 0
    if points_each <= 0 and not reward_id and count > len(held):
        return 0  # the rule grants nothing now: nothing to hold, and no empty grant to remember
    grants = held[:count] if count < len(held) else held + [max(points_each, 0)] * (count - len(held))
    moved = 0
    if sum(grants) != sum(held):  # a reward-only grant moves no points
        moved = _post_difference(session, shop, holding, source, sum(grants), len(grants))
    holding.grants = grants
    _bring_rewards(session, shop, holding, source, len(held), count, reward_id)
    return moved


def _bring_rewards(
    session, shop: Shop, holding: MilestoneHolding, source: Source, before: int, count: int, reward_id: str | None
) -> None:
    """Issue the reward of each new grant; ask for the take-back of each reward whose grant is no longer held."""
    held = [list(pair) for pair in holding.rewards or ()]
    for number, redemption_id in held:
        if number > count:
            why = f"{source.label}: grant {number} is no longer earned"
            reward_grants.request_revoke(session, shop.id, redemption_id, why)
    kept = [pair for pair in held if pair[0] <= count]
    reward = programme_grants.find(catalogue(shop.settings), reward_id)
    if reward_id and reward is None:
        log.warning("shop %s: %s names reward %r, no longer in the catalogue", shop.id, source.rule_key, reward_id)
    for number in range(before + 1, count + 1) if reward is not None else ():
        # A crossing earned again after its reward was taken back gets a new reward (the grant's next key).
        issued = reward_grants.issue(
            session, shop, holding.member_id, reward, source.source_type, source.source_id, number, source.version,
            f"{source.label}: grant {number}",
        )  # fmt: skip
        kept.append([number, issued.id])
    holding.rewards = kept


def _post_difference(session, shop: Shop, holding: MilestoneHolding, source: Source, target: int, count: int) -> int:
    delta = target - holding.points_held
    if delta == 0:
        holding.unpaid = 0  # a new grant worth exactly what was owed: the debt is paid by not posting it
        return 0
    key = f"{source.rule_key}:{holding.member_id}:{holding.sequence}"
    holding.sequence += 1
    if delta > 0:
        if source.details:
            _post(session, shop, holding, source, "bonus", delta, key, explanations.render(source.details),
                  source.details)  # fmt: skip
        else:
            _post(session, shop, holding, source, "bonus", delta, key, f"{source.label}: grant {count}")
        holding.points_held, holding.unpaid = target, 0
        outbox.record(
            session, shop.id, "points.earned", dedupe_key=f"points.earned:{shop.id}:{key}", member_id=holding.member_id,
            data={"points": delta, "source_type": source.source_type, "source_id": source.source_id},
        )  # fmt: skip
        return delta
    policy = program_settings(shop.settings, shop.settings_version).spent_points_policy
    note = f"{source.label}: taken back to {count} grant(s)"
    payable = max(_locked_balance(session, shop.id, holding.member_id), 0)
    shortfall = max(-delta - payable, 0) if policy != "allow_negative" else 0
    moved = delta
    if shortfall and policy == "claw_back":
        # Owed, not moved: netted against this rule's next grant (the holding keeps the points it could not take).
        moved = delta + shortfall
        note += f"; claw_back: {shortfall} points already spent, owed"
        if moved:
            _post(session, shop, holding, source, "reverse", moved, key, note)
        holding.points_held += moved
        holding.unpaid = holding.points_held - target
    else:
        if shortfall:  # stop_at_zero: the shop forgives what was spent, first, so the balance never dips
            _post(session, shop, holding, source, "forgive", shortfall, f"{key}:forgive",
                  f"{source.label}: stop_at_zero forgives {shortfall} points already spent")  # fmt: skip
            note += f"; stop_at_zero: {shortfall} points already spent, forgiven"
        _post(session, shop, holding, source, "reverse", delta, key, note)
        holding.points_held, holding.unpaid = target, 0
        moved = delta + shortfall
    if moved:
        outbox.record(
            session, shop.id, "points.reversed", dedupe_key=f"points.reversed:{shop.id}:{key}",
            member_id=holding.member_id,
            data={"points": moved, "source_type": source.source_type, "source_id": source.source_id},
        )  # fmt: skip
    return moved


def _post(
    session, shop: Shop, holding: MilestoneHolding, source: Source, kind: str, points: int, key: str, note: str,
    details: dict[str, Any] | None = None,
):  # fmt: skip
    ledger.post(
        session,
        shop.id,
        ledger.Entry(
            member_id=holding.member_id,
            kind=kind,
            points=points,
            source_type=source.source_type,
            source_id=source.source_id,
            idempotency_key=f"milestone:{key}",
            rule_version=source.version,
            note=note,
            details=details,
        ),
    )


def _locked_balance(session, shop_id: int, member_id: int) -> int:
    return session.execute(
        select(Member.balance).where(Member.shop_id == shop_id, Member.id == member_id).with_for_update()
    ).scalar_one()
