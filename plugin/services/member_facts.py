"""What the member rules read about a batch's members, read once for all of them, under their locks."""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Boolean, exists, literal_column, select, text, true
from sqlalchemy.orm import Session

from plugin.db import among, unprepared
from plugin.models import Member, MilestoneHolding, Order, Refund, Shop
from plugin.programme import milestones
from plugin.programme import tiers as tier_rules
from plugin.services import lot_reads, shops, tier_corrections, tiers
from plugin.services.milestones import rules as milestone_rules


@dataclass(frozen=True)
class MemberRow:
    """The member's own fields the rules read: who they are, their tier and dates, when they enrolled."""

    customer_id: int
    tier: str | None
    tier_until: datetime | None
    tier_paid_until: datetime | None
    enrolled_at: datetime


@dataclass(frozen=True)
class Holding:
    """A milestone holding as stored: the grants it holds and what bring_to reads to post the next difference."""

    grants: list[int]
    points_held: int
    unpaid: int
    sequence: int
    rewards: list[list[int]]


# A member's tier facts: every paid order as tiers see it, and the paid tier's terms (tiers.facts_for's, per member).
TierKnown = tuple[list[tier_rules.OrderFact], list[tier_rules.PaidTerm]]


@dataclass(frozen=True)
class MemberFacts:
    """Per member id: what tiers.recompute, tier_corrections.correct and milestones.rules.recompute would each
    read for that member. Valid while the member's rows are as read: each rule changes only its own member's rows
    (and a tier correction remakes an order's lot, after which the milestone history is read again)."""

    members: dict[int, MemberRow]
    tier_facts: dict[int, list[tier_rules.OrderFact]]
    paid_terms: dict[int, list[tier_rules.PaidTerm]]
    entry_rewards: dict[int, dict[str, tuple[int, int]]]  # tiers.held_rewards
    stored_tiers: dict[int, dict[int, tuple[Any, Any]]]  # tier_corrections.stored_tiers
    histories: dict[int, list[milestones.OrderSpend]] | None  # None: the shop has no milestone programme
    holdings: dict[int, dict[str, Holding]]

    def tier_known(self, member_id: int) -> TierKnown:
        return self.tier_facts.get(member_id, []), self.paid_terms.get(member_id, [])

    def milestones_known(self, member_id: int) -> tuple[list[milestones.OrderSpend], dict[str, int]]:
        """The member's order history and grants held per rule key, as milestones.rules reads them."""
        held = {key: len(holding.grants) for key, holding in self.holdings.get(member_id, {}).items()}
        return (self.histories or {}).get(member_id, []), held


# On PostgreSQL the batch's members and their holdings are probed one member at a time, by key (decision 0061): as
# IN lists, on tables never analysed (a fresh shop, before autovacuum's first pass) the planner read them by shop_id
# alone, every member and every holding of the shop, in every round of every drained batch. With equality on both key
# columns of a LATERAL per member there is no prefix scan to prefer, statistics or not.
_MEMBER_COLUMNS = ("id", "customer_id", "tier", "tier_until", "tier_paid_until", "enrolled_at")
_MEMBERS_LOCKED = text(
    f"SELECT {', '.join(f'm.{c}' for c in _MEMBER_COLUMNS)} FROM unnest(CAST(:member_ids AS BIGINT[])) AS k (id)"
    " CROSS JOIN LATERAL (SELECT * FROM members WHERE shop_id = :shop_id AND id = k.id FOR UPDATE) AS m"
).columns(*(Member.__table__.c[c] for c in _MEMBER_COLUMNS))  # the ids sorted: locked in id order, as before
_HOLDING_COLUMNS = ("member_id", "rule_key", "grants", "points_held", "unpaid", "sequence", "rewards")
_HOLDINGS = text(
    f"SELECT {', '.join(f'h.{c}' for c in _HOLDING_COLUMNS)} FROM unnest(CAST(:member_ids AS BIGINT[])) AS k (id)"
    " CROSS JOIN LATERAL (SELECT * FROM milestone_holdings WHERE shop_id = :shop_id AND member_id = k.id OFFSET 0) AS h"
).columns(*(MilestoneHolding.__table__.c[c] for c in _HOLDING_COLUMNS))


# Whether a past order has a refund, read with it: refunds are rare, and a separate read of every past order's
# refunds cost a statement a round (about 0.7 ms of the drain's Python, 15 us an order) that nearly always found none.
# On PostgreSQL a LATERAL probe of the refunds' (shop_id, order_id) index a row: as an EXISTS the planner may hash
# the whole refunds table, every shop's, once a statement, which costs more the more refunds all shops have.
_REFUNDED = (
    exists()
    .where(Refund.shop_id == Order.shop_id, Refund.order_id == Order.order_id)
    .correlate(Order.__table__)
    .label("refunded")
)
_REFUND_ONCE = text(
    "LATERAL (SELECT true AS found FROM refunds"
    " WHERE refunds.shop_id = orders.shop_id AND refunds.order_id = orders.order_id LIMIT 1) AS refund_once"
)
_REFUNDED_ONCE = literal_column("refund_once.found IS NOT NULL", Boolean).label("refunded")


def read(session: Session, shop: Shop, member_ids: list[int], with_milestones: bool) -> MemberFacts:
    """Lock the members (in id order) and read their facts. The locks are what let milestones.rules.recompute,
    given these facts, skip its own: they are held until the transaction ends. The caller flushes first."""
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_MEMBERS_LOCKED, {"member_ids": sorted(set(member_ids)), "shop_id": shop.id}).all()
    else:
        rows = session.execute(
            select(*(getattr(Member, c) for c in _MEMBER_COLUMNS))
            .where(Member.shop_id == shop.id, Member.id.in_(member_ids))
            .order_by(Member.id)
            .with_for_update()
        ).all()
    members = {row[0]: MemberRow(*row[1:]) for row in rows}
    current = tiers.programme(shop)
    facts, terms, held_rewards, stored = {}, {}, {}, {}
    histories, holdings = None, {}
    if current is None and not with_milestones:
        return MemberFacts(members, facts, terms, held_rewards, stored, histories, holdings)
    # The members' paid orders, read once for tiers, tier corrections and milestones alike (three reads before):
    # each lot is fetched and decoded once. The members as one array: a round of 50 members and the shop made 51
    # parameters, past what psycopg's cache of converted statements keeps, so each read was parsed anew.
    # Planned for each round's own members (db.unprepared): a plan kept from a small orders table filters the whole
    # shop through the primary key once the table has grown.
    as_text = session.get_bind().dialect.name == "postgresql"
    stored_columns = tier_corrections.STORED_TIER_TEXT_COLUMNS if as_text else tier_corrections.STORED_TIER_COLUMNS
    orders_from, refunded = lot_reads.orders_from(session), _REFUNDED
    if as_text:  # PostgreSQL
        orders_from, refunded = orders_from.outerjoin(_REFUND_ONCE, true()), _REFUNDED_ONCE
    with unprepared(session):
        result = session.execute(
            select(*tiers.ORDER_FACT_COLUMNS, *lot_reads.columns(session), *stored_columns, refunded)
            .select_from(orders_from)
            .where(Order.shop_id == shop.id, among(session, Order.member_id, member_ids), Order.paid_at.is_not(None))
        )
        # As named tuples, the same fields and values: each past order's fields are read a dozen times below (tiers,
        # tier corrections, milestones), and a Row's attribute costs about ten times a named tuple's.
        as_tuple = _plain_row(tuple(result.keys()))._make
        orders = [as_tuple(row) for row in result]
    # Paid terms count only under a paid tier (tier_rules.status and tiers_at_payments pass over them without one):
    # without it none are read, though purchases made under an earlier version may be stored.
    bought = tiers.purchases_of(session, shop.id, member_ids) if current is not None and current.paid else []
    # Only the orders the read found refunded: most members have none, and then no statement is sent.
    refunds = tiers.refunds_of(
        session, shop.id, [o.order_id for o in orders if o.refunded] + [p.order_id for p in bought]
    )
    lots = lot_reads.lots(session, shop.id, orders, refunds)
    if current is not None:
        facts, terms = tiers.facts_from(session, shop.id, orders, bought, refunds, lots)
        held_rewards = tiers.held_rewards(session, shop.id, member_ids)
        stored = tier_corrections.stored_from(orders, current.version, as_text)
    if with_milestones:
        histories = milestone_rules.histories_from(orders, refunds, shops.zone(shop), lots)
        holdings = _holdings(session, shop.id, member_ids)
    return MemberFacts(members, facts, terms, held_rewards, stored, histories, holdings)


def with_new_orders(
    facts: MemberFacts, shop: Shop, current: tier_rules.TierProgramme | None, orders: list[dict[str, Any]]
) -> MemberFacts:
    """`facts` with these orders added, as `read` would find them once they are written: order rows as
    batch_accrual writes them, each new and paid, with its lot, no refund and no cancellation (so its lot is read
    straight, as lot_reads gives an unrefunded one). The members' other rows (tier, rewards held, holdings, paid
    terms) must be as `facts` read them: no tier purchase among the orders. tests/test_member_facts_reads.py
    compares this with a read after the write."""
    tier_facts = {member_id: list(found) for member_id, found in facts.tier_facts.items()}
    stored = {member_id: dict(found) for member_id, found in facts.stored_tiers.items()}
    histories = None
    if facts.histories is not None:
        histories = {member_id: list(found) for member_id, found in facts.histories.items()}
    shop_zone = shops.zone(shop)
    for order in orders:
        member_id, order_id, lot = order["member_id"], order["order_id"], order["lot"]
        paid_at = order["paid_at"].astimezone(UTC)  # as read back (models.UTCDateTime)
        if current is not None:
            fact = tiers.order_fact(order_id, order["name"], paid_at, lot, None, None)
            tier_facts.setdefault(member_id, []).append(fact)
            # tier_corrections.stored_from's, from the order's facts (its tier as the JSONB column gives it back).
            tiers_version = order["facts"].get("tiers_version")
            if tiers_version is not None and int(tiers_version) == current.version:
                member_tier = json.loads(json.dumps(order["facts"].get("member_tier")))
                stored.setdefault(member_id, {})[order_id] = (paid_at, member_tier)
        if histories is not None:
            spend = milestone_rules.lot_spend(lot, (), False)
            year = milestones.local_year(paid_at, shop_zone)
            histories.setdefault(member_id, []).append(milestones.OrderSpend(order_id, year, spend))
    return replace(facts, tier_facts=tier_facts, stored_tiers=stored, histories=histories)


@lru_cache(maxsize=8)
def _plain_row(fields: tuple[str, ...]) -> type:
    """A named tuple type for rows of these fields (one per dialect's columns)."""
    return namedtuple("OrderRow", fields)


def _holdings(session: Session, shop_id: int, member_ids: list[int]) -> dict[int, dict[str, Holding]]:
    held: dict[int, dict[str, Holding]] = {}
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_HOLDINGS, {"member_ids": list(member_ids), "shop_id": shop_id})
    else:
        h = MilestoneHolding
        rows = session.execute(
            select(*(getattr(h, c) for c in _HOLDING_COLUMNS)).where(h.shop_id == shop_id, h.member_id.in_(member_ids))
        )
    for member_id, rule_key, *fields in rows.all():  # fetched at once: row by row, psycopg fetched each alone
        held.setdefault(member_id, {})[rule_key] = Holding(*fields)
    return held
