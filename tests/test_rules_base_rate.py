"""Base rate rule: the shop's rate (or the rule's own), a minimum subtotal to earn, and a cap per order."""

from __future__ import annotations

from tests.rules_helpers import by_kind, held, line, lot, refund, snapshot


def test_without_a_base_rule_the_shops_settings_rate_applies_to_every_eligible_line():
    built = lot(snapshot(line(1, "37.42"), line(2, "10.00")))
    assert built.points == 47
    assert by_kind(built) == {"base": 47}


def test_a_base_rule_with_its_own_rate_replaces_the_settings_rate():
    built = lot(snapshot(line(1, "250.00")), {"type": "base_rate", "points": 2, "per_amount": "100"})
    assert built.points == 5  # 250 x 2/100, rounded down


def test_an_order_under_the_minimum_subtotal_earns_nothing_and_says_why():
    rule = {"type": "base_rate", "min_subtotal": "50.00"}
    built = lot(snapshot(line(1, "49.99")), rule)
    assert built.points == 0
    assert "under the minimum 50.00" in built.explanation
    assert lot(snapshot(line(1, "50.00")), rule).points == 50


def test_the_cap_per_order_limits_the_award_and_refunds_take_back_the_capped_amount_exactly():
    built = lot(snapshot(line(1, "300.00"), line(2, "100.00")), {"type": "base_rate", "cap_per_order": 100})
    assert built.points == 100
    assert by_kind(built) == {"base": 400, "cap": -300}
    assert held(built, refund(1, {2: 1})) == 75  # a quarter of the money refunded: a quarter of the award
    assert held(built, refund(1, {2: 1}), refund(2, {1: 1})) == 0


def test_base_points_are_reversed_from_the_lots_rate_by_quantity():
    built = lot(snapshot(line(1, "30.00", 3)))
    assert [held(built, refund(1, {1: n})) for n in range(4)] == [30, 20, 10, 0]
