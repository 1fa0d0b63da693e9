"""A drained batch reads its members' facts once a round, before the round's orders, not once per rule.

In a shop with tiers, a member's orders of one batch go in rounds (decision 0041), and each order's tier when paid
is worked out from the member's past orders. Each round reads its members' facts once, before its orders
(services/member_facts.py); the member rules after the write take them with the round's new orders added in Python
(decision 0066), instead of reading every past order and its lot again.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from sqlalchemy import event, select

from plugin import inbox
from plugin.db import among, among_ids, engine_for, transaction
from plugin.models import Member, Order, Posting, Refund, TierMove
from plugin.programme import tiers as tier_rules
from plugin.services import lot_reads, member_facts, shops, tier_sets, tiers
from tests import builders
from tests.bulk_rows import insert_members
from tests.conftest import SHOP

TIERS = {
    "metric": "spend",
    "period": "lifetime",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "15.00", "multiplier": "1.5"},
        {"id": "gold", "name": "Gold", "threshold": "25.00", "multiplier": "2"},
    ],
}


def _store(settings) -> None:
    """Three orders of one shopper and one of another: three rounds, the first with both shoppers."""
    for n, customer_id in enumerate((7000, 7000, 7001, 7000), start=1):
        body = json.dumps(builders.order(n, customer_id, [builders.line(n * 10, "10.00")])).encode()
        inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"t-{n}", body))


def _tiered_and_drained(settings, set_based: bool) -> None:
    """TIERS saved, then _store's four orders drained in one batch, set-based or one by one."""
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")
    _store(settings)
    assert inbox.drain(settings.database_url, batch_size=10, set_based=set_based) == {"processed": 4}


@pytest.mark.parametrize("set_based", [True, False])
def test_a_members_later_orders_of_a_batch_earn_their_tiers_share(settings, shop, set_based):
    _tiered_and_drained(settings, set_based)
    with transaction(settings.database_url) as session:
        earned = session.execute(
            select(Member.customer_id, Posting.order_id, Posting.points)
            .join(Member, (Member.shop_id == Posting.shop_id) & (Member.id == Posting.member_id))
            .where(Posting.shop_id == shop, Posting.kind == "earn")
            .order_by(Posting.order_id)
        ).all()
        tier = session.scalar(select(Member.tier).where(Member.shop_id == shop, Member.customer_id == 7000))
    # 10.00 each: the second order is paid with 10.00 spent (no tier), the fourth with 20.00 (silver, 1.5x).
    assert [tuple(row) for row in earned] == [(7000, 1, 10), (7000, 2, 10), (7001, 3, 10), (7000, 4, 15)]
    assert tier == "gold"


def test_a_batch_reads_its_members_facts_once_a_round(settings, shop, monkeypatch):
    """Each round reads its members' facts once, before its orders (decision 0066): the orders' tier when paid and
    the member rules after the write both take them from that read (tiers.facts_for read them again before)."""
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")
    _store(settings)
    reads: list[list[int] | None] = []
    facts_for, read = tiers.facts_for, member_facts.read

    def counted(session, shop_id, member_ids=None):
        reads.append(member_ids)
        return facts_for(session, shop_id, member_ids)

    def counted_read(session, shop_row, member_ids, with_milestones):
        reads.append(member_ids)
        return read(session, shop_row, member_ids, with_milestones)

    monkeypatch.setattr(tiers, "facts_for", counted)
    monkeypatch.setattr(member_facts, "read", counted_read)
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 4}
    assert [len(ids) for ids in reads] == [2, 1, 1]  # one read a round; [2, 2, 1, 1] before


def test_a_batch_reads_the_milestone_programme_once_whatever_its_rounds(settings, shop):
    """The milestone programme is read once a batch and given to every round's facts and rules: each round read it
    twice before (the facts, then the rules), a statement and a copy of the settings each time."""
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")
    _store(settings)
    reads: list[str] = []

    def keep(_conn, _cursor, statement, *_args):
        if "from milestone_settings" in " ".join(statement.lower().split()):
            reads.append(statement)

    engine = engine_for(settings.database_url)
    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 4}
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(reads) == 1  # three rounds: six before


def test_a_members_tier_qualifications_are_worked_out_once_a_round(settings, shop, monkeypatch):
    """Each round works out a member's qualifications (a pass over every past order) once, for the order's tier when
    paid; the member rules' plan (tier status and corrections due) goes on from them with the round's new order,
    its latest (decision 0080): three rounds, four orders, four passes and four plans that go on."""
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")
    _store(settings)
    calls: list[int] = []
    went_on: list[bool] = []
    qualifications, qualifications_with = tier_rules.qualifications, tier_rules.qualifications_with

    def counted(programme, facts, zone):
        calls.append(len(facts))
        return qualifications(programme, facts, zone)

    def counted_with(programme, quals, new, zone):
        found = qualifications_with(programme, quals, new, zone)
        went_on.append(found is not None)
        return found

    monkeypatch.setattr(tier_rules, "qualifications", counted)
    monkeypatch.setattr(tier_rules, "qualifications_with", counted_with)
    assert inbox.drain(settings.database_url, batch_size=10) == {"processed": 4}
    assert sorted(calls) == [0, 0, 1, 2]  # each order's tier when paid, over the facts before it; 8 passes before
    assert went_on == [True] * 4


def test_the_refunds_of_a_batchs_past_orders_are_asked_for_with_one_parameter_for_the_orders(settings, shop):
    """Every past order of a batch's members (hundreds): as an IN list, a statement of more than 50 parameters,
    which psycopg converts anew each time (its cache keeps only smaller ones), dumping each id alone."""
    with transaction(settings.database_url) as session:
        session.add_all(
            Refund(shop_id=shop, order_id=order_id, refund_id=order_id * 10, facts={"line_quantities": {"5": 1},
                   "shipping": "1.50"})
            for order_id in (3, 250)
        )  # fmt: skip
    sent: list = []

    def keep(_conn, _cursor, statement, parameters, *_args):
        if "FROM refunds" in statement:
            sent.append(parameters)

    engine = engine_for(settings.database_url)
    with transaction(settings.database_url) as session:
        event.listen(engine, "before_cursor_execute", keep)
        try:
            found = tiers.refunds_of(session, shop, list(range(1, 301)))
        finally:
            event.remove(engine, "before_cursor_execute", keep)
    assert {
        order_id: [(r.refund_id, r.line_quantities, r.shipping) for r in found[order_id]] for order_id in found
    } == {3: [(30, {5: 1}, Decimal("1.50"))], 250: [(2500, {5: 1}, Decimal("1.50"))]}
    (parameters,) = sent
    if settings.database_url.startswith("postgresql"):
        assert len(parameters) == 2  # the shop and one array of the 300 orders (301 parameters before)


def test_ids_sent_as_the_arrays_text_select_what_the_array_selects(settings, shop):
    """db.among_ids (the array as one string, decision 0078) against db.among (a list psycopg dumps element by
    element): the same refunds, the first and the last id and ids past 32 bits included."""
    order_ids = [3, 250, 2**31 + 7, 2**62 + 1]
    with transaction(settings.database_url) as session:
        session.add_all(
            Refund(shop_id=shop, order_id=order_id, refund_id=n, facts={"line_quantities": {}})
            for n, order_id in enumerate([*order_ids, 4, 2**40], start=1)
        )
    with transaction(settings.database_url) as session:
        for asked in (order_ids, order_ids[:1], [], [5]):
            found = []
            for among_ in (among, among_ids):
                query = select(Refund.refund_id).where(Refund.shop_id == shop, among_(session, Refund.order_id, asked))
                found.append(sorted(session.scalars(query)))
            assert found[1] == found[0] == [n for n, o in enumerate(order_ids, start=1) if o in asked], asked
    if settings.database_url.startswith("postgresql"):
        bound = select(Refund.refund_id).where(among_ids(session, Refund.order_id, [1, 2])).compile().params
        assert list(bound.values()) == ["{1,2}"]  # one string, not a list


@pytest.mark.parametrize("paid", [False, True])
def test_a_rounds_past_orders_and_purchases_are_asked_for_with_one_parameter_for_the_members(settings, shop, paid):
    """A round of a batch of distinct shoppers has 50 members: as an IN list with the shop, 51 parameters, one past
    what psycopg's cache of converted statements keeps, so every round's read of the orders was parsed anew. The
    tier purchases are read only under a paid tier (no rule reads paid terms without one)."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("psycopg's; SQLite keeps the IN lists")
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        tier_sets.save(session, shop_row, TIERS, "test")
        if paid:  # set as stored: saving checks that a product has the SKU
            shop_row.tiers = {**TIERS, "paid": {"tier": TIERS["tiers"][-1]["id"], "skus": ["VIP"], "months": 12}}
    with engine_for(settings.database_url).begin() as connection:
        insert_members(connection, shop, 60)
    sent: list = []

    def keep(_conn, _cursor, statement, parameters, *_args):
        if "FROM orders" in statement or "FROM tier_purchases" in statement:
            sent.append(parameters)

    engine = engine_for(settings.database_url)
    with transaction(settings.database_url) as session:
        member_ids = list(session.scalars(select(Member.id).where(Member.shop_id == shop)))
        event.listen(engine, "before_cursor_execute", keep)
        try:
            facts = member_facts.read(session, shops.get(session, SHOP), member_ids, with_milestones=False)
        finally:
            event.remove(engine, "before_cursor_execute", keep)
    assert sorted(facts.members) == sorted(member_ids) and len(member_ids) == 60
    # The orders and the tier purchases: the shop and one array of the members (and the orders' two keys of their
    # stored facts), 63 and 61 parameters before.
    assert [len(parameters) for parameters in sent] == ([4, 2] if paid else [4]), sent


def _drained_backwards(settings, shop, set_based: bool) -> tuple[list, list, list]:
    """Three orders of one shopper paid in the reverse of their arrival: each round's new order is paid before
    the member's orders known, so the member rules' qualifications cannot go on from the round's first pass."""
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), TIERS, "test")
    for n in (1, 2, 3):
        body = json.dumps(builders.order(n, 7000, [builders.line(n * 10, "10.00")])).encode()
        delivery = inbox.IncomingDelivery(
            SHOP, "orders/paid", f"b-{n}", body, triggered_at=f"2026-11-20T15:00:{40 - 10 * n}.000Z"
        )
        inbox.store(engine_for(settings.database_url), delivery)
    assert inbox.drain(settings.database_url, batch_size=10, set_based=set_based) == {"processed": 3}
    with transaction(settings.database_url) as session:
        moves = session.execute(
            select(TierMove.from_tier, TierMove.to_tier, TierMove.reason)
            .where(TierMove.shop_id == shop)
            .order_by(TierMove.seq)
        ).all()
        points = session.execute(
            select(Posting.kind, Posting.order_id, Posting.points).where(Posting.shop_id == shop).order_by(Posting.id)
        ).all()
        member = session.execute(select(Member.tier, Member.tier_until).where(Member.shop_id == shop)).all()
    return [tuple(m) for m in moves], [tuple(p) for p in points], [tuple(m) for m in member]


# What one by one leaves (set_based=False, below): each tier reached by the latest-paid order, #1 (the reasons
# name it: an order's qualification taken in arrival order would name #2, then #3), and #1 re-settled at silver
# once #3 is known (20.00 paid before it).
BACKWARDS = (
    [(None, "silver", "spend 20.00 (order #1)"), ("silver", "gold", "spend 30.00 (order #1)")],
    [("earn", 1, 10), ("earn", 2, 10), ("earn", 3, 10), ("earn", 1, 5)],
    [("gold", None)],
)


@pytest.mark.parametrize("set_based", [True, False])
def test_orders_paid_before_those_known_are_qualified_from_scratch(settings, shop, monkeypatch, set_based):
    went_on: list[bool] = []
    qualifications_with = tier_rules.qualifications_with

    def counted_with(programme, quals, new, zone):
        found = qualifications_with(programme, quals, new, zone)
        went_on.append(found is not None)
        return found

    monkeypatch.setattr(tier_rules, "qualifications_with", counted_with)
    assert _drained_backwards(settings, shop, set_based) == BACKWARDS
    assert went_on == ([True, False, False] if set_based else [])  # the first round: the member's first order


@pytest.mark.parametrize("set_based", [True, False])
def test_a_drained_orders_lot_sums_are_stored_with_it_set_based(settings, shop, set_based):
    """The set-based drain writes each order's lot sums beside its lot (decision 0094), as lot_reads.sums gives
    them from that lot (tier contributions included), on PostgreSQL; the one-by-one path leaves them NULL, read from
    the lot, and so does SQLite, which reads whole lots."""
    _tiered_and_drained(settings, set_based)
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(Order.lot, Order.lot_eligible, Order.lot_shipping_tip, Order.lot_tier_points, Order.lot_reasoned)
            .where(Order.shop_id == shop)
        ).all()  # fmt: skip
    assert len(rows) == 4 and any(c["kind"] == "tier" for row in rows for c in row.lot.get("contributions", ()))
    for row in rows:
        stored = tuple(row[1:])
        stores = set_based and settings.database_url.startswith("postgresql")
        assert stored == (tuple(lot_reads.sums(row.lot)) if stores else (None,) * 4)
