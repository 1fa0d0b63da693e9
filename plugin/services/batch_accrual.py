"""Set-based apply: a batch's new orders and first settlements of paid orders, in a few multi-row statements.

The points are computed in Python exactly as one by one (the same rules, lots, keys and explanations, through
accrual's own helpers); only the writes are batched: one upsert of the members, one INSERT of the orders (their
facts and lots, with every contribution), one UPDATE of the rows their orders/create made in an earlier batch,
one INSERT of the postings per round (the database's triggers still set `balance_after` and move the balances,
and refuse two postings of one member in one statement, so a member's second order of the batch goes in the next
round), and one INSERT of their points.earned events per round.

Only orders whose outcome needs nothing but the order itself and its member's stored facts take this path; the rest
of the batch goes one by one afterwards (decision 0037). In a shop with tiers or milestones, the paid orders go in
rounds of one order per member, and each round's member rules run after its bulk write, as one by one runs them
after each order (decisions 0039 and 0041). Any failure raises: the caller rolls the batch back and redoes it
carefully.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, bindparam, func, null, or_, select, update
from sqlalchemy.orm import Session

from plugin.bulk_insert import insert_rows
from plugin.db import among, dialect_insert
from plugin.models import (
    Member,
    MilestoneSettings,
    Order,
    Posting,
    Redemption,
    ReferralSettings,
    Refund,
    Shop,
    utcnow,
)
from plugin.programme import earning as program
from plugin.programme import events, order_facts
from plugin.programme import rules as earning_rules
from plugin.programme import tiers as tier_rules
from plugin.programme.rules.core import MemberTier
from plugin.programme.settings import ProgramSettings, program_settings
from plugin.services import accrual, announcements, lot_reads, member_rules, order_sales, outbox, products, tiers
from plugin.services.imports import pending as imported_balances
from plugin.services.imports.tables import PENDING, ImportRow
from plugin.services.shops import zone

if TYPE_CHECKING:
    # annotations only: member_facts' imports stay out of accrual's
    from plugin.services.member_facts import MemberFacts


class BatchConflict(Exception):
    """A row the batch meant to create exists already (another worker was first): redo the batch carefully."""


@dataclass(frozen=True)
class Item:
    """One delivery of the batch, in batch order: its key, the shopper it sorts by, and its event if readable."""

    key: int
    customer_id: int | None
    event: events.Event | None


def apply(session: Session, shop: Shop, items: list[Item]) -> dict[int, int]:
    """Apply the items this path fully understands; returns {key: customer id} of those applied.

    An orders/paid qualifies when the shop has no referrals and no claw-back, every product its rules need facts
    about is cached, it arrives without refunds or a cancellation, its order is new (no row yet: an INSERT) or,
    in a shop without tiers or milestones, was made by its orders/create alone (earlier in the batch: one INSERT
    with both; in an earlier batch, a row with no lot, facts, refunds or points: an UPDATE), and it comes before
    any delivery of the same shopper that goes one by one, so that every member sees its deliveries in the batch's
    order, as one by one. An orders/create qualifies on the same terms when its order is new and the shop has no
    tiers or milestones: its row holds the member and no lot. With tiers or milestones, a member's paid orders
    are written in rounds, one order per member per round, each round's member rules run after its write.
    """
    if not takes_part(session, shop):
        return {}
    # The milestone programme, read once for the whole batch: every round's member facts and rules take it (two
    # reads and copies a round before, about 30 us an order). Its row is held for the batch, so the members who go
    # through the rules' own code read this same version from the session, not a newer one saved meanwhile.
    _held_row, milestone_programme = _milestone_programme(session, shop)  # the row held until the batch ends
    member_level = _member_level(shop, milestone_programme)
    rules = earning_rules.rule_set(shop.rules, shop.rules_version)
    settings = program_settings(shop.settings, shop.settings_version)
    # Orders the batch names that exist already, with their member's shopper: a delivery of such an order goes
    # one by one, and may move that member's points, so that member's later deliveries wait behind it; unless
    # it is the orders/paid of a row an orders/create made and nothing else touched (`blank`).
    named = {snapshot.order_id for snapshot in map(_snapshot, items) if snapshot is not None}
    existing, blank = _existing(session, shop, named)
    known: dict[int, earning_rules.Product] = {}
    held_back: set[int] = set()
    if rules.needs_products:
        known, held_back = _product_facts(session, shop, items, rules)
    # The orders/create of new orders, by order id. Not with tiers or milestones: one by one runs the member rules
    # after an orders/create too, and _rounds counts paid orders only.
    created: dict[int, Item] | None = None if member_level else {}
    blank = {} if member_level else blank
    chosen = _choose(items, rules, existing, held_back, blank, created)
    created = created or {}
    if not chosen and not created:
        return {}
    if shop.currency is None:
        # One by one, the batch's first order names the shop's currency: here only if that order is one of ours.
        first = _snapshot(items[0])
        ours = (chosen.get(first.order_id), created.get(first.order_id)) if first is not None else ()
        if all(item is not items[0] for item in ours):
            return {}
        shop.currency = first.currency
    members = _enrol(session, shop, [item.event.order.customer for item in _enrolling(items, chosen, created, blank)])
    codes = _reward_codes(session, shop, chosen.values())
    # With tiers or milestones, in rounds of one order per member (decision 0041): a member's next order's tier
    # when paid, punches and thresholds depend on the one before, which its round writes, member rules and all.
    tiers_version = shop.tiers_version if tiers.programme(shop) else None  # what each order's facts name
    batch = Batch(shop, rules, settings, codes, known, members, member_level, tiers_version, milestone_programme)
    for number, round_ in enumerate(_rounds(items, chosen) if member_level else [chosen]):
        batch.write(session, round_, created if number == 0 else {}, blank)
    applied = {item.key: item.customer_id for item in created.values()}
    return applied | {item.key: item.customer_id for item in chosen.values()}


@dataclass(frozen=True)
class Batch:
    """What every round of the batch settles its orders with: the shop, its rules and settings, the batch's reward
    codes, cached products and members, whether the shop has member rules, its tier programme's version (None
    without tiers) and its milestone programme (milestones.settings.current's)."""

    shop: Shop
    rules: earning_rules.RuleSet
    settings: ProgramSettings
    codes: set[str]
    known: dict[int, earning_rules.Product]
    members: dict[int, int]
    member_level: bool
    tiers_version: int | None
    milestone_programme: dict[str, Any]

    def write(
        self,
        session: Session,
        chosen: dict[int, Item],
        created: dict[int, Item],
        blank: dict[int, BlankOrder],
    ) -> None:
        """Write these paid orders (at most one per member with member rules, whose rules then run) and these
        orders/create, their postings and events."""
        shop, members = self.shop, self.members
        # With member rules, the round's members' facts are read once, before their orders (decision 0066): the
        # orders' tier when paid is worked out from them, and the rules after the write take them with the
        # round's new orders added in Python.
        facts, paid_tiers, quals = None, {}, {}
        if self.member_level:
            round_members = [members[item.customer_id] for item in chosen.values()]
            facts = _member_facts(session, shop, round_members, self.milestone_programme)
            paid_tiers, quals = _tiers_when_paid(shop, chosen.values(), members, facts)
        orders, updates, postings, names = [], [], [], {}
        for item in chosen.values():
            snapshot = item.event.order
            if snapshot.order_id in blank:  # its row, made by an orders/create in an earlier batch
                row = blank[snapshot.order_id]
                name = snapshot.name if snapshot.name and not row.name else row.name
                member_id = row.member_id
            elif snapshot.order_id in created:  # its orders/create came earlier in this batch
                name = created[snapshot.order_id].event.order.name or snapshot.name or None
                member_id = members[item.customer_id]
            else:
                name, member_id = snapshot.name or None, members[item.customer_id]
            order_row, posting = _settle(
                shop, item.event, member_id, self.rules, self.settings, self.codes, paid_tiers.get(item.customer_id),
                self.known, name, self.tiers_version,
            )  # fmt: skip
            order_row["created_seen"] = snapshot.order_id in created
            if snapshot.order_id in blank:
                updates.append(_update_of(order_row, blank[snapshot.order_id]))
                names[snapshot.order_id] = name
            else:
                orders.append(order_row)
            if posting is not None:
                postings.append(posting)
        orders += [_created(shop, item, members) for order_id, item in created.items() if order_id not in chosen]
        if orders:
            inserted = _insert_orders(session, orders)
            if len(inserted) != len(orders):
                raise BatchConflict(f"{len(orders) - len(inserted)} of the batch's orders exist already")
        if updates:
            updated = session.connection().execute(_order_update(session), _sums_kept(session, updates)).rowcount
            if updated != len(updates):
                raise BatchConflict(f"{len(updates) - updated} of the batch's orders changed since they were read")
        if self.member_level:
            _note_purchases(session, shop, chosen.values(), members)
        _post(session, shop, postings, {row["order_id"]: row["name"] for row in orders} | names)
        if not self.member_level:
            return
        # One by one runs the member rules right after each order's earn posting; each member has one order in
        # this round, so running them now gives every member the same postings in the same sequence
        # (balance_after, notes and events included).
        new_orders = [row for row in orders if row["paid_at"] is not None]
        member_ids = [members[item.customer_id] for item in chosen.values()]
        _member_rules(session, shop, member_ids, facts, new_orders, quals, self.milestone_programme)


@dataclass(frozen=True)
class BlankOrder:
    """An order row an orders/create made, holding no lot, no facts, no refunds, no points: its orders/paid may
    take this path, as an UPDATE (optimistic: only if the row is still as read, `updated_at` included)."""

    member_id: int
    name: str | None
    updated_at: datetime


def _existing(session: Session, shop: Shop, named: set[int]) -> tuple[dict[int, int | None], dict[int, BlankOrder]]:
    """The named orders that exist, with their member's customer id; and those of them that are blank."""
    if not named:
        return {}, {}
    refunded = select(Refund.id).where(Refund.shop_id == Order.shop_id, Refund.order_id == Order.order_id).exists()
    blank = (
        Order.lot.is_(None) & Order.facts.is_(None) & Order.paid_at.is_(None) & Order.cancelled_at.is_(None)
        & (Order.points_held == 0) & (Order.support_delta == 0) & (Order.unpaid_reversal == 0)
        & (Order.expired_points == 0) & Order.member_id.is_not(None) & ~refunded
    )  # fmt: skip
    rows = session.execute(
        select(Order.order_id, Member.customer_id, blank, Order.member_id, Order.name, Order.updated_at)
        .outerjoin(Member, (Member.shop_id == Order.shop_id) & (Member.id == Order.member_id))
        .where(Order.shop_id == shop.id, among(session, Order.order_id, named))
    ).all()
    existing = {order_id: customer_id for order_id, customer_id, *_ in rows}
    blanks = {row[0]: BlankOrder(row[3], row[4], row[5]) for row in rows if row[2]}
    return existing, blanks


def _enrolling(
    items: list[Item], chosen: dict[int, Item], created: dict[int, Item], blank: dict[int, BlankOrder]
) -> list[Item]:
    """The items whose shopper is enrolled, in batch order: a new order's first delivery. An orders/paid of an
    order that has its member already (its orders/create's) enrols nobody, as accrual._record_snapshot."""
    enrolling = []
    for item in items:
        snapshot = _snapshot(item)
        if snapshot is None or snapshot.order_id in blank:
            continue
        first = created.get(snapshot.order_id) or chosen.get(snapshot.order_id)
        if first is item:
            enrolling.append(item)
    return enrolling


def _created(shop: Shop, item: Item, members: dict[int, int]) -> dict:
    """The row accrual._order_created makes for a new order: its member and name, no lot, no points."""
    snapshot = item.event.order
    return {
        "shop_id": shop.id, "order_id": snapshot.order_id, "name": snapshot.name or None,
        "member_id": members[item.customer_id], "created_seen": True, "paid_at": None, "cancelled_at": None,
        "lot": null(), "points_held": 0, "support_delta": 0, "unpaid_reversal": 0, "expired_points": 0,
        "available_at": None, "updated_at": utcnow(), "facts": null(), "sales": None, "reward_code": None,
        **dict.fromkeys(_SUMS),
    }  # fmt: skip


_SUMS = ("lot_eligible", "lot_shipping_tip", "lot_tier_points", "lot_reasoned")  # lot_reads.sums, as stored
_UPDATED = ("name", "paid_at", "lot", "points_held", "available_at", "updated_at", "facts", "sales", "reward_code",
            *_SUMS)  # fmt: skip


def _update_of(order_row: dict, blank: BlankOrder) -> dict:
    """The paid order's values for the UPDATE of its blank row, keyed as _order_update_for binds them."""
    return {
        "b_shop": order_row["shop_id"], "b_order": order_row["order_id"], "b_seen": blank.updated_at,
        **{name: order_row[name] for name in _UPDATED},
    }  # fmt: skip


# The member-level rules (member_rules.registered) this path knows: member_rules_batch runs the first three itself,
# and the referral rule does nothing in a shop that passes takes_part. A rule added there turns this path off
# until it is added here (and to member_rules_batch) with its test.
KNOWN_MEMBER_RULES = (
    "plugin.services.tiers.after_order_change",
    "plugin.services.tier_corrections.after_order_change",
    "plugin.services.milestones.rules.recompute",
    "plugin.services.referrals.outcomes.after_order_change",
)


@lru_cache(maxsize=1)
def _member_rules_known() -> bool:
    return tuple(f"{rule.__module__}.{rule.__qualname__}" for rule in member_rules.registered()) == KNOWN_MEMBER_RULES


def takes_part(session: Session, shop: Shop) -> bool:
    """Whether the shop's orders may take this path: the member rules are the ones this path knows, no referral
    settings (a friend's order moves the advocate, another member), no claw-back. Rules needing product facts take
    part: an order whose products are not all cached goes one by one (_product_facts)."""
    if program_settings(shop.settings, shop.settings_version).spent_points_policy == "claw_back":
        return False
    return _member_rules_known() and session.get(ReferralSettings, shop.id) is None


def has_member_rules(session: Session, shop: Shop) -> bool:
    """Whether an order can move a member-level rule in this shop (a tier programme, milestones): then each member
    takes one order here and its rules run after the bulk write; else every rule in member_rules is a no-op."""
    return _member_level(shop, _milestone_programme(session, shop)[1])


def _member_level(shop: Shop, milestone_programme: dict[str, Any]) -> bool:
    from plugin.services.milestones import settings as milestones  # late, as accrual: its imports stay light

    return tiers.programme(shop) is not None or milestones.any_rules(milestone_programme)


def has_milestones(session: Session, shop: Shop) -> bool:
    """Whether milestones.rules.recompute does anything in this shop (its own test)."""
    from plugin.services.milestones import settings as milestones

    return milestones.any_rules(_milestone_programme(session, shop)[1])


def _milestone_programme(session: Session, shop: Shop) -> tuple[MilestoneSettings | None, dict[str, Any]]:
    """The shop's milestone settings row (None: never saved) and its programme, milestones.settings.current's."""
    from plugin.services.milestones import settings as milestones  # late, as accrual: its imports stay light

    row = session.get(MilestoneSettings, shop.id)
    return row, milestones.of_row(row)


def _snapshot(item: Item) -> events.OrderSnapshot | None:
    return getattr(item.event, "order", None)


def _choose(
    items: list[Item],
    rules: earning_rules.RuleSet,
    existing: dict[int, int | None],
    held_back: set[int] = frozenset(),
    blank: dict[int, BlankOrder] | None = None,
    created: dict[int, Item] | None = None,
) -> dict[int, Item]:
    """The qualifying paid items by order id, in batch order: for each member, the part before any one-by-one
    delivery. With `created` given, the qualifying orders/create items go there, by order id.

    `existing` maps the orders that exist already to their member's customer id; `held_back` holds the keys of
    paid orders that go one by one for their products (_product_facts). An existing order qualifies only when
    `blank` holds it (its orders/create came in an earlier batch), an order of `created` only for its shopper.
    """
    blank = {} if blank is None else blank
    creates = created is not None
    created = {} if created is None else created
    chosen: dict[int, Item] = {}
    one_by_one: set[int | None] = set()  # shoppers, and below orders, that a one-by-one delivery came to first
    orders_one_by_one: set[int] = set()
    for item in items:
        snapshot = _snapshot(item)
        kind = type(item.event)
        if kind is events.OrderRefunded:  # its order's later deliveries, and its member's, wait behind it
            _one_by_one(item.event.refund.order_id, existing, created, chosen, one_by_one, orders_one_by_one)
        if (
            not (kind is events.OrderPaid or (creates and kind is events.OrderCreated))
            or item.customer_id in one_by_one
            or snapshot.order_id in orders_one_by_one
            or snapshot.customer is None
            or snapshot.customer.customer_id != item.customer_id
            or snapshot.refunds
            or snapshot.cancelled_at is not None
            or snapshot.order_id in chosen
            or (snapshot.order_id in existing and (kind is not events.OrderPaid or snapshot.order_id not in blank
                                                   or existing[snapshot.order_id] != item.customer_id))
            or (snapshot.order_id in created and (kind is not events.OrderPaid
                                                  or created[snapshot.order_id].customer_id != item.customer_id))
            or (kind is events.OrderPaid and rules.needs_member_tags and snapshot.customer.tags is None)
            or item.key in held_back
        ):  # fmt: skip
            one_by_one.add(item.customer_id)
            if snapshot is not None:
                _one_by_one(snapshot.order_id, existing, created, chosen, one_by_one, orders_one_by_one)
            continue
        if kind is events.OrderCreated:
            created[snapshot.order_id] = item
        else:
            chosen[snapshot.order_id] = item
    return chosen


def _one_by_one(
    order_id: int,
    existing: dict[int, int | None],
    created: dict[int, Item],
    chosen: dict[int, Item],
    one_by_one: set[int | None],
    orders_one_by_one: set[int],
) -> None:
    """A delivery of this order goes one by one: so do the order's later deliveries, and its member's (the
    order's member is whoever paid or created it first, maybe another shopper than the delivery's)."""
    orders_one_by_one.add(order_id)
    if order_id in existing:
        one_by_one.add(existing[order_id])
    for earlier in (created.get(order_id), chosen.get(order_id)):
        if earlier is not None:
            one_by_one.add(earlier.customer_id)


def _product_facts(
    session: Session, shop: Shop, items: list[Item], rules: earning_rules.RuleSet
) -> tuple[dict[int, earning_rules.Product], set[int]]:
    """The cached facts of the batch's products (one query), and the keys of the paid orders that go one by one
    for them: an order naming a product not known yet waits for it (accrual._make_lot), and an order after a
    product delivery of the batch would see that delivery's facts one by one, not the facts read here."""
    paid = [item for item in items if type(item.event) is events.OrderPaid]
    cache = products.cached(session, shop.id, {pid for item in paid for pid in products.wanted(item.event.order)})
    held_back: set[int] = set()
    moved = False
    for item in items:
        if isinstance(item.event, (events.ProductUpdated, events.ProductDeleted)):
            moved = True
        elif type(item.event) is events.OrderPaid and (
            moved or products.unknown(rules, products.wanted(item.event.order), cache)
        ):
            held_back.add(item.key)
    return cache, held_back


def _rounds(items: list[Item], chosen: dict[int, Item]) -> list[dict[int, Item]]:
    """The chosen items in rounds, each member's n-th in the n-th, in batch order within each round.

    A member rule reads the member's history after each order, and the next order's tier depends on it: with one
    order per member in a round, the rules can run once per member after the round's bulk write, and the member's
    next order is settled in the next round from what that wrote, in the same sequence as one by one."""
    rounds: list[dict[int, Item]] = []
    seen: dict[int | None, int] = {}
    for item in items:
        snapshot = _snapshot(item)
        if snapshot is None or chosen.get(snapshot.order_id) is not item:
            continue
        n = seen.get(item.customer_id, 0)
        seen[item.customer_id] = n + 1
        if n == len(rounds):
            rounds.append({})
        rounds[n][snapshot.order_id] = item
    return rounds


def _tiers_when_paid(
    shop: Shop, chosen, members: dict[int, int], facts: MemberFacts
) -> tuple[dict[int, MemberTier | None], dict[int, list[tier_rules.Qualification]]]:
    """tiers.tier_when_paid for every chosen order at once, by customer id, from the round's member facts; and the
    qualifications it worked them out from, by member id (member_rules_batch.run goes on from them).

    Read before the orders are written, as one by one reads them before its order has a lot."""
    current = tiers.programme(shop)
    if current is None:
        return {}, {}
    shop_zone = zone(shop)
    found, quals = {}, {}
    for item in chosen:
        order_id, member_id = item.event.order.order_id, members[item.customer_id]
        known = facts.tier_known(member_id)
        quals[member_id] = tier_rules.qualifications(current, known[0], shop_zone)
        held = tier_rules.tiers_at_payments(
            current, *known, shop_zone, [(order_id, item.event.paid_at)], quals[member_id]
        )
        found[item.customer_id] = tiers.as_member_tier(current, held[order_id][0])
    return found, quals


def _note_purchases(session: Session, shop: Shop, chosen, members: dict[int, int]) -> None:
    """tiers.note_purchase for every chosen order (a paid tier's purchase; nothing without a paid tier)."""
    current = tiers.programme(shop)
    if current is None or current.paid is None:
        return
    for item in chosen:
        order = SimpleNamespace(member_id=members[item.customer_id], order_id=item.event.order.order_id)
        tiers.note_purchase(session, shop, order, item.event.order, item.event.paid_at)


def _member_facts(session: Session, shop: Shop, member_ids: list[int], programme: dict[str, Any]) -> MemberFacts:
    """The round's members' facts before its orders, under their locks (services/member_rules_batch.py), given the
    milestone programme."""
    from plugin.services import member_rules_batch  # late, as member_rules: accrual's imports stay light

    return member_rules_batch.read(session, shop, member_ids, programme)


def _member_rules(
    session: Session,
    shop: Shop,
    member_ids: list[int],
    facts: MemberFacts,
    new_orders: list[dict],
    quals: dict[int, list[tier_rules.Qualification]],
    programme: dict[str, Any],
) -> None:
    """member_rules.after_order_change for each member, set-based where it can be (services/member_rules_batch.py),
    from the facts read before the round, the round's new order rows, the qualifications of those facts and the
    milestone programme."""
    from plugin.services import member_rules_batch

    member_rules_batch.run(session, shop, member_ids, facts, new_orders, quals, programme)


def _enrol(session: Session, shop: Shop, customers: list[events.Customer]) -> dict[int, int]:
    """accrual.enrol for every shopper of the batch at once; returns {customer id: member id}.

    Each field keeps the last value the batch gave it (a None leaves it as it was), as successive enrolments
    do. Shoppers go in customer order, so two workers lock member rows in the same order. Customers whose
    payload carried tags and those whose payload did not are upserted apart, since an absent tag list must leave
    the stored one alone.
    """
    merged: dict[int, dict] = {}
    for customer in customers:
        row = merged.setdefault(customer.customer_id, {"customer_id": customer.customer_id})
        for name in ("email", "first_name", "last_name"):
            value = getattr(customer, name)
            if value is not None or name not in row:
                row[name] = value if value is not None else row.get(name)
        if customer.tags is not None:
            row["tags"] = sorted(customer.tags)
    now = utcnow()
    member_ids: dict[int, int] = {}
    new_members: list[tuple[int, int, str | None]] = []
    with_tags = [row for _, row in sorted(merged.items()) if "tags" in row]
    without_tags = [row for _, row in sorted(merged.items()) if "tags" not in row]
    for rows, tagged in ((with_tags, True), (without_tags, False)):
        if not rows:
            continue
        returned = _upsert_members(
            session, [{**row, "shop_id": shop.id, "balance": 0, "enrolled_at": now} for row in rows], tagged
        )
        for member_id, customer_id, enrolled_at in returned:
            member_ids[customer_id] = member_id
            if enrolled_at == now:
                new_members.append((member_id, customer_id, merged[customer_id]["email"]))
    unchanged = [customer_id for customer_id in merged if customer_id not in member_ids]
    if unchanged:  # members the upsert locked but left as they were: it returns no row for them
        member_ids.update(
            session.execute(
                select(Member.customer_id, Member.id).where(
                    Member.shop_id == shop.id, among(session, Member.customer_id, unchanged)
                )
            ).all()
        )
    if new_members and _imports_pending(session, shop):
        for member_id, customer_id, email in new_members:  # imported points await them (rare: one by one)
            imported_balances.claim(session, shop.id, member_id, customer_id, email)
    return member_ids


def _imports_pending(session: Session, shop: Shop) -> bool:
    return (
        session.execute(
            select(ImportRow.id).where(ImportRow.shop_id == shop.id, ImportRow.status == PENDING)
            .limit(1)
        ).first()
        is not None
    )  # fmt: skip


def _reward_codes(session: Session, shop: Shop, chosen) -> set[str]:
    """The batch's discount codes that are loyalty rewards (order_sales.record, for every order in one query)."""
    codes = {code for item in chosen for code in item.event.order.discount_codes if code}
    if not codes:
        return set()
    return set(
        session.scalars(select(Redemption.code).where(Redemption.shop_id == shop.id, Redemption.code.in_(codes)))
    )


def _settle(
    shop: Shop, event: events.OrderPaid, member_id: int, rules, settings, reward_codes: set[str],
    tier: MemberTier | None, known: dict | None, name: str | None, tiers_version: int | None,
):  # fmt: skip
    """The new order's row and its earn posting (None when it earns nothing), as accrual._order_paid makes them;
    `known`: the cached facts of the batch's products, every one this order names (when its rules need them);
    `name`: the order's name as its deliveries so far leave it; `tiers_version`: the shop's tier programme's
    version, None without tiers (worked out once a batch: tiers.programme serialises the settings each call)."""
    snapshot, paid_at = event.order, event.paid_at
    tags = snapshot.customer.tags if snapshot.customer.tags is not None else frozenset()
    lot = program.build_lot(
        snapshot, settings, paid_at, has_member=True, rules=rules, products=known or {}, member_tags=tags,
        member_tier=tier,
    )  # fmt: skip
    target = max(program.points_to_hold(lot, [], cancelled=False), 0)
    now = utcnow()
    lot_json = lot.to_json()
    sums = lot_reads.sums(lot_json)  # stored with the lot: the member rules' reads need not sum its JSON (0094)
    order = {
        "shop_id": shop.id, "order_id": snapshot.order_id, "name": name, "member_id": member_id,
        "created_seen": False, "paid_at": paid_at, "cancelled_at": None, "lot": lot_json,
        "points_held": target, "support_delta": 0, "unpaid_reversal": 0, "expired_points": 0,
        "available_at": lot.available_at, "updated_at": now,
        "facts": order_facts.to_json(snapshot, paid_at, rules.version, tags, tier, tiers_version),
        "sales": order_sales.sales_of(snapshot),
        "reward_code": next((code for code in snapshot.discount_codes if code in reward_codes), None),
        "lot_eligible": sums.eligible, "lot_shipping_tip": sums.shipping_tip, "lot_tier_points": sums.tier_points,
        "lot_reasoned": sums.reasoned,
    }  # fmt: skip
    if target == 0:
        return order, None
    described = SimpleNamespace(name=order["name"], order_id=snapshot.order_id, cancelled_at=None)
    # The note wraps the lot's explanation, rendered once for the lot's JSON (a lot without contributions has none
    # there, and is rendered again).
    details, note = accrual.explained(described, lot, target, lot_json.get("explanation"))
    posting = {
        "shop_id": shop.id, "member_id": member_id, "kind": "earn", "points": target,
        "source_type": "order", "source_id": str(snapshot.order_id), "order_id": snapshot.order_id,
        "rule_version": lot.rule_version, "idempotency_key": f"order:{snapshot.order_id}:0->{target}",
        "available_at": lot.available_at, "note": note,
        "details": details, "actor": "system", "created_at": now, "balance_after": 0,
        # what SQLite's statement reads balance_after with (_posting_insert_for)
        "after_points": target, "after_shop": shop.id, "after_member": member_id,
    }  # fmt: skip
    return order, posting


def _post(session: Session, shop: Shop, postings: list[dict], names: dict[int, str | None]) -> None:
    """Insert the postings and their points.earned events, one round per statement, one posting per member each."""
    rounds: list[list[dict]] = []
    seen: dict[int, int] = {}
    for posting in postings:
        n = seen.get(posting["member_id"], 0)
        seen[posting["member_id"]] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(posting)
    for round_ in rounds:
        written = insert_postings(session, round_)
        if len(written) != len(round_):
            raise BatchConflict(f"{len(round_) - len(written)} of the batch's postings exist already")
        _announce(session, shop, written, names)


def _announce(session: Session, shop: Shop, written, names: dict[int, str | None]) -> None:
    """announcements.posting for each written posting: its points.earned event, keyed by the posting."""
    recorded = []
    for row in written:
        event_type, data = announcements.event_of(row)
        recorded.append(
            {
                "event_type": event_type,
                "dedupe_key": announcements.dedupe_key(event_type, row.id),
                "data": {**data, "order_name": names[row.order_id]},
                "member_id": row.member_id,
                "occurred_at": row.created_at,
            }
        )
    outbox.record_many(session, shop.id, recorded)


# The statements, built once per dialect (Core, run with a list of rows: SQLAlchemy's "insertmanyvalues" sends
# one multi-row INSERT per statement and keeps the compiled form cached, which rows spelt in .values() do not).
# On PostgreSQL the orders, postings and members go through plugin/bulk_insert.py instead (one array per column):
# psycopg converted the long multi-row VALUES' placeholders anew for every statement.


def _upsert_members(session: Session, rows: list[dict], with_tags: bool) -> list:
    """The members' upsert (_member_upsert_for) in one statement; returns (id, customer id, enrolled at) of the rows
    it inserted or changed. On PostgreSQL one array per column (plugin/bulk_insert.py): as a multi-row VALUES, seven
    parameters a member, psycopg converted its placeholders anew for every batch."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        table = Member.__table__
        returning = ("id", "customer_id", "enrolled_at")
        return insert_rows(connection, table, rows, ("shop_id", "customer_id"), returning, _MEMBER_CHANGES[with_tags])
    return connection.execute(_member_upsert_for(connection.dialect.name, with_tags), rows).all()


def _member_changes(with_tags: bool) -> str:
    """_member_upsert_for's DO UPDATE in SQL, for bulk_insert: the same SET and the same WHERE."""
    details = {name: f"coalesce(excluded.{name}, members.{name})" for name in ("email", "first_name", "last_name")}
    if with_tags:
        details["tags"] = "excluded.tags"
    changed = " OR ".join(f"members.{name} IS DISTINCT FROM {value}" for name, value in details.items())
    return f"DO UPDATE SET {', '.join(f'{name} = {value}' for name, value in details.items())} WHERE {changed}"


_MEMBER_CHANGES = {with_tags: _member_changes(with_tags) for with_tags in (True, False)}


@lru_cache(maxsize=8)
def _member_upsert_for(dialect: str, with_tags: bool):
    """accrual.enrol's upsert: a field the payload left out (None) keeps its stored value.

    A returning shopper's row is rewritten only if a detail changed: an UPDATE that writes the same values still
    makes a new row version (WAL, the widget trigger per row), once for nearly every order (decision 0059). The
    conflicting row is locked either way; an unchanged one returns no row, so _enrol reads its id.
    """
    members = Member.__table__
    insert = dialect_insert(dialect)(members)
    details = {
        name: func.coalesce(insert.excluded[name], members.c[name]) for name in ("email", "first_name", "last_name")
    }
    if with_tags:
        details["tags"] = insert.excluded.tags
    changed = or_(*(members.c[name].is_distinct_from(value) for name, value in details.items()))
    return insert.on_conflict_do_update(
        index_elements=["shop_id", "customer_id"], set_=details, where=changed
    ).returning(members.c.id, members.c.customer_id, members.c.enrolled_at)


def _insert_orders(session: Session, orders: list[dict]) -> list:
    """The new orders' rows, in one statement; returns the order ids written (a conflict writes none)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return insert_rows(connection, Order.__table__, orders, ("shop_id", "order_id"), ("order_id",))
    return connection.execute(_order_insert_for(connection.dialect.name), _sums_kept(session, orders)).all()


def _sums_kept(session: Session, rows: list[dict]) -> list[dict]:
    """The order rows as written: with their lots' sums on PostgreSQL, which reads them and empties them when a lot
    is written without them (decision 0094); without on SQLite, which reads whole lots and has no such trigger."""
    if session.get_bind().dialect.name == "postgresql":
        return rows
    return [{name: value for name, value in row.items() if name not in _SUMS} for row in rows]


@lru_cache(maxsize=4)
def _order_insert_for(dialect: str):
    orders = Order.__table__
    return (
        dialect_insert(dialect)(orders)
        .on_conflict_do_nothing(index_elements=["shop_id", "order_id"])
        .returning(orders.c.order_id)
    )


def _order_update(session: Session):
    return _order_update_for(session.get_bind().dialect.name)


@lru_cache(maxsize=4)
def _order_update_for(dialect: str):
    """A blank order's UPDATE (the SET clause from the rows' keys), only while its row is as it was read."""
    orders = Order.__table__
    return update(orders).where(
        orders.c.shop_id == bindparam("b_shop"),
        orders.c.order_id == bindparam("b_order", type_=BigInteger),
        orders.c.updated_at == bindparam("b_seen", type_=orders.c.updated_at.type),
    )


_POSTING_RETURNS = (
    "id",
    "member_id",
    "kind",
    "points",
    "balance_after",
    "note",
    "order_id",
    "available_at",
    "created_at",
)


def insert_postings(session: Session, postings: list[dict]) -> list:
    """One round of postings (one per member) in one statement; returns the rows written, in list order, with
    _POSTING_RETURNS (a posting whose key exists already is not written). member_rules_batch writes with it too."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        table = Posting.__table__
        return insert_rows(connection, table, postings, ("shop_id", "idempotency_key"), _POSTING_RETURNS)
    return connection.execute(_posting_insert_for(connection.dialect.name), postings).all()


@lru_cache(maxsize=4)
def _posting_insert_for(dialect: str):
    """The postings' INSERT; balance_after is set by PostgreSQL's trigger under the member's lock, and checked by
    SQLite's, so there each row states it (one posting per member per statement, so each row's read is exact)."""
    postings, members = Posting.__table__, Member.__table__
    insert = dialect_insert(dialect)(postings)
    if dialect == "sqlite":
        insert = insert.values(
            balance_after=select(members.c.balance + bindparam("after_points", type_=BigInteger))
            .where(members.c.shop_id == bindparam("after_shop"), members.c.id == bindparam("after_member"))
            .scalar_subquery()
        )
    return insert.on_conflict_do_nothing(index_elements=["shop_id", "idempotency_key"]).returning(
        *(postings.c[name] for name in _POSTING_RETURNS)
    )
