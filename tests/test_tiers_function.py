"""The tier function over facts: metric, period, retention, grace, paid terms, progress, and its refusals."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from marshmallow import ValidationError

from plugin.programme import tiers
from plugin.programme.tier_settings import validate_tiers

UTC_ZONE = ZoneInfo("UTC")
PARIS = ZoneInfo("Europe/Paris")


def programme(metric="spend", period="calendar_year", grace_days=0, paid=None, **gold) -> tiers.TierProgramme:
    data = validate_tiers(
        {
            "metric": metric,
            "period": period,
            "grace_days": grace_days,
            "tiers": [
                {"id": "silver", "name": "Silver", "threshold": "100"},
                {"id": "gold", "name": "Gold", "threshold": "500", "multiplier": "2", **gold},
            ],
            "paid": paid,
        }
    )
    return tiers.TierProgramme.from_json(data, 1)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def order(order_id: int, when: str, spend: str = "0", points: int = 0, counts: bool = True) -> tiers.OrderFact:
    return tiers.OrderFact(order_id, f"#{order_id}", at(when), Decimal(spend), points, counts)


def test_spend_in_a_calendar_year_reaches_the_highest_tier_its_total_passes():
    facts = [order(1, "2026-03-01", "200"), order(2, "2026-06-01", "350")]
    state = tiers.status(programme(), facts, at("2026-07-01"), UTC_ZONE)
    assert state.tier_id == "gold"
    assert state.kept_until == at("2028-01-01")  # to the end of the next period
    assert state.reason == "spend 550.00 in 2026 (order #2)"


def test_a_refund_that_drops_the_total_below_a_threshold_moves_the_member_down():
    facts = [order(1, "2026-03-01", "200"), order(2, "2026-06-01", "250")]  # #2 was 350, partly refunded
    assert tiers.status(programme(), facts, at("2026-07-01"), UTC_ZONE).tier_id == "silver"
    cancelled = [order(1, "2026-03-01", "200", counts=False)]
    assert tiers.status(programme(), cancelled, at("2026-07-01"), UTC_ZONE).tier_id is None


def test_a_tier_is_kept_until_the_end_of_the_next_period_then_lost():
    facts = [order(1, "2026-03-01", "600")]
    assert tiers.status(programme(), facts, at("2027-12-31T23:59:59"), UTC_ZONE).tier_id == "gold"
    after = tiers.status(programme(), facts, at("2028-01-01"), UTC_ZONE)
    assert after.tier_id is None
    assert after.reason == "no qualification still kept: spend 0.00 in the current period"


def test_grace_days_delay_the_downgrade():
    facts = [order(1, "2026-03-01", "600")]
    assert tiers.status(programme(grace_days=30), facts, at("2028-01-30"), UTC_ZONE).tier_id == "gold"
    assert tiers.status(programme(grace_days=30), facts, at("2028-01-31"), UTC_ZONE).tier_id is None


def test_the_calendar_year_is_the_shops_own():
    # 23:30 UTC on 31 December is already 1 January in Paris: the order counts toward the new year there.
    facts = [order(1, "2026-12-31T23:30:00", "600")]
    assert tiers.status(programme(), facts, at("2026-12-31T23:45:00"), PARIS).kept_until == at("2028-12-31T23:00:00")


def test_a_rolling_year_keeps_the_tier_twelve_months_after_the_qualifying_order():
    rolling = programme(period="rolling_12_months")
    facts = [order(1, "2026-01-10", "300"), order(2, "2026-11-01", "300")]
    state = tiers.status(rolling, facts, at("2026-11-02"), UTC_ZONE)
    assert (state.tier_id, state.kept_until) == ("gold", at("2027-11-01"))
    late = [order(1, "2025-01-10", "300"), order(2, "2026-02-01", "300")]  # more than 12 months apart
    assert tiers.status(rolling, late, at("2026-02-02"), UTC_ZONE).tier_id == "silver"


def test_points_earned_count_not_the_balance_and_orders_count_paid_orders():
    points = programme(metric="points")
    facts = [order(1, "2026-02-01", points=400), order(2, "2026-02-02", points=100)]
    assert tiers.status(points, facts, at("2026-03-01"), UTC_ZONE).tier_id == "gold"
    orders = tiers.TierProgramme.from_json(
        validate_tiers(
            {"metric": "orders", "period": "lifetime", "tiers": [{"id": "regular", "name": "Regular", "threshold": 3}]}
        ),
        1,
    )
    three = [order(n, f"2026-02-0{n}") for n in (1, 2, 3)]
    assert tiers.status(orders, three, at("2030-01-01"), UTC_ZONE).tier_id == "regular"  # lifetime: kept for good
    assert tiers.status(orders, three[:2], at("2030-01-01"), UTC_ZONE).tier_id is None


def test_the_result_does_not_depend_on_the_order_facts_arrive_in():
    facts = [order(n, f"2026-0{1 + n % 9}-1{n % 10}", str(37 * n)) for n in range(1, 15)]
    expected = tiers.status(programme(), facts, at("2026-12-01"), UTC_ZONE)
    for seed in range(5):
        shuffled = facts[:]
        random.Random(seed).shuffle(shuffled)
        assert tiers.status(programme(), shuffled, at("2026-12-01"), UTC_ZONE) == expected


PAID = {"tier": "gold", "skus": ["VIP"], "months": 12, "mode": "stack"}


def test_a_paid_tier_lasts_its_months_and_a_repeat_purchase_extends_it_from_the_end_date():
    paid = programme(paid=PAID)
    one = [tiers.PaidTerm(10, at("2026-02-01"), 12, True)]
    state = tiers.status(paid, [], at("2026-03-01"), UTC_ZONE, one)
    assert (state.tier_id, state.paid_until) == ("gold", at("2027-02-01"))
    two = [*one, tiers.PaidTerm(11, at("2026-06-01"), 12, True)]
    assert tiers.status(paid, [], at("2026-07-01"), UTC_ZONE, two).paid_until == at("2028-02-01")
    refunded = [tiers.PaidTerm(10, at("2026-02-01"), 12, False)]
    assert tiers.status(paid, [], at("2026-03-01"), UTC_ZONE, refunded).tier_id is None


def test_a_paid_tier_stacks_with_or_replaces_the_earned_one():
    facts = [order(1, "2026-02-01", "600")]
    term = [tiers.PaidTerm(10, at("2026-02-01"), 12, True)]
    silver_paid = {**PAID, "tier": "silver"}
    assert tiers.status(programme(paid=silver_paid), facts, at("2026-03-01"), UTC_ZONE, term).tier_id == "gold"
    replace = {**silver_paid, "mode": "replace"}
    assert tiers.status(programme(paid=replace), facts, at("2026-03-01"), UTC_ZONE, term).tier_id == "silver"


def test_progress_says_how_much_more_and_by_when():
    state = tiers.status(programme(), [order(1, "2026-03-01", "380")], at("2026-07-01"), UTC_ZONE)
    progress = tiers.progress(programme(), state, UTC_ZONE)
    assert (progress.next_tier.name, progress.needed, str(progress.by)) == ("Gold", Decimal("120.00"), "2026-12-31")


def test_the_tier_multipliers_own_points_never_count_toward_a_tier():
    from plugin.programme.earning import Lot, points_without
    from plugin.programme.rules.core import Contribution

    base = Contribution("base", 1, "base", 100, "base", ((1, 1, Decimal("100")),), None)
    tier = Contribution("tier:gold", 1, "tier", 100, "x2 Gold", ((1, 1, Decimal("100")),), None)
    lot = Lot(1, Decimal(1), (), Decimal(0), Decimal(0), 200, "v", contributions=(base, tier))
    assert points_without(lot, (), False, "tier") == 100


def refusal(**changes) -> dict:
    data = {
        "metric": "spend",
        "period": "calendar_year",
        "tiers": [
            {"id": "silver", "name": "Silver", "threshold": "100"},
            {"id": "gold", "name": "Gold", "threshold": "500"},
        ],
        **changes,
    }
    with pytest.raises(ValidationError) as error:
        validate_tiers(data)
    return error.value.normalized_messages()


def test_thresholds_out_of_order_are_refused_on_the_tier_that_breaks_the_order():
    messages = refusal(
        tiers=[{"id": "a", "name": "A", "threshold": "500"}, {"id": "b", "name": "B", "threshold": "100"}]
    )
    assert messages == {"tiers": {1: {"threshold": ["thresholds must rise: 100 is not above tier 0's 500"]}}}


def test_duplicate_names_are_refused():
    messages = refusal(
        tiers=[{"id": "a", "name": "Gold", "threshold": "1"}, {"id": "b", "name": " gold", "threshold": "2"}]
    )
    assert messages == {"tiers": {1: {"name": ["duplicates the name of tier 0"]}}}


@pytest.mark.parametrize("multiplier", ["0", "-1"])
def test_a_multiplier_of_zero_or_less_is_refused(multiplier):
    messages = refusal(tiers=[{"id": "a", "name": "A", "threshold": "1", "multiplier": multiplier}])
    assert messages == {"tiers": {0: {"multiplier": ["must be above 0, at most 100"]}}}


def test_a_period_the_metric_does_not_support_is_refused():
    messages = refusal(metric="orders", period="rolling_12_months", tiers=[{"id": "a", "name": "A", "threshold": 3}])
    assert messages == {"period": ["the orders metric supports lifetime, calendar_year, not rolling_12_months"]}


def test_a_paid_tier_must_be_one_of_the_tiers_and_name_a_marker():
    assert refusal(paid={"tier": "platinum", "skus": ["X"]}) == {"paid": {"tier": ["no tier has the id 'platinum'"]}}
    assert refusal(paid={"tier": "gold"}) == {
        "paid": {"skus": ["name at least one SKU or product tag that marks the membership"]}
    }


def test_fractional_points_thresholds_and_unknown_keys_are_refused():
    assert refusal(metric="points", tiers=[{"id": "a", "name": "A", "threshold": "1.5"}]) == {
        "tiers": {0: {"threshold": ["a whole number of points"]}}
    }
    assert refusal(colour="gold") == {"colour": ["Unknown field."]}


@pytest.mark.parametrize("period", ["lifetime", "calendar_year", "rolling_12_months"])
def test_the_previews_tier_at_agrees_with_status(period):
    chooser = random.Random(period)
    paid = programme(period=period, grace_days=20, paid={**PAID, "tier": "silver", "mode": "replace"})
    for _ in range(300):
        facts = [
            order(n, f"202{chooser.randint(4, 6)}-{chooser.randint(1, 12):02d}-{chooser.randint(1, 28):02d}",
                  str(chooser.randint(0, 400)), counts=chooser.random() > 0.2)
            for n in range(chooser.randint(0, 6))
        ]  # fmt: skip
        terms = [tiers.PaidTerm(99, at("2026-05-01"), 3, True)] if chooser.random() > 0.7 else []
        now = at(f"2026-{chooser.randint(1, 12):02d}-15")
        for candidate in (programme(period=period, grace_days=20), paid):
            assert (
                tiers.tier_at(candidate, facts, now, UTC_ZONE, terms)
                == tiers.status(candidate, facts, now, UTC_ZONE, terms).tier_id
            )
