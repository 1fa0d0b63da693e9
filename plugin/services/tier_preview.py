"""Who moves: a proposed tier programme replayed over the shop's real order history before it is saved.

Reads every member's order facts once (a stream ordered by member), computes each member's tier under the
proposal at one instant, and compares it with the tier the member holds now. Saves nothing.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import Member, Order, Refund, Shop, TierPurchase, utcnow
from plugin.programme import tiers as tier_rules
from plugin.services import tier_sets, tiers
from plugin.services.shops import zone

DEFAULT_SECONDS = 60.0


def preview(
    session: Session, shop: Shop, proposed: Any, *, now: datetime | None = None, seconds: float = DEFAULT_SECONDS
) -> dict[str, Any]:
    """Members up, down and unchanged per tier if `proposed` were applied now; raises Invalid on bad input."""
    clean = tier_sets.validate(session, shop.id, proposed)
    candidate = tier_rules.TierProgramme.from_json(clean, shop.tiers_version + 1)
    current = tiers.programme(shop)
    now = now or utcnow()
    deadline = time.monotonic() + seconds
    shop_zone = zone(shop)
    held = dict(session.execute(select(Member.id, Member.tier).where(Member.shop_id == shop.id)).all())
    refunds = _refunds_by_order(session, shop.id)
    terms = _terms(session, shop.id, candidate, refunds)
    after: dict[int, str | None] = {}
    complete = True
    rows = session.execute(
        select(Order.member_id, Order.order_id, Order.name, Order.paid_at, Order.lot, Order.cancelled_at)
        .where(
            Order.shop_id == shop.id, Order.member_id.is_not(None), Order.paid_at.is_not(None), Order.lot.is_not(None)
        )
        .order_by(Order.member_id)
        .execution_options(yield_per=5000)
    )
    member: int | None = None
    facts: list[tier_rules.OrderFact] = []
    for count, (member_id, order_id, name, paid_at, lot, cancelled_at) in enumerate(rows):
        if count % 4096 == 0 and time.monotonic() > deadline:
            complete = False
            rows.close()
            break
        if member_id != member:
            if member is not None:
                after[member] = tier_rules.status(candidate, facts, now, shop_zone, terms.get(member, [])).tier_id
            member, facts = member_id, []
        facts.append(tiers.order_fact(order_id, name, paid_at, lot, cancelled_at, refunds.get(order_id)))
    if complete and member is not None:
        after[member] = tier_rules.status(candidate, facts, now, shop_zone, terms.get(member, [])).tier_id
    if complete:
        for member_id in terms.keys() - after.keys():  # bought the paid tier, no order counted
            after[member_id] = tier_rules.status(candidate, [], now, shop_zone, terms[member_id]).tier_id
    return _summary(current, candidate, held, after, complete)


def _refunds_by_order(session: Session, shop_id: int):
    out: dict[int, list] = defaultdict(list)
    rows = session.execute(select(Refund.order_id, Refund.refund_id, Refund.facts).where(Refund.shop_id == shop_id))
    for order_id, refund_id, facts in rows:
        out[order_id].append(tiers.refund_from_json(order_id, refund_id, facts))
    return out


def _terms(session: Session, shop_id: int, candidate: tier_rules.TierProgramme, refunds) -> dict[int, list]:
    if candidate.paid is None:
        return {}
    bought = list(session.scalars(select(TierPurchase).where(TierPurchase.shop_id == shop_id)))
    if not bought:
        return {}
    cancelled = dict(
        session.execute(
            select(Order.order_id, Order.cancelled_at).where(
                Order.shop_id == shop_id, Order.order_id.in_([p.order_id for p in bought])
            )
        ).all()
    )
    return tiers.paid_terms(bought, cancelled, refunds)


def _summary(
    current: tier_rules.TierProgramme | None,
    candidate: tier_rules.TierProgramme,
    held: dict[int, str | None],
    after: dict[int, str | None],
    complete: bool,
) -> dict[str, Any]:
    def rank(programme: tier_rules.TierProgramme | None, tier_id: str | None) -> int:
        return programme.rank(tier_id) if programme else 0

    rows: dict[str | None, Counter] = defaultdict(Counter)
    moves: Counter = Counter()
    for member_id, before in held.items():
        new = after.get(member_id) if complete else after.get(member_id, before)
        if new == before or rank(current, before) == rank(candidate, new):
            direction = "unchanged"
        else:
            direction = "up" if rank(candidate, new) > rank(current, before) else "down"
        rows[before][direction] += 1
        rows[new]["after"] += 1
        rows[before]["now"] += 1
        if new != before:
            moves[(before, new)] += 1
    names = {t.tier_id: t.name for t in (current.tiers if current else ())} | {
        t.tier_id: t.name for t in candidate.tiers
    }
    order = [None] + [t.tier_id for t in candidate.tiers]
    order += [tier_id for tier_id in rows if tier_id not in order]
    return {
        "complete": complete,
        "members": len(held),
        "members_computed": len(after),
        "tiers": [
            {
                "id": tier_id,
                "name": names.get(tier_id, "no tier") if tier_id else "no tier",
                "now": rows[tier_id]["now"],
                "after": rows[tier_id]["after"],
                "up": rows[tier_id]["up"],
                "down": rows[tier_id]["down"],
                "unchanged": rows[tier_id]["unchanged"],
            }
            for tier_id in order
        ],
        "moves": [
            {"from": before, "to": new, "members": n}
            for (before, new), n in sorted(moves.items(), key=lambda item: -item[1])
        ],
    }
