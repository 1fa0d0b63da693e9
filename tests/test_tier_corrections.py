"""An order's tier multiplier follows the tier the member held when it was paid, from every fact known now: an
earlier order arriving late, or its refund, corrects the later orders' tier share by a posting of the difference."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Order, Posting
from plugin.programme import earning, rules
from plugin.programme.events import OrderLine, OrderSnapshot
from plugin.programme.rules.core import MemberTier
from plugin.services import rule_sets, shops
from tests import builders
from tests.conftest import SHOP
from tests.test_tiers_e2e import ALICE, deliver_at, member, save

NOV_12, NOV_20 = "2026-11-12T10:00:00Z", "2026-11-20T10:00:00Z"


def corrections(settings) -> list[tuple[str, int, str]]:
    with transaction(settings.database_url) as session:
        rows = session.scalars(select(Posting).where(Posting.source_type == "tier_correction").order_by(Posting.id))
        return [(p.kind, p.points, p.note) for p in rows]


def held(settings) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        return dict(session.execute(select(Order.order_id, Order.points_held)).all())


def test_an_earlier_order_arriving_late_corrects_the_later_orders_multiplier(client, settings, shop):
    save(settings)  # Silver from 100.00 (x1), Gold from 300.00 (x2, 50 on entry), calendar year
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "100.00")]), NOV_20)
    assert (member(settings).tier, member(settings).balance) == ("silver", 100)
    # The earlier order: the member was Gold from 12 Nov, so order #2 (20 Nov) earns twice its base points.
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "300.00")]), NOV_12)
    gold = member(settings)
    assert (gold.tier, gold.balance) == ("gold", 300 + 200 + 50)  # what the natural order gives
    assert held(settings) == {1: 300, 2: 200}
    assert corrections(settings) == [("earn", 100, "#2: tier corrected: Gold from 2026-11-12")]
    # Repeats post nothing more.
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "300.00")]), NOV_12)
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "100.00")]), NOV_20)
    assert member(settings).balance == 550 and len(corrections(settings)) == 1
    # The earlier order refunded: the member was never Gold at #2's moment, so its tier share goes back.
    deliver_at(client, "refunds/create", builders.refund(901, 1, {11: 1}))
    after = member(settings)
    assert (after.tier, after.balance) == ("silver", 100)
    assert held(settings) == {1: 0, 2: 100}
    assert corrections(settings)[1:] == [("reverse", -100, "#2: tier corrected: no tier when paid")]
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_a_correction_down_after_the_points_were_spent_follows_the_spent_points_policy(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": "stop_at_zero"})
    save(settings)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "300.00")]), NOV_12)
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "100.00")]), NOV_20)
    spent = member(settings)
    assert spent.balance == 550
    with transaction(settings.database_url) as session:  # the member spends everything
        ledger.post(session, shop, ledger.Entry(spent.id, "redeem", -550, "support", "spend", "spend", "manual"))
    deliver_at(client, "refunds/create", builders.refund(901, 1, {11: 1}))
    after = member(settings)
    assert (after.tier, after.balance) == ("silver", 0)  # never below zero: the spent part is forgiven
    kinds = [(kind, points) for kind, points, _note in corrections(settings)]
    assert kinds == [("forgive", 100), ("reverse", -100)]
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_a_capped_order_under_the_points_metric_never_feeds_its_own_tier(client, settings, shop):
    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), {"rules": [
            {"id": "cap", "type": "points_cap", "max_points": 250},
        ]}, "test")  # fmt: skip
    save(settings, {"metric": "points", "period": "lifetime", "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100", "multiplier": "3"},
        {"id": "gold", "name": "Gold", "threshold": "300"},
    ]})  # fmt: skip
    # Shuffled: the later order first (200 points, Silver), then the earlier one (100 points).
    deliver_at(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "200.00")]), NOV_20)
    deliver_at(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "100.00")]), NOV_12)
    # Natural order: #1 earns 100 (Silver); #2 earns 200 x 3 capped at 250. The tier counts #2's points without
    # the tier's share, re-capped: 200, not 250 minus the share, so 300 in all reaches Gold.
    after = member(settings)
    assert (after.tier, after.balance) == ("gold", 350)
    assert held(settings) == {1: 100, 2: 250}
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


SNAPSHOT = OrderSnapshot(
    order_id=1, name="#1", customer=None, email=None, currency="USD", test=False, taxes_included=False,
    lines=(OrderLine(11, 2, Decimal("120.00")), OrderLine(12, 1, Decimal("35.50"))), shipping=Decimal("10.00"),
)  # fmt: skip
RULES = {
    "none": [],
    "multiplier and bonus": [
        {"id": "double", "type": "multiplier", "multiplier": "2", "match": {"tags": ["sale"]}},
        {"id": "plus", "type": "fixed_points", "points": 15, "name": "welcome"},
    ],
    "cap": [{"id": "cap", "type": "points_cap", "max_points": 300}],
    "base cap": [{"id": "base", "type": "base_rate", "points": 2, "per_amount": "1.00", "cap_per_order": 400}],
}
TIERS = [None, MemberTier("silver", "Silver", Decimal("1"), 1), MemberTier("gold", "Gold", Decimal("2.5"), 1),
         MemberTier("low", "Low", Decimal("0.5"), 1)]  # fmt: skip


def lot(rule_list, tier):
    rule_set = rules.rule_set({"rules": rule_list}, 3)
    settings = earning.ProgramSettings(include_shipping=True)
    made = earning.build_lot(
        SNAPSHOT, settings, datetime(2026, 11, 1, tzinfo=UTC), has_member=True, rules=rule_set, member_tier=tier
    )
    return made, rule_set


@pytest.mark.parametrize("name", sorted(RULES))
@pytest.mark.parametrize("before", range(len(TIERS)))
@pytest.mark.parametrize("after", range(len(TIERS)))
def test_retier_makes_the_lot_the_engine_makes_under_the_other_tier(name, before, after):
    made, rule_set = lot(RULES[name], TIERS[before])
    expected, _ = lot(RULES[name], TIERS[after])
    old_style = earning.Lot(**{**made.__dict__, "order_cap": None})  # a lot stored before it recorded its cap
    for stored in (made, old_style):
        remade = earning.retier(stored, TIERS[after], rule_set.version, rules.order_cap(rule_set))
        assert remade.to_json() | {"order_cap": None} == expected.to_json() | {"order_cap": None}
    # What tiers count (points without the tier's share) does not depend on the tier the lot was made under.
    untiered, _ = lot(RULES[name], None)
    assert earning.points_without(made, (), False, "tier") == untiered.points
    contributions = made.to_json().get("contributions", [])
    assert earning.contribution_points_without(contributions, "tier", made.order_cap) == untiered.points
