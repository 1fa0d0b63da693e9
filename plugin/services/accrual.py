"""Turns order, refund and customer events into ledger postings, the same whatever order they arrive in.

Per order we keep every fact known so far (the lot from the paid order, each refund, the cancellation),
compute from them the points the order should hold now, and post only the difference from what it holds,
under a lock on the order row. A late refund, an early cancellation or a duplicate lands in the same state.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from plugin import ledger
from plugin.db import insert_for
from plugin.models import Member, Order, Refund, Shop, utcnow
from plugin.programme import earning as program
from plugin.programme import events, explanations, order_facts
from plugin.programme import rules as earning_rules
from plugin.programme.rules.core import MemberTier
from plugin.programme.settings import program_settings
from plugin.services import announcements, member_rules, order_sales, products, rule_sets, shops, tiers
from plugin.services.imports import pending as imported_balances

CORRECTION_SOURCE = "tier_correction"  # postings' source_type when an order's tier share is corrected


class LedgerConflict(Exception):
    """An order's postings disagree with its held points: stop rather than post something wrong."""


def apply(session: Session, shop: Shop, event: events.Event) -> int:
    """Apply one event in the caller's transaction; returns the points posted (signed, 0 if none)."""
    # The order row's changes are written in one UPDATE rather than at every query's autoflush: no query
    # here reads them back (the claw-back query, which could, flushes first). Earlier events' changes are
    # flushed now, before the order's row is locked and read again.
    session.flush()
    with session.no_autoflush:
        return _apply(session, shop, event)


def _apply(session: Session, shop: Shop, event: events.Event) -> int:
    handler = HANDLERS.get(type(event))
    if handler is None:
        raise TypeError(f"no handler for {type(event).__name__}")
    return handler(session, shop, event)


def _customer(session: Session, shop: Shop, event: events.CustomerCreated) -> int:
    _enrol_customer(session, shop, event.customer)
    return 0


def _enrol_customer(session: Session, shop: Shop, customer: events.Customer) -> int:
    member_id = enrol(session, shop.id, customer)
    if customer.metafields:  # the merchant may map a birthday metafield
        from plugin.services.milestones import birthdays  # late: accrual's imports stay light

        birthdays.from_metafields(session, shop, member_id, customer.metafields)
    return member_id


def _customer_created(session: Session, shop: Shop, event: events.CustomerCreated) -> int:
    """A new customer account: enrol them, and greet them with the signup bonus (once ever, whatever repeats)."""
    from plugin.services.milestones import rules as milestones  # late: accrual's imports stay light

    return milestones.signup(session, shop, _enrol_customer(session, shop, event.customer))


def _refunded(session: Session, shop: Shop, event: events.OrderRefunded) -> int:
    order = _lock_order(session, shop.id, event.refund.order_id)
    _record_refund(session, shop.id, event.refund)
    return _settle(session, shop, order, source=("refund", str(event.refund.refund_id)))


def _order(session: Session, shop: Shop, snapshot: events.OrderSnapshot) -> Order:
    order = _lock_order(session, shop.id, snapshot.order_id)
    if shop.currency is None:
        shop.currency = snapshot.currency
    _record_snapshot(session, shop, order, snapshot)
    return order


def _order_created(session: Session, shop: Shop, event: events.OrderCreated) -> int:
    order = _order(session, shop, event.order)
    order.created_seen = True
    return _settle(session, shop, order, ("order", str(event.order.order_id)))


def _order_paid(session: Session, shop: Shop, event: events.OrderPaid) -> int:
    order = _order(session, shop, event.order)
    if order.lot is None and order.facts is None:
        _earn(session, shop, order, event.order, event.paid_at)
    elif order.lot is None:
        _make_lot_from_facts(session, shop, order)  # still waiting for a product? try again
    return _settle(session, shop, order, ("order", str(event.order.order_id)))


def _order_cancelled(session: Session, shop: Shop, event: events.OrderCancelled) -> int:
    order = _order(session, shop, event.order)
    if order.cancelled_at is None:
        order.cancelled_at = event.order.cancelled_at or utcnow()
    return _settle(session, shop, order, ("cancellation", str(event.order.order_id)))


def _product_updated(session: Session, shop: Shop, event: events.ProductUpdated) -> int:
    return product_known(session, shop, event.product)


def _product_deleted(session: Session, shop: Shop, event: events.ProductDeleted) -> int:
    return product_known(session, shop, events.ProductFacts(event.product_id), deleted=True)


def product_known(session: Session, shop: Shop, product: events.ProductFacts, *, deleted: bool = False) -> int:
    """Cache a product's facts for this shop, then settle the orders that waited for them; returns points posted."""
    if deleted:
        products.mark_deleted(session, shop.id, product.product_id)
    else:
        products.upsert(session, shop.id, product)
    posted = 0
    for order_id in products.orders_waiting_for(session, shop.id, product.product_id):
        order = _lock_order(session, shop.id, order_id)
        if order.lot is None and order.facts is not None:
            _make_lot_from_facts(session, shop, order)
        if order.lot is not None:
            products.stop_waiting(session, shop.id, order_id)
            posted += _settle(session, shop, order, ("order", str(order_id)))
    return posted


# One handler per event type: a new event means a new entry here, not a longer if-ladder.
HANDLERS: dict[type, Callable[[Session, Shop, Any], int]] = {
    events.CustomerCreated: _customer_created,
    events.CustomerUpdated: _customer,
    events.OrderRefunded: _refunded,
    events.OrderCreated: _order_created,
    events.OrderPaid: _order_paid,
    events.OrderCancelled: _order_cancelled,
    events.ProductUpdated: _product_updated,
    events.ProductDeleted: _product_deleted,
}


def _earn(session: Session, shop: Shop, order: Order, snapshot: events.OrderSnapshot, paid_at: datetime) -> None:
    """Keep the paid order's facts, and make its lot under the shop's current rules if every fact is known."""
    rules = earning_rules.rule_set(shop.rules, shop.rules_version)
    tags = _member_tags(session, shop, order, snapshot, rules)
    # The tier the member held as this order was paid (before it counted), from every fact known now: a fact of
    # the order, like its tags, corrected when an earlier order arrives later (services/tier_corrections.py).
    tier = tiers.tier_when_paid(session, shop, order.member_id, order.order_id, paid_at)
    order.paid_at = paid_at
    order.facts = order_facts.to_json(
        snapshot, paid_at, rules.version, tags, tier, shop.tiers_version if tiers.programme(shop) else None
    )
    order_sales.record(session, shop.id, order, snapshot)  # the reports' AOV, repeat purchase and ROI read these
    tiers.note_purchase(session, shop, order, snapshot, paid_at)
    _make_lot(session, shop, order, snapshot, paid_at, rules, tags, tier)


def _rules_of(session: Session, shop: Shop, version: int) -> earning_rules.RuleSet:
    if version == shop.rules_version:
        return earning_rules.rule_set(shop.rules, version)
    # paid under an earlier version: its lot is made under that version, whatever the rules are now
    return rule_sets.version(session, shop.id, version)


def correct_tier(session: Session, shop: Shop, order_id: int, tier: MemberTier | None, since: datetime | None) -> int:
    """Settle an order again under the tier the member held when it was paid, as later-known facts now say
    (services/tier_corrections.py): only the tier's share changes, by a new posting of the difference, through
    `settle` like a refund, so the spent-points policy applies. Returns the points posted."""
    order = _lock_order(session, shop.id, order_id)
    order.facts = order_facts.with_member_tier(order.facts, tier)
    if order.lot is None:
        return 0  # still waiting for a product: its lot will be made under the corrected tier
    lot = program.Lot.from_json(order.lot)
    version = int(order.facts["rules_version"])
    cap = None if lot.order_cap is not None else earning_rules.order_cap(_rules_of(session, shop, version))
    order.lot = program.retier(lot, tier, version, cap).to_json()
    label = order.name or explanations.detail("order", id=order.order_id)
    when = None if since is None else since.astimezone(shops.zone(shop)).date().isoformat()
    details = (
        explanations.detail("tier_corrected", order=label, name=tier.name, since=when)
        if tier is not None
        else explanations.detail("tier_corrected_none", order=label)
    )
    return settle(session, shop, order, (CORRECTION_SOURCE, str(order_id)), details=details)


def _make_lot_from_facts(session: Session, shop: Shop, order: Order) -> None:
    facts = order.facts
    version = int(facts["rules_version"])
    rules = _rules_of(session, shop, version)
    snapshot = order_facts.snapshot_from_json(order.order_id, facts)
    _make_lot(
        session, shop, order, snapshot, order_facts.paid_at(facts), rules, order_facts.member_tags(facts),
        order_facts.member_tier(facts),
    )  # fmt: skip


def _make_lot(
    session: Session,
    shop: Shop,
    order: Order,
    snapshot: events.OrderSnapshot,
    paid_at: datetime,
    rules: earning_rules.RuleSet,
    tags: frozenset[str],
    tier: MemberTier | None = None,
) -> None:
    cache: dict[int, earning_rules.Product] = {}
    if rules.needs_products:
        wanted = products.wanted(snapshot)
        cache = products.cached(session, shop.id, wanted)  # one query per order, only when a rule needs it
        missing = products.unknown(rules, wanted, cache)
        if missing:
            # Never guessed: the order earns once these products' facts arrive (webhook or Admin look-up).
            products.wait(session, shop.id, order.order_id, missing)
            return
    settings = program_settings(shop.settings, shop.settings_version)
    lot = program.build_lot(
        snapshot, settings, paid_at, has_member=order.member_id is not None, rules=rules, products=cache,
        member_tags=tags, member_tier=tier,
    )  # fmt: skip
    order.lot = lot.to_json()
    order.available_at = lot.available_at


def _member_tags(
    session: Session, shop: Shop, order: Order, snapshot: events.OrderSnapshot, rules: earning_rules.RuleSet
) -> frozenset[str]:
    """The member's customer tags: from the order's own customer when it carries them, else as last stored."""
    if snapshot.customer is not None and snapshot.customer.tags is not None:
        return snapshot.customer.tags
    if order.member_id is None or not rules.needs_member_tags:
        return frozenset()
    stored = session.execute(
        select(Member.tags).where(Member.shop_id == shop.id, Member.id == order.member_id)
    ).scalar_one_or_none()
    return frozenset(stored or ())


def enrol(session: Session, shop_id: int, customer: events.Customer) -> int:
    """Create the member, or refresh their contact details; returns the member id."""
    now = utcnow()
    insert = insert_for(session)(Member).values(
        shop_id=shop_id,
        customer_id=customer.customer_id,
        email=customer.email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        balance=0,
        enrolled_at=now,
    )
    # Literal values rather than `insert.excluded`, whose construction is slow; they are the same values.
    details: dict[str, Any] = {
        name: getattr(customer, name)
        for name in ("email", "first_name", "last_name")
        if getattr(customer, name) is not None
    }
    if customer.tags is not None:
        details["tags"] = sorted(customer.tags)
        insert = insert.values(tags=details["tags"])
    if details:  # rewritten only if a detail changed (decision 0059); the row is locked either way
        changed = or_(*(getattr(Member, name).is_distinct_from(value) for name, value in details.items()))
        insert = insert.on_conflict_do_update(index_elements=["shop_id", "customer_id"], set_=details, where=changed)
    else:
        insert = insert.on_conflict_do_nothing(index_elements=["shop_id", "customer_id"])
    created = session.execute(insert.returning(Member.id, Member.enrolled_at)).first()
    if created is None:  # an existing member left as it was returns no row
        return session.execute(
            select(Member.id).where(Member.shop_id == shop_id, Member.customer_id == customer.customer_id)
        ).scalar_one()
    member_id, enrolled_at = created
    if enrolled_at == now:  # a new member (an existing one keeps its enrolment time): imported points await them
        imported_balances.claim(session, shop_id, member_id, customer.customer_id, customer.email)
    return member_id


def _lock_order(session: Session, shop_id: int, order_id: int) -> Order:
    """Create the order row if it is new, and lock it, in one round trip.

    ON CONFLICT DO UPDATE locks the existing row as SELECT ... FOR UPDATE would, and RETURNING hands back
    its current state.
    """
    insert = insert_for(session)(Order).values(
        shop_id=shop_id, order_id=order_id, points_held=0, created_seen=False, updated_at=utcnow()
    )
    # A literal rather than `insert.excluded`, whose construction cost more than the statement's round trip.
    upsert = insert.on_conflict_do_update(
        index_elements=["shop_id", "order_id"], set_={"updated_at": utcnow()}
    ).returning(Order)
    return session.scalars(upsert, execution_options={"populate_existing": True}).one()


def _record_snapshot(session: Session, shop: Shop, order: Order, snapshot: events.OrderSnapshot) -> None:
    if snapshot.name and not order.name:
        order.name = snapshot.name
    if order.member_id is None:
        order.member_id = _member_for(session, shop, snapshot)
    for refund in snapshot.refunds:  # order payloads embed refunds made so far: facts like any other
        _record_refund(session, shop.id, refund)
    if snapshot.cancelled_at and order.cancelled_at is None:
        order.cancelled_at = snapshot.cancelled_at


def _member_for(session: Session, shop: Shop, snapshot: events.OrderSnapshot) -> int | None:
    if snapshot.customer is not None:
        return enrol(session, shop.id, snapshot.customer)
    settings = program_settings(shop.settings, shop.settings_version)
    if settings.guest_orders_earn_by_email and snapshot.email:
        # A guest checkout by someone who already has an account earns for that account.
        return session.execute(
            select(Member.id)
            .where(Member.shop_id == shop.id, Member.email == snapshot.email)
            .order_by(Member.id)
            .limit(1)
        ).scalar()
    return None


def _record_refund(session: Session, shop_id: int, refund: events.RefundFacts) -> None:
    facts = {
        "line_quantities": {str(line): qty for line, qty in refund.line_quantities.items()},
        "shipping": str(refund.shipping),
        # When the shop made it (not when it reached us): referrals tell "before the pending period ended" by it.
        "created_at": refund.created_at.isoformat() if refund.created_at else None,
    }
    session.execute(
        insert_for(session)(Refund)
        .values(shop_id=shop_id, order_id=refund.order_id, refund_id=refund.refund_id, facts=facts, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["shop_id", "refund_id"])
    )


def refund_facts(session: Session, shop_id: int, order_id: int) -> list[events.RefundFacts]:
    rows = session.scalars(select(Refund).where(Refund.shop_id == shop_id, Refund.order_id == order_id))
    return [
        events.RefundFacts(
            refund_id=row.refund_id,
            order_id=order_id,
            line_quantities={int(line): int(qty) for line, qty in row.facts["line_quantities"].items()},
            shipping=Decimal(row.facts["shipping"]),
        )
        for row in rows
    ]


def _settle(session: Session, shop: Shop, order: Order, source: tuple[str, str]) -> int:
    """Post the difference between what the order should hold and what it holds, then the member's rules'."""
    posted = settle(session, shop, order, source)
    if order.member_id is not None:
        member_rules.after_order_change(session, shop, order.member_id)
    return posted


def settle(
    session: Session,
    shop: Shop,
    order: Order,
    source: tuple[str, str],
    *,
    idempotency_key: str | None = None,
    actor: str = "system",
    note: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Bring the (locked) order to the points its facts say it should hold; returns the points posted.

    `details`: the posting's explanation as data when it is not the order's own (a tier correction)."""
    lot = program.Lot.from_json(order.lot) if order.lot else None
    refunds = refund_facts(session, shop.id, order.order_id)
    target = program.points_to_hold(lot, refunds, cancelled=order.cancelled_at is not None)
    if order.expired_points and lot is not None:
        # Expired points are gone for good: a refund takes back only what the order still holds (docs/expiry.md).
        target = min(target, max(lot.points - order.expired_points, 0))
    # Support staff's changes count like refunds: never below nothing, never above what the rules allow.
    target = max(min(target + order.support_delta, target), 0) + order.unpaid_reversal
    delta = target - order.points_held
    if delta == 0:
        return 0
    if order.member_id is None or lot is None:
        raise LedgerConflict(f"order {order.order_id} would move {delta} points without a lot or a member")
    policy = program_settings(shop.settings, shop.settings_version).spent_points_policy
    source_type, source_id = source
    # A note of support's own stays as written; the rules' explanation is also kept as data, for the shop's
    # language (a policy's English remark appended below is shown after it: explanations.localized).
    if details is not None:
        note = note or explanations.render(details)
    elif not note:
        details = _details(order, lot, delta)
    # Held points rise when the lot is made and mostly only fall, until a tier correction remakes the lot: the
    # corrections counted so far keep the next keys apart from earlier ones. A refund can lift them, though: a capped
    # lot's cap is a negative contribution, and each contribution keeps its share rounded toward zero (decision
    # 0017), so one refund can take an order from 1 to 0 and the next back to 1, the same move as its payment's. A
    # refund moves an order once at most, so its id keeps its move apart from every other (decision 0095).
    cause = f":refund:{source_id}" if source_type == "refund" else ""
    corrections = order_facts.tier_corrections(order.facts)
    epoch = f":t{corrections}" if corrections else ""
    key = idempotency_key or f"order:{order.order_id}:{order.points_held}->{target}{epoch}{cause}"
    forgiven = 0
    if delta < 0 and policy != "allow_negative":
        payable = max(_locked_balance(session, shop.id, order.member_id), 0)
        if -delta > payable:
            # The member spent these points already: take what is there; the rest is forgiven or owed.
            shortfall = -delta - payable
            owed = "owed from future earnings" if policy == "claw_back" else "forgiven"
            note = f"{note or _explain(order, lot, -1)}; {policy}: {shortfall} points already spent, {owed}"
            if policy == "claw_back":
                # Owed, not moved: the order keeps holding these points until later earnings pay them.
                order.unpaid_reversal += shortfall
                target, delta = target + shortfall, -payable
                if delta == 0:
                    order.points_held = target
                    return 0
            else:
                # stop_at_zero: the order gives back everything its facts say, and the shop forgives the
                # member what was spent, in a posting of its own. Forgiven first, so the balance never dips.
                forgiven = shortfall
                _post(
                    session,
                    shop,
                    order,
                    ledger.Entry(
                        member_id=order.member_id,
                        kind="forgive",
                        points=shortfall,
                        source_type=source_type,
                        source_id=source_id,
                        idempotency_key=f"{key}:forgive",
                        rule_version=lot.rule_version,
                        order_id=order.order_id,
                        note=f"{order.name or f'order {order.order_id}'}: stop_at_zero forgives {shortfall} "
                        "points already spent",
                        actor=actor,
                    ),
                )
    entry = ledger.Entry(
        member_id=order.member_id,
        kind="earn" if delta > 0 and source_type != "support" else ("adjust" if delta > 0 else "reverse"),
        points=delta,
        source_type=source_type,
        source_id=source_id,
        idempotency_key=key,
        rule_version=lot.rule_version,
        order_id=order.order_id,
        available_at=lot.available_at if delta > 0 else None,
        note=note or _explain(order, lot, delta),
        details=details,
        actor=actor,
    )
    _post(session, shop, order, entry)
    order.points_held = target
    if delta > 0 and policy == "claw_back":
        _claw_back(session, shop, order.member_id, delta, entry.idempotency_key)
    return delta + forgiven  # what the member's balance moved


def _post(session: Session, shop: Shop, order: Order, entry: ledger.Entry) -> None:
    posting_id = ledger.post(session, shop.id, entry)
    if posting_id is None:
        raise LedgerConflict(f"order {order.order_id}: posting {entry.idempotency_key} already exists")
    announcements.posting(session, shop.id, posting_id, order_name=order.name)


def _locked_balance(session: Session, shop_id: int, member_id: int) -> int:
    return session.execute(
        select(Member.balance).where(Member.shop_id == shop_id, Member.id == member_id).with_for_update()
    ).scalar_one()


def _claw_back(session: Session, shop: Shop, member_id: int, earned: int, earning_key: str) -> None:
    """New earnings first pay back reversals the member could not pay, oldest order first. `earning_key`: the
    earning posting's key, which keys these too: an owed order's held points can come back to where an earlier
    claw-back took them from (a refund lifting a capped order, decision 0095; a tier correction), and a claw-back
    keyed by its move alone then repeated the earlier one's key (decision 0096)."""
    session.flush()  # the orders' held and unpaid points, as this transaction has changed them
    owing = session.scalars(
        select(Order)
        .where(Order.shop_id == shop.id, Order.member_id == member_id, Order.unpaid_reversal > 0)
        .order_by(Order.id)
        .with_for_update()
    ).all()
    available = min(earned, max(_locked_balance(session, shop.id, member_id), 0))
    for owed in owing:
        take = min(owed.unpaid_reversal, available)
        if take <= 0:
            break
        entry = ledger.Entry(
            member_id=member_id,
            kind="reverse",
            points=-take,
            source_type="order",
            source_id=str(owed.order_id),
            idempotency_key=(
                f"order:{owed.order_id}:clawback:{owed.points_held}->{owed.points_held - take}:for:{earning_key}"
            ),
            rule_version=(owed.lot or {}).get("rule_version", "claw_back"),
            order_id=owed.order_id,
            note=f"{owed.name or owed.order_id}: claw_back of {take} points spent before a reversal",
        )
        _post(session, shop, owed, entry)
        owed.unpaid_reversal -= take
        owed.points_held -= take
        available -= take


def _explain(order: Order, lot: program.Lot, delta: int) -> str:
    """The posting's note: its explanation in English, as support has always read it."""
    return explanations.render(_details(order, lot, delta)) or ""


def explained(order: Any, lot: program.Lot, delta: int, lot_text: str | None) -> tuple[dict[str, Any], str]:
    """The posting's details and note (_details and _explain) from one build of the details; `lot_text`: the lot's
    English explanation (its JSON's "explanation") when already rendered, which the note then wraps as it is.

    The same strings: a parameter that is details renders to that text, and text is shown as given
    (explanations._param), so only the lot's own rendering is saved."""
    details = _details(order, lot, delta)
    shown = details
    if lot_text is not None and details.get("lot") is lot.details and "key" in lot.details:
        shown = {**details, "lot": lot_text}
    return details, explanations.render(shown) or ""


def _details(order: Order, lot: program.Lot, delta: int) -> dict[str, Any]:
    """The posting's explanation as data, rendered in the shop's language wherever it is shown."""
    label = order.name or explanations.detail("order", id=order.order_id)
    if delta > 0 and lot.details:
        return explanations.detail("order_earned", order=label, lot=lot.details)
    if delta > 0:
        return explanations.detail(
            "order_earned_rate", order=label, points=lot.earn_points, per_amount=str(lot.earn_per_amount)
        )
    if order.cancelled_at is not None:
        return explanations.detail("order_cancelled", order=label)
    return explanations.detail("order_refunded", order=label)
