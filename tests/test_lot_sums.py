"""A lot's sums as PostgreSQL computes them (services/lot_reads.py) give the rules what the lot's JSON gives them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import null, select, update

from plugin.db import transaction
from plugin.models import Member, Order
from plugin.services import lot_reads, tier_preview, tiers
from plugin.services.milestones import rules as milestone_rules


def _lot(lines, shipping="5.00", tip="0.00", points=10, contributions=None, **extra):
    lot = {"lines": [{"line_id": n, "quantity": 1, "eligible": e} for n, e in enumerate(lines)], "shipping": shipping}
    lot |= {"tip": tip, "points": points, "reason": None, **extra}
    if contributions is not None:  # Lot.to_json leaves the key out when there are none
        lot["contributions"] = [{"kind": kind, "points": p, "explanation": "..."} for kind, p in contributions]
    return lot


# Varied lots: what the sums must read exactly as the JSON is read (tiers.order_fact, milestones' lot_spend).
LOTS = [
    _lot(["60.00", "7.50"]),  # no contributions: the lot's points
    _lot(["12.34"], points=7, contributions=[]),
    _lot(["19.99", "0.01"], tip="2.50", points=40, contributions=[("base", 20), ("multiplier", 10), ("tier", 10)]),
    _lot(["100.00"], points=50, contributions=[("base", 100), ("tier", 25), ("cap", -75)], order_cap=50),  # capped
    _lot(["80.00"], points=30, contributions=[("base", 80), ("tier", 20), ("cap", -70)], order_cap=30),  # tier's share
    _lot(["90.00"], points=40, contributions=[("base", 90), ("campaign", 10), ("cap", -60)]),  # cap before order_cap
    _lot(["5.00"], points=0, contributions=[("base", 5), ("tier", 2), ("cap", -7)], order_cap=0),
    _lot(["3.00"], points=0, contributions=[("base", 3), ("campaign", -10)]),  # kept below zero: none
    _lot(["40.00"], points=55, contributions=[("base", 40), ("tier", 15)], order_cap=100),  # cap not reached
    _lot(["10.00"], points=14, contributions=[("base", 10), (None, 4)]),  # a contribution with no kind is kept
    _lot(["25.00"], points=25, contributions=[("base", 25)], reason="test order"),  # no milestone spend
    _lot([], shipping="3.50", tip="1.25", points=0),  # no lines
    _lot(["10.005"], shipping="0", tip="0", points=10),  # rounds half-even to 10.00 (half-up gives 10.01)
    _lot(["0.333", "19.995"], shipping="0.1", tip="0.015", points=20),
    _lot(["123456789.99", "0.01"], shipping="12.00", tip="3.00", points=2**40, contributions=[("base", 2**40)]),
    None,  # a paid order with no lot
]


@pytest.fixture
def orders(settings, shop):
    """Each of LOTS as a paid order's lot, then the same lots again on cancelled orders."""
    paid = datetime(2026, 3, 1, tzinfo=UTC)
    with transaction(settings.database_url) as session:
        member = Member(shop_id=shop, customer_id=7, balance=0)
        session.add(member)
        session.flush()
        for n, lot in enumerate(LOTS * 2):
            cancelled = paid + timedelta(days=1) if n >= len(LOTS) else None
            order = Order(shop_id=shop, order_id=1000 + n, name=f"#{n}", member_id=member.id, paid_at=paid)
            order.cancelled_at, order.lot = cancelled, null() if lot is None else lot  # SQL NULL, not JSON null
            session.add(order)
    return {1000 + n: lot for n, lot in enumerate(LOTS * 2)}


def test_a_lots_sums_give_the_facts_its_json_gives(settings, shop, orders):
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(*tiers.ORDER_FACT_COLUMNS, *lot_reads.columns(session))
            .select_from(lot_reads.orders_from(session))
            .where(Order.shop_id == shop)
        ).all()
        # The order refunded (not cancelled) comes whole: the refund's arithmetic reads the whole lot.
        refunded = {1002: ["a refund"], 1002 + len(LOTS): ["a refund"]}
        found = lot_reads.lots(session, shop, rows, refunded)
    assert len(rows) == len(orders)
    summed = 0
    for row in rows:
        lot, read = orders[row.order_id], found[row.order_id]
        if lot is None:
            assert read is None
            continue
        if row.order_id == 1002 or session.get_bind().dialect.name != "postgresql":
            assert read == lot
            continue
        summed += 1
        assert type(read) is lot_reads.LotSums and type(read.tier_points) is int
        expected = tiers.order_fact(row.order_id, row.name, row.paid_at, lot, row.cancelled_at, None)
        fact = tiers.order_fact(row.order_id, row.name, row.paid_at, read, row.cancelled_at, None)
        assert (fact, str(fact.spend)) == (expected, str(expected.spend)), row.order_id
        cancelled = row.cancelled_at is not None
        assert milestone_rules.lot_spend(read, (), cancelled) == milestone_rules.lot_spend(lot, (), cancelled)
    if settings.database_url.startswith("postgresql"):
        assert summed == 2 * (len(LOTS) - 1) - 1


def test_the_tier_previews_points_are_the_member_facts_points(settings, shop, orders):
    """tier_preview's per-order points (the points metric's) and the member facts' LotSums share one SQL: a
    contribution with no kind counts in both, as earning.contribution_points_without counts it."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("both are PostgreSQL's")
    with transaction(settings.database_url) as session:
        sums = session.execute(
            select(Order.order_id, *lot_reads.columns(session))
            .select_from(lot_reads.orders_from(session))
            .where(Order.shop_id == shop, Order.lot.is_not(None))
        ).all()
        previewed = session.execute(tier_preview.LOT_VALUES, {"shop_id": shop, "need_points": True}).all()
    expected = {row.order_id: row.lot_tier_points for row in sums}
    assert {row.order_id: row.points for row in previewed} == expected
    assert expected[1009] == 14  # the lot whose contribution has no kind


SUM_COLUMNS = ("lot_eligible", "lot_shipping_tip", "lot_tier_points", "lot_reasoned")


def _reads(session, shop: int) -> dict[int, tuple]:
    """Each order's sums as the member rules' reads give them (stored, or summed from the lot's JSON)."""
    rows = session.execute(
        select(Order.order_id, *lot_reads.columns(session))
        .select_from(lot_reads.orders_from(session))
        .where(Order.shop_id == shop, Order.lot.is_not(None))
    ).all()
    return {row.order_id: tuple(row[1:]) for row in rows}


def _stored(session, shop: int) -> dict[int, tuple]:
    columns = [getattr(Order, name) for name in SUM_COLUMNS]
    return {
        row[0]: tuple(row[1:]) for row in session.execute(select(Order.order_id, *columns).where(Order.shop_id == shop))
    }


def test_the_sums_stored_with_a_lot_are_those_its_json_gives(settings, shop, orders):
    """lot_reads.sums, what the set-based drain stores with each lot it writes (decision 0094), is what the reads sum
    from the lot's JSON in PostgreSQL; stored, the reads give those sums without the JSON."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the sums are read in PostgreSQL; SQLite reads whole lots")
    with transaction(settings.database_url) as session:
        from_json = _reads(session, shop)
        assert set(_stored(session, shop).values()) == {(None,) * 4}  # written one by one: none stored
        for order_id, lot in orders.items():
            if lot is not None:
                sums = lot_reads.sums(lot)
                assert sums == from_json[order_id], order_id
                assert type(sums.tier_points) is int and type(sums.reasoned) is bool
                values = dict(zip(SUM_COLUMNS, sums, strict=True))
                session.execute(update(Order).where(Order.shop_id == shop, Order.order_id == order_id).values(**values))
        stored = _stored(session, shop)
        assert all(None not in stored[order_id] for order_id in from_json)
        assert _reads(session, shop) == from_json
        # And they are read, not the lots: stored sums changed alone (the lots untouched) are what the reads give.
        session.execute(
            update(Order)
            .where(Order.shop_id == shop, Order.lot.is_not(None))
            .values(lot_eligible=Order.lot_eligible + 1000, lot_tier_points=Order.lot_tier_points + 7)
        )
        moved = {k: (e + 1000, s, p + 7, r) for k, (e, s, p, r) in from_json.items()}
        assert _reads(session, shop) == moved


def test_a_lot_written_without_its_sums_keeps_none(settings, shop, orders):
    """On PostgreSQL a trigger empties the stored sums when a statement writes the lot without them (a tier
    correction remakes a lot, the one-by-one path writes an orders/create row's): the reads then sum the new lot."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the trigger and the reads of stored sums are PostgreSQL's")
    first, second = 1002, 1003
    with transaction(settings.database_url) as session:
        values = dict(zip(SUM_COLUMNS, lot_reads.sums(orders[first]), strict=True))
        session.execute(update(Order).where(Order.shop_id == shop, Order.order_id == first).values(**values))
        assert None not in _stored(session, shop)[first]
        session.execute(update(Order).where(Order.shop_id == shop, Order.order_id == first).values(points_held=3))
        assert None not in _stored(session, shop)[first]  # a write of other columns leaves them
        order = session.scalars(select(Order).where(Order.shop_id == shop, Order.order_id == first)).one()
        order.lot = orders[second]  # the ORM writes the lot alone
        session.flush()
        assert _stored(session, shop)[first] == (None,) * 4
        reads = _reads(session, shop)
    assert reads[first] == reads[second] == lot_reads.sums(orders[second])
