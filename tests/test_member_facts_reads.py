"""The set-based drain's member facts: each member's orders read once for tiers and milestones, with the same facts."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from psycopg.types import json as psycopg_json
from sqlalchemy import event, select

from plugin import inbox
from plugin.db import engine_for, transaction
from plugin.models import Member, Posting, TierPurchase
from plugin.programme import milestones
from plugin.programme import tiers as tier_rules
from plugin.programme.earning import Lot
from plugin.programme.events import (
    Customer,
    OrderCancelled,
    OrderLine,
    OrderPaid,
    OrderRefunded,
    OrderSnapshot,
    RefundFacts,
)
from plugin.services import accrual, member_facts, member_rules_batch, shops, tier_corrections, tier_sets, tiers
from plugin.services.milestones import rules as milestone_rules
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP

TIERS = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100.00", "multiplier": "1.25"},
        {"id": "gold", "name": "Gold", "threshold": "250.00", "multiplier": "1.5", "entry_reward": 25},
    ],
}
MILESTONES = {
    "thresholds": [{"id": "spend-200", "title": "200 spent", "amount": "200.00", "period": "lifetime", "points": 20}],
    "punch_cards": [{"id": "every-3rd", "title": "Every 3rd", "every": 3, "min_subtotal": "5.00", "points": 10}],
}


class OrderReads:
    """Counts the statements that read the orders table (SELECT ... FROM orders)."""

    def __init__(self, database_url: str):
        self.engine, self.count, self.whole_lots = engine_for(database_url), 0, []

    def __call__(self, _conn, _cursor, statement, parameters, *_args):
        text = " ".join(statement.lower().split())
        if text.startswith("select") and " from orders " in f"{text} ":
            self.count += 1
            if "orders.lot from" in text:  # the whole lot: its parameters name the orders read so
                self.whole_lots += [v for v in (parameters or {}).values() if isinstance(v, int) and v > 1000]

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self)


def _seed(settings) -> None:
    """Three members, four paid orders each (two lines), one order refunded in part and one cancelled at payment."""
    paid = datetime(2026, 3, 1, tzinfo=UTC)
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        tier_sets.save(session, shop, TIERS, "test")
        milestone_settings.save(session, shop, MILESTONES, "test")
    snapshots = {}
    for k in range(4):
        for customer_id in (501, 502, 503):
            order_id = customer_id * 10 + k
            snapshots[order_id] = OrderSnapshot(
                order_id=order_id, name=f"#{order_id}", customer=Customer(customer_id), email=None, currency="USD",
                test=False, taxes_included=False, shipping=Decimal("5.00"),
                lines=(OrderLine(order_id * 10, 2, Decimal("60.00")), OrderLine(order_id * 10 + 1, 1, Decimal("7.50"))),
            )  # fmt: skip
            with transaction(settings.database_url) as session:
                paid_at = paid + timedelta(days=k)
                accrual.apply(session, shops.get(session, SHOP), OrderPaid(snapshots[order_id], paid_at))
    with transaction(settings.database_url) as session:
        refund = RefundFacts(9001, 5011, {50110: 1}, Decimal("0"))
        accrual.apply(session, shops.get(session, SHOP), OrderRefunded(refund))
    with transaction(settings.database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), OrderCancelled(snapshots[5022]))


def test_member_facts_read_the_orders_once_and_agree_with_each_rules_own_read(settings, shop):
    _seed(settings)
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member_ids = sorted(session.scalars(select(Member.id).where(Member.shop_id == shop)))
        with OrderReads(settings.database_url) as reads:
            facts = member_facts.read(session, shop_row, member_ids, with_milestones=True)
        # One read of the members' orders, with their lots' parts (tiers, tier corrections and milestones each read
        # them before, every whole lot decoded twice), and one of the whole lot of the refunded order alone.
        if settings.database_url.startswith("postgresql"):
            assert reads.count == 2
            assert reads.whole_lots == [5011]
        else:  # SQLite reads whole lots at once (lot_reads.columns)
            assert reads.count == 1
        tier_facts, terms = tiers.facts_for(session, shop, member_ids)
        histories = milestone_rules.order_histories(session, shop_row, member_ids)
        version = tiers.programme(shop_row).version
        stored = tier_corrections.stored_tiers(session, shop, member_ids, version)

    def by_order(items):
        return sorted(items, key=lambda item: item.order_id)

    assert len(member_ids) == 3 and all(stored.get(member_id) for member_id in member_ids)
    for member_id in member_ids:
        assert by_order(facts.tier_facts[member_id]) == by_order(tier_facts[member_id])
        assert facts.paid_terms.get(member_id, []) == terms.get(member_id, [])
        assert by_order(facts.histories[member_id]) == by_order(histories[member_id])
        assert facts.stored_tiers.get(member_id) == stored.get(member_id)  # as text on PostgreSQL, JSON on SQLite
    refunded = {h.order_id: h.spend for h in facts.histories[member_ids[0]]}[5011]
    assert refunded == Fraction("37.50")  # 67.50 less one of the two units of the 60.00 line (gross is per line)
    assert {h.order_id: h.spend for h in facts.histories[member_ids[1]]}[5022] == 0  # cancelled
    assert {f.order_id: f.spend for f in facts.tier_facts[member_ids[1]]}[5022] == 0


def test_refunds_are_read_only_for_the_orders_the_read_found_refunded(settings, shop):
    """The past orders' read says which have a refund: the refunds are then read for those alone, and not at all for
    members with none (nearly every round of a drain). The agreement with each rule's own read is the test above."""
    _seed(settings)
    refund_reads: list[str] = []

    def listen(_conn, _cursor, statement, parameters, *_args):
        if re.match(r"select refunds\.\w+, .* from refunds ", " ".join(statement.lower().split())):  # its own read
            refund_reads.append(repr(parameters))

    engine = engine_for(settings.database_url)
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with transaction(settings.database_url) as session:
            shop_row = shops.get(session, SHOP)
            member_ids = sorted(session.scalars(select(Member.id).where(Member.shop_id == shop)))
            others = member_facts.read(session, shop_row, member_ids[1:], with_milestones=True)
            assert refund_reads == []  # the other two members' orders: none refunded (one cancelled)
            facts = member_facts.read(session, shop_row, member_ids, with_milestones=True)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert len(refund_reads) == 1
    assert set(re.findall(r"\b50[0-9][0-9]\b", refund_reads[0])) == {"5011"}  # of the twelve orders, its own
    assert {f.order_id for f in others.tier_facts[member_ids[1]]} == {5020, 5021, 5022, 5023}
    assert {h.order_id: h.spend for h in facts.histories[member_ids[0]]}[5011] == Fraction("37.50")


def test_without_a_paid_tier_no_purchase_is_read_and_the_tiers_are_those_its_terms_give(settings, shop):
    """Purchases stored under a version with a paid tier: read with one (the read's terms are tiers.facts_for's),
    left unread without (no terms), where every tier the rules work out is what facts_for's terms give."""
    _seed(settings)
    with transaction(settings.database_url) as session:
        member_ids = sorted(session.scalars(select(Member.id).where(Member.shop_id == shop)))
        session.add_all(
            TierPurchase(shop_id=shop, order_id=customer_id * 10, member_id=member_id, months=12,
                         paid_at=datetime(2026, 3, 1, tzinfo=UTC), line_ids=[customer_id * 100])
            for customer_id, member_id in zip((501, 502), member_ids, strict=False)
        )  # fmt: skip
    now, paid_plan = datetime(2026, 6, 1, tzinfo=UTC), {"tier": "gold", "skus": ["VIP"], "months": 12}
    for programme in ({**TIERS, "paid": paid_plan}, TIERS):
        with transaction(settings.database_url) as session:
            shop_row = shops.get(session, SHOP)
            shop_row.tiers = programme  # as stored: saving checks that a product has the SKU
            current, shop_zone = tiers.programme(shop_row), shops.zone(shop_row)
            facts = member_facts.read(session, shop_row, member_ids, with_milestones=True)
            tier_facts, terms = tiers.facts_for(session, shop, member_ids)
        assert len(terms) == 2 and all(terms.values())  # the purchases count
        if current.paid:
            assert facts.paid_terms == terms
            continue
        assert facts.paid_terms == {}
        for member_id in member_ids:
            found, read_terms = facts.tier_known(member_id)
            paid_at = [(f.order_id, f.paid_at) for f in found]
            assert tier_rules.status(current, found, now, shop_zone, read_terms) == tier_rules.status(
                current, tier_facts[member_id], now, shop_zone, terms.get(member_id, [])
            )
            assert tier_rules.tiers_at_payments(current, found, read_terms, shop_zone, paid_at) == (
                tier_rules.tiers_at_payments(current, tier_facts[member_id], terms.get(member_id, []), shop_zone,
                                             paid_at)
            )  # fmt: skip


def test_a_lots_milestone_spend_from_its_json_is_order_spends():
    lot_json = {
        "earn_points": 1, "earn_per_amount": "1.00", "shipping": "9.00", "tip": "1.00", "points": 40,
        "rule_version": "t", "reason": None, "contributions": [],
        "lines": [{"line_id": 1, "quantity": 3, "eligible": "100.01"},
                  {"line_id": 2, "quantity": 1, "eligible": "0.33"}],
    }  # fmt: skip
    lot = Lot.from_json(lot_json)
    for refunds in ([], [RefundFacts(7, 1, {1: 1})], [RefundFacts(7, 1, {1: 3}), RefundFacts(8, 1, {2: 1})]):
        for cancelled in (False, True):
            expected = milestones.order_spend(lot, refunds, cancelled)
            assert milestone_rules.lot_spend(lot_json, refunds, cancelled) == expected
    assert milestone_rules.lot_spend({**lot_json, "reason": "test order"}, [], False) == 0
    assert milestone_rules.lot_spend(None, [], False) == 0


class LotPartReads:
    """Keeps the statements (and their parameters) that read a lot's sums from orders."""

    def __init__(self, database_url: str):
        self.engine, self.statements = engine_for(database_url), []

    def __call__(self, _conn, _cursor, statement, parameters, *_args):
        if "lot_eligible" in statement and statement.lstrip().lower().startswith("select"):
            self.statements.append((statement, parameters))

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self)


def _outputs(plan: dict) -> list[str]:
    found = list(plan.get("Output", [])) + ([plan["Function Call"]] if "Function Call" in plan else [])
    for child in plan.get("Plans", []):
        found += _outputs(child)
    return found


_UNLESS_STORED = (
    "CASE WHEN ((orders.lot_eligible IS NULL) OR (orders.lot_shipping_tip IS NULL) OR (orders.lot_tier_points IS NULL)"
    " OR (orders.lot_reasoned IS NULL)) THEN (orders.lot || '{}'::jsonb) ELSE NULL::jsonb END"
)


def test_the_parts_reads_decompress_each_lot_once(settings, shop):
    """A stored lot is compressed: an operator applied to orders.lot itself decompresses it again, so the parts'
    reads (member facts, and tiers.facts_for for _tiers_when_paid) apply theirs to the lot decompressed once."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the parts are read in PostgreSQL; SQLite reads whole lots")
    _seed(settings)
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member_ids = sorted(session.scalars(select(Member.id).where(Member.shop_id == shop)))
        with LotPartReads(settings.database_url) as reads:
            member_facts.read(session, shop_row, member_ids, with_milestones=True)
            tiers.facts_for(session, shop, member_ids)
        assert len(reads.statements) == 2
        for statement, parameters in reads.statements:
            connection = session.connection()
            plan = connection.exec_driver_sql(f"EXPLAIN (VERBOSE, FORMAT JSON) {statement}", parameters).scalar()
            # EXPLAIN shows a node's use of a lower node's computed value in double parentheses. The lot is
            # decompressed only for a row without its sums stored (decision 0094): that condition is read past here.
            outputs = [
                o.replace(_UNLESS_STORED, "(orders.lot || '{}'::jsonb)").replace(
                    "((orders.lot || '{}'::jsonb))", "lot_once"
                )
                for o in _outputs(plan[0]["Plan"])
            ]
            # A lone table's columns go unqualified: `lot -> 'lines'` is orders.lot's too.
            on_stored = [o for o in outputs if re.search(r"\blot (->|->>|\|\|) |_array\((orders\.)?lot, ", o)]
            assert on_stored == ["(orders.lot || '{}'::jsonb)"], on_stored  # computed in one place, once a row
            assert any("lot_once ->> 'shipping'" in o for o in outputs)
            assert "jsonb_array_elements((lot_once -> 'lines'::text))" in outputs  # the lines' sum, a SubPlan


class JsonDecodes:
    """Counts the JSON values psycopg decodes (json and jsonb columns), each a json.loads of its own."""

    def __init__(self, monkeypatch):
        self.count = 0
        original = psycopg_json._JsonLoader._loads

        def counted(data):
            self.count += 1
            return original(data)

        monkeypatch.setattr(psycopg_json._JsonLoader, "_loads", staticmethod(counted))


def test_a_past_orders_lot_is_read_with_no_json_decoded(settings, shop, monkeypatch):
    """An unrefunded lot's sums come as plain columns (decision 0072): no JSON decoded for it. As one JSON array of
    its parts in a text column (decision 0066), each past order cost a json.loads, its lines the most of it; as a
    JSONB column a part, psycopg's decode of each part that was not NULL (50 decodes for these 12 orders)."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the sums are read in PostgreSQL; SQLite reads whole lots")
    _seed(settings)
    with transaction(settings.database_url) as session:
        member_ids = sorted(session.scalars(select(Member.id).where(Member.shop_id == shop)))
        decodes = JsonDecodes(monkeypatch)
        tier_facts, _terms = tiers.facts_for(session, shop, member_ids)
    orders = sum(len(found) for found in tier_facts.values())
    assert orders == 12
    # The refunded order's whole lot and its refund's facts only.
    assert decodes.count == 2, decodes.count


def test_a_rounds_new_orders_added_in_python_are_what_a_read_after_the_write_gives(settings, shop, monkeypatch):
    """Each round's member facts are read before its orders, and its new orders' facts added in Python (decision
    0066): compared, in every round of a varied batch, with member_facts.read after the round's write. The members
    have refunded, cancelled and tiered past orders; the batch moves tiers and grants thresholds and punch cards,
    over three rounds, in a time zone other than the orders' (-05:00)."""
    _seed(settings)
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).time_zone = "Asia/Tokyo"
    shoppers = (501, 502, 503, 504, 501, 502, 501, 504, 501)
    for n, customer_id in enumerate(shoppers, start=1):
        lines = [builders.line(n * 10, f"{20 * n}.00"), builders.line(n * 10 + 1, "9.99", 2)]
        body = json.dumps(builders.order(6000 + n, customer_id, lines, shipping="4.00", tip="1.00")).encode()
        delivery = inbox.IncomingDelivery(SHOP, "orders/paid", f"n-{n}", body)
        inbox.store(engine_for(settings.database_url), delivery)
    compared: list[int] = []
    run = member_rules_batch.run

    def compare(session, shop_row, member_ids, before, new_orders, quals, programme):
        current = tiers.programme(shop_row)
        added = member_facts.with_new_orders(before, shop_row, current, new_orders)
        # The qualifications the rules go on from (decision 0080) are those of the facts read before the round.
        assert quals == {m: tier_rules.qualifications(current, before.tier_facts.get(m, []), shops.zone(shop_row))
                         for m in member_ids}  # fmt: skip
        reread = member_facts.read(session, shop_row, member_ids, with_milestones=True)
        for member_id in member_ids:
            assert _sorted(added.tier_facts[member_id]) == _sorted(reread.tier_facts[member_id])
            assert added.stored_tiers[member_id] == reread.stored_tiers[member_id]
            assert _sorted(added.histories[member_id]) == _sorted(reread.histories[member_id])
        assert (added.members, added.paid_terms, added.entry_rewards, added.holdings) == (
            reread.members, reread.paid_terms, reread.entry_rewards, reread.holdings,
        )  # fmt: skip
        compared.append(len(new_orders))
        return run(session, shop_row, member_ids, before, new_orders, quals, programme)

    monkeypatch.setattr(member_rules_batch, "run", compare)
    assert inbox.drain(settings.database_url, batch_size=20) == {"processed": 9}
    assert compared == [4, 3, 1, 1]  # every order set-based, in four rounds
    with transaction(settings.database_url) as session:
        held = dict(session.execute(select(Member.customer_id, Member.tier).where(Member.shop_id == shop)).all())
        grants = session.scalars(select(Posting.source_type).where(Posting.shop_id == shop, Posting.kind == "bonus"))
    assert held[501] == held[504] == "gold"
    assert {"tier", "threshold", "punch_card"} <= set(grants)


def _sorted(items):
    return sorted(items, key=lambda item: item.order_id)
