"""The programme's pure rules: what an order earns (build_lot) and what it still holds (points_to_hold).

Money is Decimal strings throughout; expected points are reasoned by hand, or computed with exact Fractions and
math.floor where the rule is "rate x amount, rounded down".
"""

from __future__ import annotations

import itertools
import json
import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from marshmallow import ValidationError

from plugin.programme.earning import Lot, LotLine, ProgramSettings, build_lot, points_to_hold
from plugin.programme.events import OrderLine, OrderSnapshot, RefundFacts
from plugin.programme.settings import program_settings, validate_settings

PAID_AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
DEFAULT = ProgramSettings()
ORDER_ID = 5001


def ln(line_id: int, gross: str, quantity: int = 1, *, discount: str = "0", tax: str = "0", gift_card: bool = False):
    """A line; `gross` is unit price x quantity, as the adapter computes it."""
    return OrderLine(line_id, quantity, Decimal(gross), Decimal(discount), Decimal(tax), gift_card)


def snapshot(
    *lines: OrderLine,
    shipping: str = "0",
    shipping_tax: str = "0",
    tip: str = "0",
    test: bool = False,
    taxes_included: bool = False,
) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=ORDER_ID,
        name=f"#{ORDER_ID}",
        customer=None,
        email="shopper@example.com",
        currency="USD",
        test=test,
        taxes_included=taxes_included,
        lines=tuple(lines),
        shipping=Decimal(shipping),
        shipping_tax=Decimal(shipping_tax),
        tip=Decimal(tip),
    )


def refund(refund_id: int, quantities: dict[int, int] | None = None, *, shipping: str = "0") -> RefundFacts:
    return RefundFacts(refund_id, ORDER_ID, dict(quantities or {}), Decimal(shipping))


def lot_for(order: OrderSnapshot, settings: ProgramSettings = DEFAULT, *, has_member: bool = True) -> Lot:
    return build_lot(order, settings, PAID_AT, has_member=has_member)


def floor_points(amount: str, points: int, per_amount: str) -> int:
    """The programme's rule computed independently: floor(amount x points / per_amount), exactly."""
    return math.floor(Fraction(amount) * points / Fraction(per_amount))


# --- earning ------------------------------------------------------------------------------------------------------

EARN_CASES = [
    # (id, order, settings, expected points)
    ("simple_order_one_point_per_dollar", snapshot(ln(1, "100.00")), DEFAULT, 100),
    ("multi_quantity_line_earns_on_its_total", snapshot(ln(1, "75.00", 3)), DEFAULT, 75),
    ("several_lines_are_summed_before_rounding", snapshot(ln(1, "40.50"), ln(2, "20.50")), DEFAULT, 61),
    ("line_discount_reduces_earning", snapshot(ln(1, "100.00", discount="15.50")), DEFAULT, 84),
    ("fully_discounted_line_earns_nothing", snapshot(ln(1, "30.00"), ln(2, "20.00", discount="20.00")), DEFAULT, 30),
    ("shipping_excluded_by_default", snapshot(ln(1, "50.00"), shipping="10.00"), DEFAULT, 50),
    (
        "shipping_included_when_include_shipping",
        snapshot(ln(1, "50.00"), shipping="10.00"),
        ProgramSettings(include_shipping=True),
        60,
    ),
    (
        "included_shipping_is_taken_without_its_tax_in_tax_inclusive_shops",
        snapshot(ln(1, "55.00", tax="5.00"), shipping="12.00", shipping_tax="2.00", taxes_included=True),
        ProgramSettings(include_shipping=True),
        60,  # 55 - 5 tax + 12 - 2 shipping tax
    ),
    (
        "tax_inclusive_shop_subtracts_line_tax",
        snapshot(ln(1, "110.00", tax="10.00"), taxes_included=True),
        DEFAULT,
        100,
    ),
    (
        "tax_exclusive_shop_ignores_tax_on_top_of_price",
        snapshot(ln(1, "100.00", tax="8.25"), taxes_included=False),
        DEFAULT,
        100,
    ),
    (
        "include_taxes_adds_tax_in_tax_exclusive_shop",
        snapshot(ln(1, "100.00", tax="8.25"), taxes_included=False),
        ProgramSettings(include_taxes=True),
        108,
    ),
    (
        "include_taxes_keeps_tax_in_tax_inclusive_shop",
        snapshot(ln(1, "110.00", tax="10.00"), taxes_included=True),
        ProgramSettings(include_taxes=True),
        110,
    ),
    ("tips_excluded_by_default", snapshot(ln(1, "50.00"), tip="5.00"), DEFAULT, 50),
    ("tips_included_with_include_tips", snapshot(ln(1, "50.00"), tip="5.00"), ProgramSettings(include_tips=True), 55),
    ("gift_card_lines_excluded_by_default", snapshot(ln(1, "50.00"), ln(2, "25.00", gift_card=True)), DEFAULT, 50),
    (
        "gift_card_lines_included_with_include_gift_cards",
        snapshot(ln(1, "50.00"), ln(2, "25.00", gift_card=True)),
        ProgramSettings(include_gift_cards=True),
        75,
    ),
    ("rounds_down_99_99_to_99", snapshot(ln(1, "99.99")), DEFAULT, 99),
    ("below_one_unit_earns_nothing", snapshot(ln(1, "0.99")), DEFAULT, 0),
    (
        "one_point_per_ten_rounds_down_25_to_2",
        snapshot(ln(1, "25.00")),
        ProgramSettings(earn_points=1, earn_per_amount=Decimal("10.00")),
        2,
    ),
    (
        "exact_decimal_arithmetic_1_per_0_10_on_0_70_is_7",  # binary floats give 0.7 / 0.1 = 6.999...
        snapshot(ln(1, "0.70")),
        ProgramSettings(earn_points=1, earn_per_amount=Decimal("0.10")),
        7,
    ),
    ("zero_point_rate_earns_nothing", snapshot(ln(1, "500.00")), ProgramSettings(earn_points=0), 0),
]


@pytest.mark.parametrize(("order", "settings", "expected"), [c[1:] for c in EARN_CASES], ids=[c[0] for c in EARN_CASES])
def test_paid_order_earns_eligible_amount_at_the_shop_rate_rounded_down(order, settings, expected):
    lot = lot_for(order, settings)
    assert lot.points == expected
    assert lot.reason is None
    assert points_to_hold(lot, [], cancelled=False) == expected


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("2.00", 3),
        ("2.02", 3),  # 3.03
        ("1.99", 2),  # 2.985
        ("1.34", 2),  # 2.01
        ("1.33", 1),  # 1.995
        ("5.00", 7),  # 7.5
        ("0.67", 1),  # 1.005
        ("0.66", 0),  # 0.99
        ("333.33", 499),  # 499.995
        ("1000000.01", 1500000),  # 1500000.015
    ],
)
def test_three_points_per_two_dollars_is_fraction_exact_and_rounds_down(amount, expected):
    assert floor_points(amount, 3, "2.00") == expected  # the hand-worked value is the exact rule
    lot = lot_for(snapshot(ln(1, amount)), ProgramSettings(earn_points=3, earn_per_amount=Decimal("2.00")))
    assert lot.points == expected


def test_gift_card_lines_are_recorded_as_excluded_not_as_lot_lines():
    lot = lot_for(snapshot(ln(1, "50.00"), ln(2, "25.00", gift_card=True)))
    assert lot.excluded_lines == (2,)
    assert [line.line_id for line in lot.lines] == [1]


def test_lot_records_each_lines_eligible_amount_after_discounts_and_taxes():
    order = snapshot(ln(1, "110.00", 2, discount="11.00", tax="9.00"), ln(2, "20.00"), taxes_included=True)
    lot = lot_for(order)
    assert lot.lines == (LotLine(1, 2, Decimal("90.00")), LotLine(2, 1, Decimal("20.00")))
    assert lot.points == 110


@pytest.mark.parametrize(
    ("settings", "expected"),
    [(DEFAULT, 0), (ProgramSettings(earn_on_test_orders=True), 100)],
    ids=["test_order_earns_nothing_by_default", "test_order_earns_when_earn_on_test_orders"],
)
def test_test_orders_earn_only_when_the_shop_allows_it(settings, expected):
    lot = lot_for(snapshot(ln(1, "100.00"), test=True), settings)
    assert lot.points == expected
    assert lot.reason == (None if expected else "test order")
    assert points_to_hold(lot, [], cancelled=False) == expected


@pytest.mark.parametrize(
    "settings", [DEFAULT, ProgramSettings(include_shipping=True, include_tips=True)], ids=["default", "generous"]
)
def test_order_without_a_member_earns_nothing_and_says_why(settings):
    lot = lot_for(snapshot(ln(1, "100.00"), shipping="10.00", tip="5.00"), settings, has_member=False)
    assert lot.points == 0
    assert lot.reason == "no customer on the order"
    assert points_to_hold(lot, [], cancelled=False) == 0


# --- refunds and cancellation -------------------------------------------------------------------------------------

PARTIAL_REFUND_CASES = [
    # (id, order, settings, refunds in the order they arrive, points held after each refund)
    (
        "three_refunds_of_one_on_a_quantity_three_line",
        snapshot(ln(1, "75.00", 3)),
        DEFAULT,
        [refund(1, {1: 1}), refund(2, {1: 1}), refund(3, {1: 1})],
        [50, 25, 0],
    ),
    (
        "uneven_100_over_three_units",  # 66.66.. -> 66, 33.33.. -> 33, then nothing: 34 + 33 + 33 = 100
        snapshot(ln(1, "100.00", 3)),
        DEFAULT,
        [refund(1, {1: 1}), refund(2, {1: 1}), refund(3, {1: 1})],
        [66, 33, 0],
    ),
    (
        "two_then_one_on_a_discounted_line",  # 290.00 eligible: 96.66.. kept after two units
        snapshot(ln(1, "300.00", 3, discount="10.00")),
        DEFAULT,
        [refund(1, {1: 2}), refund(2, {1: 1})],
        [96, 0],
    ),
    (
        "two_uneven_lines_refunded_unit_by_unit",  # 100.00/3 and 10.01/7: award floor(110.01) = 110
        snapshot(ln(1, "100.00", 3), ln(2, "10.01", 7)),
        DEFAULT,
        [refund(1, {2: 3}), refund(2, {1: 1}), refund(3, {2: 4, 1: 1}), refund(4, {1: 1})],
        # 100 + 10.01*4/7 = 105.72; 66.67 + 5.72 = 72.38; 33.33; 0
        [105, 72, 33, 0],
    ),
    (
        "lines_and_shipping_with_include_shipping",
        snapshot(ln(1, "60.00", 2), shipping="9.99"),
        ProgramSettings(include_shipping=True),  # award floor(69.99) = 69
        [refund(1, {1: 1}), refund(2, shipping="4.99"), refund(3, {1: 1}, shipping="5.00")],
        [39, 35, 0],
    ),
    (
        "rate_three_per_two_with_thirds",  # 10.00 over 3 units at 3/2: 15 -> 10 -> 5 -> 0
        snapshot(ln(1, "10.00", 3)),
        ProgramSettings(earn_points=3, earn_per_amount=Decimal("2.00")),
        [refund(1, {1: 1}), refund(2, {1: 1}), refund(3, {1: 1})],
        [10, 5, 0],
    ),
]


@pytest.mark.parametrize(
    ("order", "settings", "refunds", "held_after_each"),
    [c[1:] for c in PARTIAL_REFUND_CASES],
    ids=[c[0] for c in PARTIAL_REFUND_CASES],
)
def test_partial_refunds_add_up_to_the_award(order, settings, refunds, held_after_each):
    lot = lot_for(order, settings)
    held = [points_to_hold(lot, refunds[: i + 1], cancelled=False) for i in range(len(refunds))]
    assert held == held_after_each
    taken = [before - after for before, after in itertools.pairwise([lot.points, *held])]
    assert all(t >= 0 for t in taken), f"a refund gave points back: {taken}"
    assert sum(taken) == lot.points, "refunding everything must take back exactly the award"


@pytest.mark.parametrize(
    ("order", "refunds", "expected"),
    [
        (snapshot(ln(1, "50.00", 2)), [refund(1, {1: 5})], 0),
        (snapshot(ln(1, "90.00", 3)), [refund(1, {1: 2}), refund(2, {1: 2})], 0),
        (snapshot(ln(1, "90.00", 3), ln(2, "10.00")), [refund(1, {1: 4})], 10),  # line 2 untouched
        (snapshot(ln(1, "90.00", 3)), [refund(1, {1: 3}), refund(2, {1: 3}), refund(3, {1: 3})], 0),
    ],
    ids=[
        "quantity_beyond_the_line",
        "two_refunds_exceeding_the_line",
        "over_refund_of_one_line_spares_another",
        "same_full_refund_three_times",
    ],
)
def test_over_refund_never_goes_below_zero(order, refunds, expected):
    assert points_to_hold(lot_for(order), refunds, cancelled=False) == expected


TAKE_BACK_CASES = [
    # (id, settings, refunds, points held); the order: one 50.00 line, a 25.00 gift card (line 2), 10.00 shipping
    ("unknown_line_takes_nothing", DEFAULT, [refund(1, {999: 1})], 50),
    ("gift_card_line_takes_nothing", DEFAULT, [refund(1, {2: 1})], 50),
    ("shipping_only_takes_nothing_by_default", DEFAULT, [refund(1, shipping="10.00")], 50),
    ("shipping_only_takes_shippings_share", ProgramSettings(include_shipping=True), [refund(1, shipping="10.00")], 50),
    ("part_of_shipping_takes_that_part", ProgramSettings(include_shipping=True), [refund(1, shipping="4.00")], 56),
    ("over_refunded_shipping_spares_lines", ProgramSettings(include_shipping=True), [refund(1, shipping="500.00")], 50),
]


@pytest.mark.parametrize(
    ("settings", "refunds", "expected"), [c[1:] for c in TAKE_BACK_CASES], ids=[c[0] for c in TAKE_BACK_CASES]
)
def test_refunds_take_back_only_what_earned(settings, refunds, expected):
    order_snapshot = snapshot(ln(1, "50.00"), ln(2, "25.00", gift_card=True), shipping="10.00")
    lot = lot_for(order_snapshot, settings)
    assert lot.points == (60 if settings.include_shipping else 50)
    assert points_to_hold(lot, refunds, cancelled=False) == expected


@pytest.mark.parametrize(
    ("settings", "refunds"),
    [
        (DEFAULT, []),
        (DEFAULT, [refund(1, {1: 1})]),
        (ProgramSettings(include_shipping=True, include_tips=True), []),
        (ProgramSettings(include_tips=True), [refund(1, {1: 1}), refund(2, shipping="10.00")]),
    ],
    ids=["no_refunds", "after_a_partial_refund", "with_shipping_and_tips", "tips_are_taken_too"],
)
def test_cancellation_takes_back_everything(settings, refunds):
    lot = lot_for(snapshot(ln(1, "80.00", 2), shipping="10.00", tip="5.00"), settings)
    assert lot.points > 0
    assert points_to_hold(lot, refunds, cancelled=True) == 0


def test_no_lot_holds_nothing():
    assert points_to_hold(None, [refund(1, {1: 1})], cancelled=False) == 0


PERMUTATION_CASES = [
    (
        "mixed_lines_shipping_and_unknown",
        snapshot(ln(1, "100.00", 3), ln(2, "10.01", 7), ln(3, "25.00", gift_card=True), shipping="9.99"),
        ProgramSettings(include_shipping=True),
        [
            refund(1, {1: 1}),
            refund(2, {2: 3}),
            refund(3, shipping="3.33"),
            refund(4, {999: 2, 3: 1}),
            refund(5, {1: 1, 2: 1}),
        ],
        # kept: 100/3 + 10.01*3/7 + (9.99 - 3.33) = 33.33.. + 4.29 + 6.66 = 44.28..
        44,
    ),
    (
        "over_refund_among_others",
        snapshot(ln(1, "100.00", 3), ln(2, "50.00", 2)),
        DEFAULT,
        [refund(1, {1: 2}), refund(2, {1: 2}), refund(3, {2: 1}), refund(4, {})],
        25,  # line 1 gone, line 2 keeps one of two units
    ),
    (
        "rate_three_per_two",
        snapshot(ln(1, "10.00", 3), ln(2, "7.77", 1)),
        ProgramSettings(earn_points=3, earn_per_amount=Decimal("2.00")),
        [refund(1, {1: 1}), refund(2, {1: 1}), refund(3, {2: 1})],
        5,  # 10/3 kept x 3/2 = 5 exactly
    ),
]


@pytest.mark.parametrize(
    ("order", "settings", "refunds", "expected"),
    [c[1:] for c in PERMUTATION_CASES],
    ids=[c[0] for c in PERMUTATION_CASES],
)
def test_refund_order_does_not_change_the_target(order, settings, refunds, expected):
    lot = lot_for(order, settings)
    targets = {points_to_hold(lot, list(p), cancelled=False) for p in itertools.permutations(refunds)}
    assert targets == {expected}


# --- the lot, not today's settings, drives reversal ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings_when_paid", "award", "held_after_one_of_four_refunded"),
    [
        (DEFAULT, 100, 75),
        (ProgramSettings(earn_points=3, earn_per_amount=Decimal("2.00")), 150, 112),  # 75.00 x 3/2 = 112.5
        (ProgramSettings(earn_points=1, earn_per_amount=Decimal("10.00")), 10, 7),  # 7.5
    ],
    ids=["default_rate", "three_per_two", "one_per_ten"],
)
def test_reversal_uses_the_lots_rate_after_the_shops_settings_change(
    settings_when_paid, award, held_after_one_of_four_refunded
):
    order = snapshot(ln(1, "100.00", 4), shipping="20.00", tip="10.00")
    lot = lot_for(order, settings_when_paid)
    assert lot.points == award

    # The shop later becomes far more generous; a lot built today would earn something else entirely...
    new_settings = ProgramSettings(
        earn_points=5, earn_per_amount=Decimal("0.50"), include_shipping=True, include_tips=True, version=2
    )
    assert lot_for(order, new_settings).points == 1300  # (100 + 20 + 10) x 10

    # ...but the old lot carries its own rate and eligible amounts, and so does its stored JSON.
    assert (lot.earn_points, lot.earn_per_amount) == (
        settings_when_paid.earn_points,
        settings_when_paid.earn_per_amount,
    )
    stored = Lot.from_json(json.loads(json.dumps(lot.to_json())))
    for each in (lot, stored):
        assert points_to_hold(each, [refund(1, {1: 1})], cancelled=False) == held_after_one_of_four_refunded
        assert points_to_hold(each, [refund(1, {1: 4}), refund(2, shipping="20.00")], cancelled=False) == 0
    assert lot.rule_version != lot_for(order, new_settings).rule_version


# --- the lot's stored form and pending points ---------------------------------------------------------------------

ROUND_TRIP_CASES = [
    ("plain", snapshot(ln(1, "100.00")), DEFAULT, True),
    (
        "pending_with_gift_card_shipping_and_tip",
        snapshot(ln(1, "33.33", 3, discount="0.01"), ln(9, "25.00", gift_card=True), shipping="4.99", tip="1.50"),
        ProgramSettings(
            earn_points=3, earn_per_amount=Decimal("2.00"), include_shipping=True, include_tips=True, pending_days=14
        ),
        True,
    ),
    ("no_member", snapshot(ln(1, "10.00")), DEFAULT, False),
    ("test_order", snapshot(ln(1, "10.00"), test=True), DEFAULT, True),
]


@pytest.mark.parametrize(
    ("order", "settings", "has_member"), [c[1:] for c in ROUND_TRIP_CASES], ids=[c[0] for c in ROUND_TRIP_CASES]
)
def test_lot_json_round_trip_is_lossless(order, settings, has_member):
    lot = lot_for(order, settings, has_member=has_member)
    data = lot.to_json()
    text = json.dumps(data)  # must be plain JSON: no Decimal, no datetime
    restored = Lot.from_json(json.loads(text, parse_float=Decimal))
    assert restored == lot
    assert restored.earn_per_amount == settings.earn_per_amount
    assert all(isinstance(line["eligible"], str) for line in data["lines"])
    assert isinstance(data["earn_per_amount"], str)
    assert points_to_hold(restored, [refund(1, {1: 1})], cancelled=False) == points_to_hold(
        lot, [refund(1, {1: 1})], cancelled=False
    )


@pytest.mark.parametrize("days", [1, 14, 30, 365])
def test_pending_days_make_points_available_later(days):
    lot = lot_for(snapshot(ln(1, "100.00")), ProgramSettings(pending_days=days))
    assert lot.available_at == PAID_AT + timedelta(days=days)
    assert lot.points == 100  # pending changes when, not how much


def test_no_pending_days_means_available_at_once():
    assert lot_for(snapshot(ln(1, "100.00"))).available_at is None


# --- settings validation ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        '{"include_shiping": true}',
        '{"earn": {"points": 1, "per_amount": "1.00", "bonus": 2}}',
        '{"earn": {"points": "1", "per_amount": "1.00"}}',
        '{"earn": {"points": 1.5, "per_amount": "1.00"}}',
        '{"earn": {"points": true, "per_amount": "1.00"}}',
        '{"earn": {"points": -1, "per_amount": "1.00"}}',
        '{"earn": {"points": 1, "per_amount": "0.00"}}',
        '{"earn": {"points": 1, "per_amount": 0}}',
        '{"earn": {"points": 1, "per_amount": "-1.00"}}',
        '{"earn": {"points": 1}}',
        '{"pending_days": -1}',
        '{"pending_days": 1.5}',
        '{"pending_days": 366}',
    ],
    ids=[
        "unknown_key",
        "unknown_nested_key",
        "points_as_string",
        "fractional_points",
        "boolean_points",
        "negative_points",
        "zero_per_amount",
        "zero_per_amount_number",
        "negative_per_amount",
        "missing_per_amount",
        "negative_pending_days",
        "fractional_pending_days",
        "pending_days_over_a_year",
    ],
)
def test_invalid_settings_are_refused(raw):
    with pytest.raises(ValidationError):
        validate_settings(json.loads(raw, parse_float=Decimal))


def test_empty_settings_give_the_default_programme():
    clean = validate_settings({})
    assert clean == {
        "earn": {"points": 1, "per_amount": "1.00"},
        "include_shipping": False,
        "include_taxes": False,
        "include_tips": False,
        "include_gift_cards": False,
        "earn_on_test_orders": False,
        "guest_orders_earn_by_email": False,
        "pending_days": 0,
        "spent_points_policy": "allow_negative",
        "rewards": [
            {
                "id": "5-off",
                "kind": "fixed_amount",
                "points": 500,
                "title": "5.00 off",
                "amount": "5.00",
                "percent": None,
                "min_subtotal": None,
                "lifetime_days": 30,
                "customer_only": True,
                "single_use": True,
            }
        ],
    }
    json.dumps(clean)  # stored as JSON
    assert program_settings({}, 1) == ProgramSettings()
    assert program_settings(None, 3) == ProgramSettings(version=3)


def test_valid_settings_become_the_shops_programme():
    raw = '{"earn": {"points": 3, "per_amount": 2.00}, "include_shipping": true, "pending_days": 7}'
    data = json.loads(raw, parse_float=Decimal)
    clean = validate_settings(data)
    assert clean["earn"] == {"points": 3, "per_amount": "2.00"}
    settings = program_settings(clean, 4)
    assert settings == ProgramSettings(
        earn_points=3, earn_per_amount=Decimal("2.00"), include_shipping=True, pending_days=7, version=4
    )
    assert settings.rule_version.endswith("settings-4")
