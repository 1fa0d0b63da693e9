"""Tier corrections: re-settle a member's orders whose multiplier was worked out under a tier later facts changed.

The tier an order's multiplier uses is the tier the member held at the order's paid moment, from every fact known
now (decision 0032). When an earlier order, refund or cancellation arrives after a later order, the member's tier
at that later order's moment may change: its lot's tier share is remade and the difference posted, through the
same settle an order goes through. Runs as a member rule (services/member_rules.py), after the tier recompute.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from plugin.models import Order, Shop
from plugin.programme import tiers as tier_rules
from plugin.programme.rules.core import MemberTier
from plugin.services import accrual, tiers
from plugin.services.shops import zone

if TYPE_CHECKING:
    from plugin.services.member_facts import MemberFacts


def after_order_change(session: Session, shop: Shop, member_id: int) -> None:
    """The member rule: correct every order of this member whose stored tier differs from what the facts say."""
    correct(session, shop, member_id)


def correct(session: Session, shop: Shop, member_id: int, facts: MemberFacts | None = None) -> int:
    """Re-settle the member's orders paid under the current tier programme whose tier at their paid moment the
    facts now place elsewhere; returns how many were corrected (0 on a repeat: idempotent).

    `facts`: what the set-based drain read for all its batch's members at once (services/member_facts.py; the
    tiers recompute writes no order, so they still hold); else this member's facts are read here."""
    current = tiers.programme(shop)
    if current is None:
        return 0
    session.flush()  # the order rows this transaction changed, before they are read back
    if facts is None:
        stored = stored_tiers(session, shop.id, [member_id], current.version).get(member_id, {})
    else:
        stored = facts.stored_tiers.get(member_id, {})
    if not stored:
        return 0
    if facts is None:
        found, terms = tiers.facts_for(session, shop.id, [member_id])
        known = (found.get(member_id, []), terms.get(member_id, []))
    else:
        known = facts.tier_known(member_id)
    corrections = due(current, zone(shop), known, stored)
    for order_id, wanted, since in corrections:
        accrual.correct_tier(session, shop, order_id, wanted, since)
    return len(corrections)


def due(
    current: tier_rules.TierProgramme,
    shop_zone: ZoneInfo,
    known: tuple[list[tier_rules.OrderFact], list[tier_rules.PaidTerm]],
    stored: dict[int, tuple[Any, Any]],
    quals: list[tier_rules.Qualification] | None = None,
) -> list[tuple[int, MemberTier | None, Any]]:
    """The orders of `stored` whose tier the facts now place elsewhere, oldest first: (order id, tier, since).
    `quals`: the facts' qualifications (tier_rules.qualifications), when the caller has them already."""
    held = tier_rules.tiers_at_payments(
        current, known[0], known[1], shop_zone,
        [(order_id, paid_at) for order_id, (paid_at, _tier) in stored.items()], quals,
    )  # fmt: skip
    found = []
    tiers_of: dict[int, MemberTier | None] = {}  # per rank: as_member_tier's, built once for all of its orders
    # Oldest first: the points metric leaves the tier's share out, so no correction moves another order's tier.
    for order_id in sorted(stored, key=lambda o: (stored[o][0], o)):
        rank, since = held[order_id]
        if rank not in tiers_of:
            tiers_of[rank] = tiers.as_member_tier(current, rank)
        wanted = tiers_of[rank]
        if not _same(stored[order_id][1], wanted):
            found.append((order_id, wanted, since))
    return found


def stored_tiers(
    session: Session, shop_id: int, member_ids: list[int], version: int
) -> dict[int, dict[int, tuple[Any, Any]]]:
    """Per member, their paid orders whose tier was worked out under this tier programme: (paid at, stored tier).

    Orders paid under an earlier programme keep what they earned: a new programme never rewrites past orders."""
    rows = session.execute(
        select(Order.member_id, Order.order_id, Order.paid_at, *STORED_TIER_COLUMNS).where(
            Order.shop_id == shop_id,
            Order.member_id.in_(member_ids),
            Order.paid_at.is_not(None),
            Order.facts.is_not(None),
        )
    ).all()
    return stored_from(rows, version)


# What stored_from reads of an order beside its member, id and payment time (member_facts reads them with the rest).
STORED_TIER_COLUMNS = (
    Order.facts["tiers_version"].label("tiers_version"),
    Order.facts["member_tier"].label("member_tier"),
)


# The same as text, for a read of many orders on PostgreSQL (member_facts): psycopg decodes a JSONB column with a
# json.loads behind its own loader for every row, two an order; as text, only a kept order's tier is decoded, once.
STORED_TIER_TEXT_COLUMNS = (
    Order.facts["tiers_version"].as_string().label("tiers_version"),
    cast(Order.facts["member_tier"], Text).label("member_tier"),
)


def stored_from(rows, version: int, as_text: bool = False) -> dict[int, dict[int, tuple[Any, Any]]]:
    """stored_tiers' answer from rows of (member_id, order_id, paid_at, tiers_version, member_tier): of
    STORED_TIER_COLUMNS, or of STORED_TIER_TEXT_COLUMNS if `as_text`."""
    stored: dict[int, dict[int, tuple[Any, Any]]] = {}
    decoded: dict[str, Any] = {}  # a programme has a few tiers: each text decoded once (the values are only read)
    for row in rows:
        if row.tiers_version is not None and int(row.tiers_version) == version:
            tier = row.member_tier
            if as_text and tier is not None:
                if tier not in decoded:
                    decoded[tier] = json.loads(tier)
                tier = decoded[tier]
            stored.setdefault(row.member_id, {})[row.order_id] = (row.paid_at, tier)
    return stored


def _same(stored: dict[str, Any] | None, wanted: MemberTier | None) -> bool:
    """Whether the stored tier multiplies as the wanted one does (at 1, whichever tier: no share either way)."""
    have = Decimal(stored["multiplier"]) if stored else Decimal(1)
    want = wanted.multiplier if wanted else Decimal(1)
    if have != want:
        return False
    return have == 1 or stored["id"] == wanted.tier_id  # type: ignore[index,union-attr]
