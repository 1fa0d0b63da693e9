"""VIP tiers: recompute a member's tier from their facts, record each move, its event and its entry reward.

Runs in the transaction that changed one of the member's orders (services/member_rules.py), from the daily
period-end sweep, and when the merchant applies a new tier programme. The member row is locked first, so two
orders of one member recompute one after the other. The shop learns the tier through services/tier_push.py.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from plugin import ledger
from plugin.db import among, among_ids, insert_for
from plugin.models import Member, Order, Posting, Product, Refund, Shop, TierMove, TierPurchase, utcnow
from plugin.programme import earning as program
from plugin.programme import events
from plugin.programme import tiers as tier_rules
from plugin.programme.rules.core import MemberTier
from plugin.programme.settings import program_settings
from plugin.services import lot_reads, outbox
from plugin.services.shops import zone

if TYPE_CHECKING:
    from plugin.services.member_facts import MemberFacts

SOURCE = "tier"  # postings' source_type for tier rewards


def programme(shop: Shop) -> tier_rules.TierProgramme | None:
    """The shop's tier programme, or None when it has no tiers."""
    if not shop.tiers or not shop.tiers.get("tiers"):
        return None
    return _programme(shop.id, shop.tiers_version, _frozen(shop.tiers))


def _frozen(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


@lru_cache(maxsize=256)
def _programme(shop_id: int, version: int, data_json: str) -> tier_rules.TierProgramme:
    return tier_rules.TierProgramme.from_json(json.loads(data_json), version)


def member_tier(session: Session, shop: Shop, member_id: int | None) -> MemberTier | None:
    """The tier the member holds now, as the earning rules see it (None without tiers or a tier)."""
    current = programme(shop)
    if current is None or member_id is None:
        return None
    tier_id = session.execute(
        select(Member.tier).where(Member.shop_id == shop.id, Member.id == member_id)
    ).scalar_one_or_none()
    tier = current.tier(tier_id)
    if tier is None:
        return None
    return MemberTier(tier.tier_id, tier.name, tier.multiplier, current.version)


def tier_when_paid(
    session: Session, shop: Shop, member_id: int | None, order_id: int, paid_at: datetime
) -> MemberTier | None:
    """The tier the member held as this order was paid (before it counted), from every fact known now: what its
    multiplier uses. A later-known earlier order corrects it (services/tier_corrections.py)."""
    current = programme(shop)
    if current is None or member_id is None:
        return None
    facts, terms = facts_for(session, shop.id, [member_id])
    found = tier_rules.tiers_at_payments(
        current, facts.get(member_id, []), terms.get(member_id, []), zone(shop), [(order_id, paid_at)]
    )
    return as_member_tier(current, found[order_id][0])


def as_member_tier(current: tier_rules.TierProgramme, rank: int) -> MemberTier | None:
    """A rank of the programme as the earning rules see it (None: no tier)."""
    if not rank:
        return None
    tier = current.tiers[rank - 1]
    return MemberTier(tier.tier_id, tier.name, tier.multiplier, current.version)


def note_purchase(
    session: Session, shop: Shop, order: Order, snapshot: events.OrderSnapshot, paid_at: datetime
) -> None:
    """Record a paid order that bought the paid tier (a line with a marked SKU or a product with a marked tag)."""
    current = programme(shop)
    if current is None or current.paid is None or order.member_id is None:
        return
    plan = current.paid
    tagged: set[int] = set()
    if plan.product_tags:
        ids = {line.product_id for line in snapshot.lines if line.product_id is not None}
        if ids:
            rows = session.execute(
                select(Product.product_id, Product.tags).where(Product.shop_id == shop.id, Product.product_id.in_(ids))
            )
            tagged = {pid for pid, tags in rows if plan.product_tags & {str(t).casefold() for t in tags or ()}}
    marked = [
        line.line_id
        for line in snapshot.lines
        if line.quantity > 0 and ((line.sku and line.sku in plan.skus) or line.product_id in tagged)
    ]
    if not marked:
        return
    session.execute(
        insert_for(session)(TierPurchase)
        .values(
            shop_id=shop.id,
            order_id=order.order_id,
            member_id=order.member_id,
            paid_at=paid_at,
            months=plan.months,
            line_ids=marked,
        )
        .on_conflict_do_nothing(index_elements=["shop_id", "order_id"])
    )


def after_order_change(session: Session, shop: Shop, member_id: int) -> None:
    """The member rule (services/member_rules.py): bring the member's tier up to date after an order changed."""
    if programme(shop) is not None:
        recompute(session, shop, member_id)


def _refunds(session: Session, shop_id: int, order_ids: list[int]) -> dict[int, list[events.RefundFacts]]:
    out: dict[int, list[events.RefundFacts]] = defaultdict(list)
    if not order_ids:
        return out
    for chunk in _chunks(order_ids, 5000):
        # One array, not an IN list: the drain asks for every past order of a batch's members (hundreds), and
        # psycopg converts a statement of more than 50 parameters anew each time, dumping each id alone. The array
        # as its text (db.among_ids): psycopg's list dumper, in Python, cost more than the statement.
        rows = session.execute(
            select(Refund.order_id, Refund.refund_id, Refund.facts).where(
                Refund.shop_id == shop_id, among_ids(session, Refund.order_id, chunk)
            )
        )
        for order_id, refund_id, facts in rows:
            out[order_id].append(refund_from_json(order_id, refund_id, facts))
    return out


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def facts_for(
    session: Session, shop_id: int, member_ids: list[int] | None = None
) -> tuple[dict[int, list[tier_rules.OrderFact]], dict[int, list[tier_rules.PaidTerm]]]:
    """Every member's order facts and paid terms, as tiers read them (member_ids None: the whole shop)."""
    query = (
        select(*ORDER_FACT_COLUMNS, *lot_reads.columns(session))
        .select_from(lot_reads.orders_from(session))
        .where(
            Order.shop_id == shop_id, Order.member_id.is_not(None), Order.paid_at.is_not(None), Order.lot.is_not(None)
        )
    )
    if member_ids is not None:
        query = query.where(among(session, Order.member_id, member_ids))
    rows = session.execute(query).all()
    bought = purchases_of(session, shop_id, member_ids)
    refunds = _refunds(session, shop_id, [r.order_id for r in rows] + [p.order_id for p in bought])
    return facts_from(session, shop_id, rows, bought, refunds, lot_reads.lots(session, shop_id, rows, refunds))


# The columns of an order that facts_from reads beside its lot (services/lot_reads.py): member_facts reads them once
# for tiers and milestones alike.
ORDER_FACT_COLUMNS = (Order.order_id, Order.member_id, Order.name, Order.paid_at, Order.cancelled_at)


def purchases_of(session: Session, shop_id: int, member_ids: list[int] | None) -> list[TierPurchase]:
    purchases = select(TierPurchase).where(TierPurchase.shop_id == shop_id)
    if member_ids is not None:
        purchases = purchases.where(among(session, TierPurchase.member_id, member_ids))  # one parameter, any size
    return list(session.scalars(purchases))


def refunds_of(session: Session, shop_id: int, order_ids: list[int]) -> dict[int, list[events.RefundFacts]]:
    """The refunds of the given orders, by order id."""
    return _refunds(session, shop_id, order_ids)


def facts_from(
    session: Session,
    shop_id: int,
    rows,
    bought: list[TierPurchase],
    refunds: dict[int, list[events.RefundFacts]],
    lots: dict[int, dict[str, Any] | None],
) -> tuple[dict[int, list[tier_rules.OrderFact]], dict[int, list[tier_rules.PaidTerm]]]:
    """facts_for's answer from rows of ORDER_FACT_COLUMNS, their lots (lot_reads.lots; an order with none is
    skipped), purchases and their refunds (covering the rows' orders and the purchases')."""
    cancelled_orders = {}
    if bought:
        cancelled_orders = dict(
            session.execute(
                select(Order.order_id, Order.cancelled_at).where(
                    Order.shop_id == shop_id, Order.order_id.in_([p.order_id for p in bought])
                )
            ).all()
        )
    facts: dict[int, list[tier_rules.OrderFact]] = defaultdict(list)
    for row in rows:
        lot_json = lots[row.order_id]
        if lot_json is not None:
            refunds_ = refunds.get(row.order_id)
            fact = order_fact(row.order_id, row.name, row.paid_at, lot_json, row.cancelled_at, refunds_)
            facts[row.member_id].append(fact)
    terms = paid_terms(bought, cancelled_orders, refunds)
    return facts, terms


def paid_terms(
    bought: list[TierPurchase], cancelled_orders: dict[int, datetime | None], refunds
) -> dict[int, list[tier_rules.PaidTerm]]:
    """Each purchase of the paid tier, counted while its order stands and some marked line is kept."""
    terms: dict[int, list[tier_rules.PaidTerm]] = defaultdict(list)
    for purchase in bought:
        refunded: dict[int, int] = defaultdict(int)
        for refund in refunds.get(purchase.order_id, ()):
            for line_id, quantity in refund.line_quantities.items():
                refunded[line_id] += quantity
        kept = cancelled_orders.get(purchase.order_id) is None and any(
            refunded[line_id] == 0 for line_id in purchase.line_ids
        )
        term = tier_rules.PaidTerm(purchase.order_id, purchase.paid_at, purchase.months, kept)
        terms[purchase.member_id].append(term)
    return terms


def refund_from_json(order_id: int, refund_id: int, facts: dict[str, Any]) -> events.RefundFacts:
    return events.RefundFacts(
        refund_id=refund_id,
        order_id=order_id,
        line_quantities={int(k): int(v) for k, v in facts["line_quantities"].items()},
        shipping=Decimal(facts["shipping"]),
    )


_CENT = Decimal("0.01")


def order_fact(
    order_id: int,
    name: str | None,
    paid_at: datetime,
    lot_json: dict[str, Any] | lot_reads.LotSums,
    cancelled_at: datetime | None,
    refunds: list[events.RefundFacts] | None,
    metric: str | None = None,
) -> tier_rules.OrderFact:
    """One order as tiers see it. An order with no refund and no cancellation is read straight from its lot's JSON
    (what the preview does 100,000 times) or its sums (lot_reads); the others go through the lot's own reversal
    arithmetic."""
    label = name or f"#{order_id}"
    if cancelled_at is not None:
        return tier_rules.OrderFact(order_id, label, paid_at, Decimal(0), 0, False)
    if type(lot_json) is lot_reads.LotSums:  # summed by PostgreSQL (never given with refunds)
        spend = (lot_json.eligible + lot_json.shipping_tip).quantize(_CENT)
        return tier_rules.OrderFact(order_id, label, paid_at, spend, lot_json.tier_points, True)
    if not refunds:
        spend = sum((Decimal(line["eligible"]) for line in lot_json["lines"]), Decimal(lot_json["shipping"]))
        spend += Decimal(lot_json["tip"])
        contributions = lot_json.get("contributions")
        if contributions:
            points = program.contribution_points_without(
                contributions, tier_rules.TIER_CONTRIBUTION_KIND, lot_json.get("order_cap")
            )
        else:
            points = int(lot_json["points"])
        return tier_rules.OrderFact(order_id, label, paid_at, spend.quantize(Decimal("0.01")), points, True)
    lot = program.Lot.from_json(lot_json)
    spend = program.money_kept(lot, refunds, False)
    # The preview asks for one metric: the points' exact reversal is the costly part, so it is skipped for spend.
    points = 0 if metric == "spend" else program.points_without(lot, refunds, False, tier_rules.TIER_CONTRIBUTION_KIND)
    counts = spend > 0 or not _wholly_refunded(lot, refunds)
    return tier_rules.OrderFact(order_id, label, paid_at, spend, points, counts)


def _wholly_refunded(lot: program.Lot, refunds: Iterable[events.RefundFacts]) -> bool:
    refunded: dict[int, int] = defaultdict(int)
    for refund in refunds:
        for line_id, quantity in refund.line_quantities.items():
            refunded[line_id] += quantity
    return bool(lot.lines) and all(refunded[line.line_id] >= line.quantity for line in lot.lines)


def recompute(
    session: Session,
    shop: Shop,
    member_id: int,
    *,
    now: datetime | None = None,
    cause: str | None = None,
    facts: MemberFacts | None = None,
) -> tier_rules.TierStatus | None:
    """Bring one member's tier, its history, its event and its entry rewards up to date with their facts.

    `facts`: what the set-based drain read for all its batch's members at once (services/member_facts.py);
    else this member's facts are read here."""
    current = programme(shop)
    if current is None:
        return None
    now = now or utcnow()
    member = session.execute(
        select(Member).where(Member.shop_id == shop.id, Member.id == member_id).with_for_update()
    ).scalar_one()
    session.flush()  # the order rows this transaction changed, before they are read back as facts
    held = None
    if facts is None:
        found, terms = facts_for(session, shop.id, [member_id])
        known = (found.get(member_id, []), terms.get(member_id, []))
    else:
        known, held = facts.tier_known(member_id), facts.entry_rewards.get(member_id, {})
    state = tier_rules.status(current, known[0], now, zone(shop), known[1])
    move(session, shop, current, member, state, now, cause)
    _entry_rewards(session, shop, current, member, state, held)
    return state


def move(
    session: Session,
    shop: Shop,
    current: tier_rules.TierProgramme,
    member: Member,
    state: tier_rules.TierStatus,
    now: datetime,
    cause: str | None = None,
) -> bool:
    """Write the member's new tier and dates; on a change of tier, its move (with the reason) and its event."""
    member.tier_until = state.kept_until
    member.tier_paid_until = state.paid_until
    if member.tier == state.tier_id:
        return False
    before = member.tier
    member.tier = state.tier_id
    seq = (
        session.execute(
            select(func.max(TierMove.seq)).where(TierMove.shop_id == shop.id, TierMove.member_id == member.id)
        ).scalar()
        or 0
    ) + 1
    reason = f"{cause}: {state.reason}" if cause else state.reason
    session.add(
        TierMove(
            shop_id=shop.id, member_id=member.id, seq=seq, from_tier=before, to_tier=state.tier_id,
            reason=reason[:2000], tiers_version=current.version, occurred_at=now,
        )
    )  # fmt: skip
    outbox.record(
        session,
        shop.id,
        "tier.changed",
        dedupe_key=f"tier.changed:{member.id}:{seq}",
        member_id=member.id,
        occurred_at=now,
        data=changed_event(current, member.customer_id, before, state, reason),
    )
    from plugin.services import tier_free_shipping  # late: accrual imports this module, and redemption is heavy

    tier_free_shipping.after_move(session, shop, current, member, before, seq, _held_until(state))
    return True


def changed_event(
    current: tier_rules.TierProgramme, customer_id: int, before: str | None, state: tier_rules.TierStatus, reason: str
) -> dict[str, Any]:
    """The tier.changed event's data for a move from `before` to the state's tier (move and the set-based drain)."""
    tier = current.tier(state.tier_id)
    return {
        "customer_id": customer_id,
        "from_tier": before,
        "to_tier": state.tier_id,
        "to_tier_name": tier.name if tier else None,
        "direction": "up" if state.rank > current.rank(before) else "down",
        "reason": reason,
        "perks": list(tier.perks) if tier else [],
        "kept_until": state.kept_until.isoformat() if state.kept_until else None,
        "tiers_version": current.version,
    }


def _held_until(state: tier_rules.TierStatus) -> datetime | None:
    """Until when the member holds their tier as of now (None: for good): the earned tier's kept-until date, or the
    paid tier's end when that is what they hold."""
    if state.rank and state.earned_rank >= state.rank:
        if state.kept_until is None:
            return None  # earned for good
        return max(state.kept_until, state.paid_until or state.kept_until)
    return state.paid_until


def _entry_rewards(
    session: Session, shop: Shop, current: tier_rules.TierProgramme, member: Member, state: tier_rules.TierStatus,
    held: dict[str, tuple[int, int]] | None = None,
) -> None:  # fmt: skip
    """Hold each entry reward whose (tier, period) the facts reach; take back those they no longer reach."""
    if held is None:
        held = held_rewards(session, shop.id, [member.id]).get(member.id, {})
    wanted = wanted_rewards(current, state)
    policy = program_settings(shop.settings, shop.settings_version).spent_points_policy
    for source_id in sorted(set(wanted) | set(held)):
        target, note = wanted.get(source_id, (0, ""))
        have, count = held.get(source_id, (0, 0))
        delta = target - have
        if delta == 0:
            continue
        key = f"tier:{member.id}:{source_id}:{count + 1}"
        version = f"tiers-{current.version}"
        if delta > 0:
            _post(session, shop, member.id, "bonus", delta, source_id, key, version, note)
            continue
        note = f"{source_id.split(':')[1]} entry reward taken back: its period's facts no longer reach the tier"
        if policy != "allow_negative":
            session.refresh(member, ["balance"])  # the trigger moved it in this transaction
            payable = max(member.balance, 0)
            shortfall = -delta - payable
            if shortfall > 0:  # already spent: forgiven, so the balance never dips below zero
                _post(
                    session, shop, member.id, "forgive", shortfall, source_id, f"{key}:forgive", version,
                    f"{policy}: {shortfall} points of the entry reward already spent, forgiven",
                )  # fmt: skip
        _post(session, shop, member.id, "reverse", delta, source_id, key, version, note)


def wanted_rewards(current: tier_rules.TierProgramme, state: tier_rules.TierStatus) -> dict[str, tuple[int, str]]:
    """The entry rewards the state's facts reach, by reward source: (points, note)."""
    periods = {q.period_key for q in state.qualifications}
    wanted: dict[str, tuple[int, str]] = {}
    for rank, tier in enumerate(current.tiers, start=1):
        if not tier.entry_reward:
            continue
        for period in periods:
            reached = state.reached_in(period, rank)
            if reached is not None:
                wanted[f"entry:{tier.tier_id}:{period}"] = (
                    tier.entry_reward,
                    f"{tier.name} reached in {period} (order {reached.order_name})",
                )
    return wanted


def _post(
    session: Session, shop: Shop, member_id: int, kind: str, points: int, source_id: str, key: str,
    version: str, note: str,
) -> None:  # fmt: skip
    ledger.post(
        session,
        shop.id,
        ledger.Entry(
            member_id=member_id, kind=kind, points=points, source_type=SOURCE, source_id=source_id,
            idempotency_key=key, rule_version=version, note=note,
        ),
    )  # fmt: skip


# held_rewards on PostgreSQL: one probe of the tier rewards' partial index per member (decision 0058). With the
# members as an IN list, a table never analysed (autovacuum off, a fresh shop) was read by shop_id alone, every
# posting of the shop, once per drained batch. The source type is written in the SQL, not bound: the driver
# prepares a statement run often, and a generic plan cannot use a partial index whose predicate is a parameter.
_HELD_PER_MEMBER = text(
    "SELECT m.id, r.source_id, r.points, r.postings FROM unnest(CAST(:member_ids AS BIGINT[])) AS m (id)"
    " CROSS JOIN LATERAL (SELECT p.source_id, sum(p.points) AS points, count(*) AS postings FROM postings p"
    f" WHERE p.shop_id = :shop_id AND p.member_id = m.id AND p.source_type = '{SOURCE}' AND p.kind <> 'forgive'"
    " GROUP BY p.source_id) AS r"
)


def held_rewards(session: Session, shop_id: int, member_ids: list[int]) -> dict[int, dict[str, tuple[int, int]]]:
    """Per member, per reward source: the points it holds (forgiveness aside) and how many postings made them."""
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_HELD_PER_MEMBER, {"shop_id": shop_id, "member_ids": list(member_ids)})
    else:
        rows = session.execute(
            select(Posting.member_id, Posting.source_id, func.sum(Posting.points), func.count())
            .where(
                Posting.shop_id == shop_id,
                Posting.member_id.in_(member_ids),
                Posting.source_type == SOURCE,
                Posting.kind != "forgive",
            )
            .group_by(Posting.member_id, Posting.source_id)
        )
    held: dict[int, dict[str, tuple[int, int]]] = {}
    for member_id, source_id, points, count in rows:
        held.setdefault(member_id, {})[source_id] = (int(points), int(count))
    return held


def recompute_expired(session: Session, shop: Shop, now: datetime | None = None, limit: int = 1000) -> int:
    """Recompute members whose kept-until or paid-until date has passed (the period-end sweep); returns how many."""
    if programme(shop) is None:
        return 0
    now = now or utcnow()
    due = session.scalars(
        select(Member.id)
        .where(
            Member.shop_id == shop.id,
            Member.tier.is_not(None),
            ((Member.tier_until.is_not(None)) & (Member.tier_until <= now))
            | ((Member.tier_paid_until.is_not(None)) & (Member.tier_paid_until <= now)),
        )
        .order_by(Member.id)
        .limit(limit)
    ).all()
    for member_id in due:
        recompute(session, shop, member_id, now=now, cause="period ended")
    return len(due)


def shops_with_expiries(session: Session, now: datetime | None = None) -> list[int]:
    """Shops with a member whose tier is due to be recomputed because a date passed."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Member.shop_id)
            .join(Shop, Shop.id == Member.shop_id)
            .where(
                Shop.active.is_(True),
                Member.tier.is_not(None),
                ((Member.tier_until.is_not(None)) & (Member.tier_until <= now))
                | ((Member.tier_paid_until.is_not(None)) & (Member.tier_paid_until <= now)),
            )
            .distinct()
        )
    )


def history(session: Session, shop_id: int, member_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """A member's tier moves, newest first, each with its reason."""
    rows = session.scalars(
        select(TierMove)
        .where(TierMove.shop_id == shop_id, TierMove.member_id == member_id)
        .order_by(TierMove.seq.desc())
        .limit(limit)
    )
    return [
        {
            "seq": r.seq,
            "from_tier": r.from_tier,
            "to_tier": r.to_tier,
            "reason": r.reason,
            "tiers_version": r.tiers_version,
            "occurred_at": r.occurred_at.isoformat(),
        }
        for r in rows
    ]


def counts(session: Session, shop_id: int) -> dict[str | None, int]:
    """Members per tier id (None: no tier)."""
    rows = session.execute(select(Member.tier, func.count()).where(Member.shop_id == shop_id).group_by(Member.tier))
    return {tier: int(n) for tier, n in rows}


def widget_section(session: Session, shop: Any, member_id: int | None, now: datetime | None = None) -> dict | None:
    """What the storefront widget shows of tiers: the member's tier, its benefits, the kept-until and renewal
    dates, and progress to the next tier; None when the shop has no tiers. `shop` needs id, tiers, tiers_version
    and time_zone (the widget's one-statement read passes its row's values)."""
    current = programme(shop)
    if current is None:
        return None
    now = now or utcnow()
    shop_zone = zone(shop)
    if member_id is not None:
        facts, terms = facts_for(session, shop.id, [member_id])
        state = tier_rules.status(current, facts.get(member_id, []), now, shop_zone, terms.get(member_id, []))
    else:
        state = tier_rules.status(current, [], now, shop_zone)
    tier = current.tier(state.tier_id)
    ahead = tier_rules.progress(current, state, shop_zone)

    def last_day(moment: datetime | None) -> str | None:
        return None if moment is None else (moment.astimezone(shop_zone) - timedelta(seconds=1)).date().isoformat()

    def money_or_count(value: Decimal) -> str | int:
        return str(value.quantize(Decimal("0.01"))) if current.metric == "spend" else int(value)

    return {
        "metric": current.metric,
        "period": current.period,
        "current": None if tier is None else {"id": tier.tier_id, "name": tier.name, **_benefits(tier)},
        # The tier's free-shipping code, once the job has made it in the shop (services/tier_free_shipping.py).
        "free_shipping_code": _free_shipping_code(session, shop.id, member_id, tier),
        "kept_until": last_day(state.kept_until) if tier else None,
        "paid_until": last_day(state.paid_until),
        "value": money_or_count(state.value),
        "progress": None
        if ahead is None
        else {
            "id": ahead.next_tier.tier_id,
            "name": ahead.next_tier.name,
            "needed": money_or_count(ahead.needed),
            "by": ahead.by.isoformat() if ahead.by else None,
        },
        "tiers": [
            {"id": t.tier_id, "name": t.name, "threshold": money_or_count(t.threshold), **_benefits(t)}
            for t in current.tiers
        ],
    }


def _free_shipping_code(session: Session, shop_id: int, member_id: int | None, tier) -> dict[str, Any] | None:
    if member_id is None or tier is None or not tier.free_shipping:
        return None  # no query for a tier without free shipping
    from plugin.services import tier_free_shipping  # late: as in move

    return tier_free_shipping.widget_code(session, shop_id, member_id, tier.tier_id)


def _benefits(tier: tier_rules.Tier) -> dict[str, Any]:
    return {
        "multiplier": str(tier.multiplier.normalize()),
        "entry_reward": tier.entry_reward,
        "birthday_reward": tier.birthday_reward,
        "free_shipping": tier.free_shipping,
        "perks": list(tier.perks),
    }


def birthday_points(session: Session, shop: Shop, member_id: int) -> int:
    """The birthday reward of the tier the member holds now (0 without one). The birthday job itself reads the
    tier held on the birthday (services/milestones/birthdays.tiers_on) and posts it as its own grant."""
    current = programme(shop)
    if current is None:
        return 0
    tier_id = session.execute(
        select(Member.tier).where(Member.shop_id == shop.id, Member.id == member_id)
    ).scalar_one_or_none()
    tier = current.tier(tier_id)
    return tier.birthday_reward if tier else 0
