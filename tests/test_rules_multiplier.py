"""Multipliers and exclusions by product, variant, product type, vendor, product tag or collection."""

from __future__ import annotations

import pytest

from tests.rules_helpers import by_kind, held, line, lot, refund, snapshot

COAT, SHIRT = line(1, "100.00", product=1, variant=101), line(2, "50.00", product=2, variant=201)


@pytest.mark.parametrize(
    "match",
    [
        {"product_ids": [1]},
        {"variant_ids": [101]},
        {"product_types": ["outerwear"]},
        {"vendors": ["Acme"]},
        {"tags": ["Winter"]},
        {"collections": ["coats"]},
        {"collections": ["11"]},
    ],
)
def test_a_multiplier_applies_only_to_the_lines_it_matches(match):
    built = lot(snapshot(COAT, SHIRT), {"type": "multiplier", "multiplier": "2", "match": match})
    assert by_kind(built) == {"base": 150, "multiplier": 100}


def test_a_fractional_multiplier_takes_points_away_and_is_reversed_with_its_lines():
    built = lot(snapshot(COAT, SHIRT), {"type": "multiplier", "multiplier": "0.5", "match": {"product_ids": [1]}})
    assert by_kind(built) == {"base": 150, "multiplier": -50}
    assert held(built, refund(1, {1: 1})) == 50


def test_multipliers_on_one_line_add_their_extras():
    built = lot(
        snapshot(COAT),
        {"type": "multiplier", "multiplier": "2", "match": {"vendors": ["acme"]}},
        {"type": "multiplier", "multiplier": "3", "match": {"product_types": ["outerwear"]}},
    )
    assert built.points == 100 + 100 + 200


def test_excluded_lines_earn_nothing_from_any_rule():
    built = lot(
        snapshot(COAT, SHIRT),
        {"type": "exclusion", "match": {"product_types": ["Shirts"]}},
        {"type": "multiplier", "multiplier": "2", "match": {"vendors": ["bolt", "acme"]}},
    )
    assert by_kind(built) == {"base": 100, "multiplier": 100}
    assert 2 in built.excluded_lines


def test_a_refund_of_the_multiplied_line_takes_back_its_base_and_its_extra():
    built = lot(snapshot(COAT, SHIRT), {"type": "multiplier", "multiplier": "2", "match": {"tags": ["winter"]}})
    assert held(built, refund(1, {1: 1})) == 50
    assert held(built, refund(1, {2: 1})) == 200
