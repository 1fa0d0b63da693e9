"""Milestone rules as pure functions: spend thresholds, punch cards, order spend after refunds, and refusals."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest
from marshmallow import ValidationError

from plugin.programme import milestones
from plugin.programme.earning import Lot, LotLine
from plugin.programme.events import RefundFacts
from plugin.programme.milestone_settings import validate_milestones

LIFETIME = {"id": "big", "amount": "500.00", "period": "lifetime", "points": 100, "repeat": True}
YEARLY = {**LIFETIME, "period": "calendar_year"}
CARD = {"id": "coffee", "every": 3, "min_subtotal": "5.00", "points": 50}


def spend(order_id: int, amount: str, year: int = 2026) -> milestones.OrderSpend:
    return milestones.OrderSpend(order_id, year, Fraction(Decimal(amount)))


def lot(*lines: tuple[int, int, str], reason: str | None = None) -> Lot:
    return Lot(
        earn_points=1, earn_per_amount=Decimal(1), lines=tuple(LotLine(i, q, Decimal(e)) for i, q, e in lines),
        shipping=Decimal("9.00"), tip=Decimal(0), points=0, rule_version="t", reason=reason,
    )  # fmt: skip


def test_a_lifetime_threshold_grants_once_per_whole_multiple_of_its_amount():
    assert milestones.threshold_crossings(LIFETIME, [spend(1, "499.99")]) == 0
    assert milestones.threshold_crossings(LIFETIME, [spend(1, "300"), spend(2, "200")]) == 1
    assert milestones.threshold_crossings(LIFETIME, [spend(1, "1000.00")]) == 2


def test_a_threshold_that_does_not_repeat_grants_once_however_far_spend_goes():
    assert milestones.threshold_crossings({**LIFETIME, "repeat": False}, [spend(1, "1700")]) == 1


def test_a_calendar_year_threshold_counts_each_year_apart():
    history = [spend(1, "300", 2025), spend(2, "300", 2026), spend(3, "250", 2026)]
    assert milestones.threshold_crossings(YEARLY, history) == 1  # 2025: 300, 2026: 550
    assert milestones.threshold_crossings(LIFETIME, history) == 1  # 850 over a lifetime


def test_punches_count_orders_at_or_above_the_minimum_subtotal_and_grant_every_nth():
    history = [spend(1, "5.00"), spend(2, "4.99"), spend(3, "12"), spend(4, "0"), spend(5, "8")]
    assert milestones.punches(CARD, history) == 3
    assert milestones.punch_card_grants(CARD, history) == 1
    assert milestones.punch_card_grants({**CARD, "min_subtotal": None}, history) == 1  # 4 punches, every 3


def test_order_spend_is_eligible_merchandise_less_refunded_quantities_without_shipping():
    paid = lot((1, 2, "100.00"), (2, 1, "30.00"))
    assert milestones.order_spend(paid, [], cancelled=False) == 130
    assert milestones.order_spend(paid, [RefundFacts(9, 1, {1: 1})], cancelled=False) == 80
    assert milestones.order_spend(paid, [RefundFacts(9, 1, {1: 2}), RefundFacts(8, 1, {2: 5})], False) == 0


def test_cancelled_test_and_unknown_orders_count_no_spend():
    assert milestones.order_spend(lot((1, 1, "50")), [], cancelled=True) == 0
    assert milestones.order_spend(lot((1, 1, "50"), reason="test order"), [], cancelled=False) == 0
    assert milestones.order_spend(None, [], cancelled=False) == 0


def test_progress_says_how_much_more_reaches_the_next_grant_this_period():
    shown = milestones.threshold_progress(YEARLY, [spend(1, "380", 2026), spend(2, "900", 2025)], date(2026, 12, 3))
    assert shown["spent"] == "380.00" and shown["remaining"] == "120.00" and shown["reached"] == 0
    once = milestones.threshold_progress({**LIFETIME, "repeat": False}, [spend(1, "600")], date(2026, 12, 3))
    assert once["complete"] and once["remaining"] is None


def test_punch_card_progress_shows_the_punches_on_the_current_card():
    shown = milestones.punch_card_progress(CARD, [spend(i, "6") for i in range(1, 6)])
    assert shown["punches"] == 2 and shown["cards_completed"] == 1


@pytest.mark.parametrize(
    ("programme", "where"),
    [
        ({"thresholds": [{"id": "a", "amount": "0", "points": 5}]}, ("thresholds", 0, "amount")),
        ({"thresholds": [{"id": "a", "amount": "-10.00", "points": 5}]}, ("thresholds", 0, "amount")),
        ({"punch_cards": [{"id": "c", "every": 1, "points": 5}]}, ("punch_cards", 0, "every")),
        ({"punch_cards": [{"id": "c", "every": 0, "points": 5}]}, ("punch_cards", 0, "every")),
        ({"thresholds": [{"id": "a", "amount": "10", "points": 0}]}, ("thresholds", 0, "points")),
        ({"thresholds": [{"id": "a", "amount": "ten", "points": 1}]}, ("thresholds", 0, "amount")),
        ({"actions": [{"id": "f", "title": "Follow", "kind": "follow", "points": 5}]}, ("actions", 0, "url")),
        ({"actions": [{"id": "s", "title": "Survey", "kind": "survey", "points": 5}]}, ("actions", 0, "questions")),
        ({"birthday": {"points": 10, "when": "week"}}, ("birthday", "when")),
        ({"bogus": 1}, ("bogus",)),
    ],
)
def test_a_bad_programme_is_refused_with_a_message_on_the_field(programme, where):
    with pytest.raises(ValidationError) as refused:
        validate_milestones(programme)
    messages = refused.value.messages
    for key in where:
        messages = messages[key]
    assert messages and isinstance(messages[0], str)
