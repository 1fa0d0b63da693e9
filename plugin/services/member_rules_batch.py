"""The member rules of a set-based batch: planned in Python per member, the common case written set-based.

member_rules.after_order_change, for every member of the batch at once (decision 0040). Their facts are read once
(services/member_facts.py); each member's outcome is worked out with the rules' own pure parts (tier status, entry
rewards wanted, tier corrections due, milestone targets), and when all of it is the usual kind (a tier move with
no free-shipping code, grants that only grow, points only added, no catalogue reward, no order to correct) it is
written with the others': one UPDATE of the members, one INSERT of the tier moves, one INSERT of the postings per
round (one posting per member per statement, as the ledger's trigger wants, in the member's own sequence), one
upsert of the milestone holdings and one INSERT of the events. The other members go through the rules' own
per-member code, given the same facts. Any unexpected row raises: the caller redoes the batch one by one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from plugin.bulk_insert import insert_rows, integer_array_text
from plugin.db import dialect_insert, unprepared
from plugin.models import Member, MilestoneHolding, MilestoneSettings, Shop, TierMove, utcnow
from plugin.programme import tiers as tier_rules
from plugin.services import batch_accrual, member_facts, outbox, tier_corrections, tiers
from plugin.services.milestones import grants
from plugin.services.milestones import rules as milestones
from plugin.services.milestones import settings as milestone_settings
from plugin.services.shops import zone


@dataclass
class Plan:
    """What one member's rules write, in the order the rules write it."""

    member: dict[str, Any] | None = None  # the member's new tier and dates, when they differ
    move: tuple[str | None, tier_rules.TierStatus] | None = None  # from which tier, to which state
    postings: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)  # outbox.record_many's, after the move's own
    holdings: list[dict[str, Any]] = field(default_factory=list)


def read(
    session: Session, shop: Shop, member_ids: list[int], programme: dict[str, Any] | None = None
) -> member_facts.MemberFacts:
    """The members' facts as `run` takes them, read (and the members locked) before a round's orders are written.
    `programme`: the shop's milestone programme (milestones.settings.current's), read here if not given."""
    session.flush()
    if programme is None:
        programme = milestone_settings.current(session, shop.id)
    return member_facts.read(session, shop, member_ids, milestone_settings.any_rules(programme))


def run(
    session: Session,
    shop: Shop,
    member_ids: list[int],
    before: member_facts.MemberFacts,
    new_orders: list[dict],
    quals: dict[int, list[tier_rules.Qualification]] | None = None,
    programme: dict[str, Any] | None = None,
) -> None:
    """member_rules.after_order_change for each member (each member once), as one by one would leave them.

    `before`: the members' facts `read` gave before the round's orders; `new_orders`: those orders' rows as
    written (batch_accrual's), each new, paid, with its lot, no refund and no cancellation. Their facts are added
    in Python (member_facts.with_new_orders): the round's writes between the read and now change no other order,
    refund, tier reward held, holding or member tier. With a paid tier, the facts are read again: the round noted
    its purchases in tier_purchases.

    The rules of batch_accrual.KNOWN_MEMBER_RULES; referrals are left out: takes_part found no referral settings,
    so that rule is a no-op. A member's rules change only that member's rows, so members may be written in any
    order, and what is read before the first still holds for the last.

    `quals`: by member id, tier_rules.qualifications of `before`'s tier facts under the shop's programme and zone
    (batch_accrual._tiers_when_paid's), which a member's plan goes on from when their new order is their latest.

    `programme`: the shop's milestone programme (milestones.settings.current's), read here if not given."""
    session.flush()
    current = tiers.programme(shop)
    if programme is None:
        programme = milestone_settings.current(session, shop.id)
    with_milestones = milestone_settings.any_rules(programme)
    if current is not None and current.paid is not None:
        facts = member_facts.read(session, shop, member_ids, with_milestones)
        quals = None  # read again, not `before` plus the new orders: nothing to go on from
    else:
        facts = member_facts.with_new_orders(before, shop, current, new_orders)
    now = utcnow()
    shop_zone = zone(shop)
    plans: dict[int, Plan] = {}
    by_hand: list[int] = []
    for member_id in member_ids:
        # The member's qualifications after the round's order (tier status and corrections due take them).
        found = None if current is None else _qualifications(current, shop_zone, before, facts, quals, member_id)
        plan = _plan(shop, shop_zone, current, programme if with_milestones else None, facts, member_id, now, found)
        if plan is None:
            by_hand.append(member_id)
        else:
            plans[member_id] = plan
    _write(session, shop, current, facts, plans, now)
    # Held while the per-member rules run: the session's identity map keeps only weak references, so without this
    # each member's milestones.settings.current would read the row again (the drain holds it for its whole batch).
    settings_row = session.get(MilestoneSettings, shop.id) if by_hand else None  # noqa: F841
    for member_id in by_hand:  # the rare cases, through the rules' own code, in batch order
        corrected = 0
        if current is not None:
            tiers.recompute(session, shop, member_id, facts=facts)  # writes no order: `facts` still hold
            corrected = tier_corrections.correct(session, shop, member_id, facts)
        if with_milestones:
            # Given facts, milestones.recompute takes no member lock: member_facts.read took this member's, and
            # this transaction holds it still. After a tier correction remade a lot, it reads (and locks) anew.
            milestones.recompute(session, shop, member_id, None if corrected else facts)


def _qualifications(
    current: tier_rules.TierProgramme,
    shop_zone: ZoneInfo,
    before: member_facts.MemberFacts,
    facts: member_facts.MemberFacts,
    quals: dict[int, list[tier_rules.Qualification]] | None,
    member_id: int,
) -> list[tier_rules.Qualification]:
    """tier_rules.qualifications of the member's tier facts in `facts`. When they are `before`'s plus one order
    (with_new_orders appends it) and `quals` has `before`'s, they go on from those if that order is the latest
    (tier_rules.qualifications_with): a live stream's usual case, which saves a second pass over every past order
    each round (decision 0080). Otherwise (an order paid before one known, a rolling period, ...) from scratch."""
    known = facts.tier_facts.get(member_id, [])
    first = quals.get(member_id) if quals is not None else None
    if first is not None and len(known) == len(before.tier_facts.get(member_id, ())) + 1:
        found = tier_rules.qualifications_with(current, first, known[-1], shop_zone)
        if found is not None:
            return found
    return tier_rules.qualifications(current, known, shop_zone)


def _plan(
    shop: Shop,
    shop_zone: ZoneInfo,
    current: tier_rules.TierProgramme | None,
    programme: dict[str, Any] | None,
    facts: member_facts.MemberFacts,
    member_id: int,
    now: datetime,
    quals: list[tier_rules.Qualification] | None = None,
) -> Plan | None:
    """The member's writes when every rule's outcome is the usual kind; None: this member goes through the rules'
    own code (a tier with a free-shipping code, an entry reward or a grant taken back, a catalogue reward, an
    order's tier to correct, a holding with a debt or rewards). `quals`: tier_rules.qualifications of the member's
    tier facts, when the caller has them."""
    row = facts.members[member_id]
    plan = Plan()
    if current is not None:
        known = facts.tier_known(member_id)
        # The member's qualifications, worked out once for the tier status and the corrections due (twice before).
        if quals is None:
            quals = tier_rules.qualifications(current, known[0], shop_zone)
        state = tier_rules.status(current, known[0], now, shop_zone, known[1], quals)
        if (row.tier, row.tier_until, row.tier_paid_until) != (state.tier_id, state.kept_until, state.paid_until):
            plan.member = {"m_id": member_id, "tier": state.tier_id, "tier_until": state.kept_until,
                           "tier_paid_until": state.paid_until}  # fmt: skip
        if row.tier != state.tier_id:
            if any(t is not None and t.free_shipping for t in (current.tier(row.tier), current.tier(state.tier_id))):
                return None  # the move grants or revokes a code (tier_free_shipping.after_move)
            plan.move = (row.tier, state)
        held = facts.entry_rewards.get(member_id, {})
        wanted = tiers.wanted_rewards(current, state)
        for source_id in sorted(set(wanted) | set(held)):  # as tiers._entry_rewards
            target, note = wanted.get(source_id, (0, ""))
            have, count = held.get(source_id, (0, 0))
            if target < have:
                return None  # taken back: the policy reads the balance
            if target > have:
                plan.postings.append(
                    _posting(shop, member_id, "bonus", target - have, tiers.SOURCE, source_id,
                             f"tier:{member_id}:{source_id}:{count + 1}", f"tiers-{current.version}", note, now)
                )  # fmt: skip
        if tier_corrections.due(current, shop_zone, known, facts.stored_tiers.get(member_id, {}), quals):
            return None  # accrual.correct_tier re-settles the order
    if programme is not None:
        history, _ = facts.milestones_known(member_id)
        holdings = facts.holdings.get(member_id, {})
        for source, count, points_each, reward_id in milestones.targets(programme, history):
            held = holdings.get(source.rule_key)
            have = len(held.grants) if held else 0
            if count == have:
                continue
            # One by one locks (so makes) the holding even when it grants nothing: not planned here.
            if reward_id or count < have or points_each <= 0:
                return None
            if not _grant(plan, shop, member_id, source, held, count, points_each, now):
                return None
        signup = holdings.get("signup:signup")
        due = not (signup and signup.grants) and milestones.signup_due(programme, row.enrolled_at)
        bonus = milestones.signup_source(programme), signup, 1, programme["signup"]["points"]
        if due and not _grant(plan, shop, member_id, *bonus, now):
            return None
    return plan


def _grant(
    plan: Plan, shop: Shop, member_id: int, source: grants.Source, held: member_facts.Holding | None, count: int,
    points_each: int, now: datetime,
) -> bool:  # fmt: skip
    """grants.bring_to's writes for grants that only grow, into the plan; False when it is not that simple."""
    if held is not None and (held.unpaid or held.rewards):
        return False
    before = list(held.grants) if held else []
    new = before + [points_each] * (count - len(before))
    points_held, sequence = (held.points_held, held.sequence) if held else (0, 0)
    delta = sum(new) - points_held
    if delta <= 0:
        return False
    key = f"{source.rule_key}:{member_id}:{sequence}"
    if source.details:
        return False  # rendered notes (birthdays) are not among the rules this path plans
    plan.postings.append(
        _posting(shop, member_id, "bonus", delta, source.source_type, source.source_id, f"milestone:{key}",
                 source.version, f"{source.label}: grant {len(new)}", now)
    )  # fmt: skip
    plan.events.append(
        {"event_type": "points.earned", "dedupe_key": f"points.earned:{shop.id}:{key}", "member_id": member_id,
         "data": {"points": delta, "source_type": source.source_type, "source_id": source.source_id},
         "occurred_at": now}
    )  # fmt: skip
    plan.holdings.append(
        {"shop_id": shop.id, "member_id": member_id, "rule_key": source.rule_key, "grants": new,
         "points_held": points_held + delta, "unpaid": 0, "sequence": sequence + 1, "rewards": [], "updated_at": now}
    )  # fmt: skip
    return True


def _posting(
    shop: Shop, member_id: int, kind: str, points: int, source_type: str, source_id: str, key: str, version: str,
    note: str, now: datetime,
) -> dict[str, Any]:  # fmt: skip
    """A posting as ledger.post writes it, in the row shape of batch_accrual's postings' INSERT."""
    return {
        "shop_id": shop.id, "member_id": member_id, "kind": kind, "points": points, "source_type": source_type,
        "source_id": source_id, "order_id": None, "rule_version": version, "idempotency_key": key,
        "available_at": None, "note": note, "details": None, "actor": "system", "created_at": now,
        "balance_after": 0, "after_points": points, "after_shop": shop.id, "after_member": member_id,
    }  # fmt: skip


def _write(
    session: Session,
    shop: Shop,
    current: tier_rules.TierProgramme | None,
    facts: member_facts.MemberFacts,
    plans: dict[int, Plan],
    now: datetime,
) -> None:
    """Every plan's writes, a statement per kind of row for all members (postings: one round per statement)."""
    connection = session.connection()
    updates = [plan.member for plan in plans.values() if plan.member is not None]
    if updates:
        _update_members(session, shop.id, updates)
    events: list[dict[str, Any]] = []
    movers = [member_id for member_id, plan in plans.items() if plan.move is not None]
    if movers:
        assert current is not None
        seqs = _insert_moves(session, shop.id, current.version, [(m, *plans[m].move) for m in movers], now)
        for member_id in movers:
            before, state = plans[member_id].move  # type: ignore[misc]
            seq = seqs[member_id]
            events.append(
                {"event_type": "tier.changed", "dedupe_key": f"tier.changed:{member_id}:{seq}",
                 "member_id": member_id, "occurred_at": now,
                 "data": tiers.changed_event(current, facts.members[member_id].customer_id, before, state,
                                             state.reason)}
            )  # fmt: skip
    rounds: list[list[dict[str, Any]]] = []
    for plan in plans.values():
        for n, posting in enumerate(plan.postings):
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(posting)
    for round_ in rounds:
        written = batch_accrual.insert_postings(session, round_)
        if len(written) != len(round_):
            raise batch_accrual.BatchConflict(f"{len(round_) - len(written)} of the rules' postings exist already")
    holdings = [row for plan in plans.values() for row in plan.holdings]
    if holdings and connection.dialect.name == "postgresql":
        # One statement, one array per column (plugin/bulk_insert.py), not a statement per holding: each member has
        # one row per rule key at most, so no row is upserted twice in it.
        insert_rows(connection, MilestoneHolding.__table__, holdings, _HOLDING_KEY, action=_HOLDING_CHANGES)
    elif holdings:
        connection.execute(_holding_upsert(connection.dialect.name), holdings)
    outbox.record_many(session, shop.id, events + [event for plan in plans.values() for event in plan.events])
    # A member row this session loaded earlier would keep the tier read then: the deliveries that follow one by one
    # must read the one written here.
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Member) and obj.id in plans:
            session.expire(obj)


def _insert_moves(
    session: Session,
    shop_id: int,
    version: int,
    moves: list[tuple[int, str | None, tier_rules.TierStatus]],
    now: datetime,
) -> dict[int, int]:
    """The members' tier moves (member id, from which tier, to which state), each numbered after the member's last;
    returns each member's new `seq`. The members are locked (member_facts.read), so no other move is numbered
    between the read of the last and the write. PostgreSQL: one statement, the last read in it (two before, about
    a millisecond of the drain's Python a round with moves)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        stamp = TierMove.__table__.c.occurred_at.type.process_bind_param
        params = {
            "shop": shop_id, "version": version, "at": stamp(now, connection.dialect),
            "members": integer_array_text([member_id for member_id, _, _ in moves]),
            "froms": [before for _, before, _ in moves], "tos": [state.tier_id for _, _, state in moves],
            "reasons": [state.reason[:2000] for _, _, state in moves],
        }  # fmt: skip
        return dict(connection.exec_driver_sql(TIER_MOVES, params).all())
    last = dict(
        connection.execute(
            select(TierMove.member_id, func.max(TierMove.seq))
            .where(TierMove.shop_id == shop_id, TierMove.member_id.in_([member_id for member_id, _, _ in moves]))
            .group_by(TierMove.member_id)
        ).all()
    )
    seqs = {member_id: (last.get(member_id) or 0) + 1 for member_id, _, _ in moves}
    rows = [
        {"shop_id": shop_id, "member_id": member_id, "seq": seqs[member_id], "from_tier": before,
         "to_tier": state.tier_id, "reason": state.reason[:2000], "tiers_version": version, "occurred_at": now}
        for member_id, before, state in moves
    ]  # fmt: skip
    connection.execute(TierMove.__table__.insert(), rows)
    return seqs


# Each member appears once (one plan a member), so each subquery reads a last `seq` no other row of the statement
# adds to. The last move is found by the primary key's (shop_id, member_id) prefix.
TIER_MOVES = """
    INSERT INTO tier_moves (shop_id, member_id, seq, from_tier, to_tier, reason, tiers_version, occurred_at)
    SELECT %(shop)s, moved.member_id,
           coalesce((SELECT max(t.seq) FROM tier_moves t WHERE t.shop_id = %(shop)s AND t.member_id = moved.member_id),
                    0) + 1,
           moved.from_tier, moved.to_tier, moved.reason, %(version)s, %(at)s
    FROM unnest(CAST(%(members)s AS bigint[]), CAST(%(froms)s AS varchar[]), CAST(%(tos)s AS varchar[]),
                CAST(%(reasons)s AS text[])) AS moved (member_id, from_tier, to_tier, reason)
    RETURNING member_id, seq
"""


def _update_members(session: Session, shop_id: int, updates: list[dict[str, Any]]) -> None:
    """The members' new tiers and dates (tiers.move's); the balance is the ledger's trigger's alone.

    PostgreSQL: one UPDATE of one array per column, planned for each batch (decision 0075). As an executemany of
    one UPDATE per member, prepared, a session's generic plan could read the shop's members by shop_id alone through
    the unique (shop_id, customer_id) index: about 480 buffer hits a member updated in a 6,000-order run, not 3.
    """
    if session.get_bind().dialect.name != "postgresql":
        session.connection().execute(_member_update(), [{**row, "m_shop": shop_id} for row in updates])
        return
    with unprepared(session):
        updated = session.connection().exec_driver_sql(MEMBER_TIERS, _tier_arrays(session, shop_id, updates)).rowcount
    if updated != len(updates):
        raise batch_accrual.BatchConflict(f"{len(updates) - updated} of the batch's members to update were not found")


def _tier_arrays(session: Session, shop_id: int, updates: list[dict[str, Any]]) -> dict[str, Any]:
    """MEMBER_TIERS's parameters: one array per column, the dates aware UTC as the mapped column takes them."""
    stamp, dialect = Member.__table__.c.tier_until.type.process_bind_param, session.get_bind().dialect
    return {
        "shop": shop_id,
        "ids": [row["m_id"] for row in updates],
        "tiers": [row["tier"] for row in updates],
        "untils": [stamp(row["tier_until"], dialect) for row in updates],
        "paid": [stamp(row["tier_paid_until"], dialect) for row in updates],
    }


# Each member found by its key, in a subquery OFFSET 0 keeps the planner from flattening: on a members table never
# analysed, a join of the arrays with members read the whole shop by shop_id alone (the pk_members index, created
# empty, estimates one row a shop), and so did the executemany's generic plan through the unique customer index.
MEMBER_TIERS = """
    UPDATE members SET tier = found.tier, tier_until = found.tier_until, tier_paid_until = found.tier_paid_until
    FROM (
        SELECT member.at, moved.tier, moved.tier_until, moved.tier_paid_until
        FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(tiers)s AS varchar[]), CAST(%(untils)s AS timestamptz[]),
                    CAST(%(paid)s AS timestamptz[])) AS moved (id, tier, tier_until, tier_paid_until)
        CROSS JOIN LATERAL (
            SELECT ctid AS at FROM members WHERE shop_id = %(shop)s AND id = moved.id OFFSET 0
        ) AS member
    ) AS found
    WHERE members.ctid = found.at AND members.shop_id = %(shop)s
"""


@lru_cache(maxsize=1)
def _member_update():
    """The new tier and dates of a member, one statement a member (SQLite)."""
    members = Member.__table__
    return update(members).where(
        members.c.shop_id == bindparam("m_shop"), members.c.id == bindparam("m_id")
    )  # the SET clause from the rows' other keys: tier, tier_until, tier_paid_until


# grants.lock then bring_to's update of a holding, in one statement; its rewards stay as they are.
_HOLDING_KEY = ("shop_id", "member_id", "rule_key")
_HOLDING_UPDATED = ("grants", "points_held", "unpaid", "sequence", "updated_at")
_HOLDING_CHANGES = "DO UPDATE SET " + ", ".join(f'"{name}" = excluded."{name}"' for name in _HOLDING_UPDATED)


@lru_cache(maxsize=4)
def _holding_upsert(dialect: str):
    """The holdings' upsert as an executemany (SQLite's), with _HOLDING_CHANGES's update."""
    holdings = MilestoneHolding.__table__
    insert = dialect_insert(dialect)(holdings)
    return insert.on_conflict_do_update(
        index_elements=list(_HOLDING_KEY), set_={name: insert.excluded[name] for name in _HOLDING_UPDATED}
    )
