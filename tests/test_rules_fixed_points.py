"""Fixed points per order: airline style, with an optional minimum subtotal; reversed by share of the money."""

from __future__ import annotations

from tests.rules_helpers import by_kind, held, line, lot, refund, snapshot

FIXED = {"type": "fixed_points", "points": 500, "name": "per trip"}


def test_every_order_earns_the_fixed_points_on_top_of_the_base():
    built = lot(snapshot(line(1, "20.00")), FIXED)
    assert by_kind(built) == {"base": 20, "bonus": 500}
    assert "+500 per trip" in built.explanation


def test_fixed_points_need_the_minimum_subtotal_when_one_is_set():
    assert by_kind(lot(snapshot(line(1, "20.00")), {**FIXED, "min_subtotal": "25"})) == {"base": 20}


def test_partial_refunds_take_back_the_fixed_points_by_share_and_all_of_them_together():
    built = lot(snapshot(line(1, "30.00"), line(2, "10.00")), FIXED)
    assert held(built, refund(1, {2: 1})) == 30 + 375  # base: the 30.00 kept; fixed: 3/4 of 500
    assert held(built, refund(1, {2: 1}), refund(2, {1: 1})) == 0
    assert held(built, cancelled=True) == 0


def test_an_order_whose_every_line_is_excluded_earns_no_fixed_points_so_a_full_refund_leaves_nothing():
    excluded = {"type": "exclusion", "match": {"product_ids": [9]}}
    built = lot(snapshot(line(1, "0.01", product=9)), excluded, FIXED)
    assert built.points == 0
    assert held(built, refund(1, {1: 1})) == 0
