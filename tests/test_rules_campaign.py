"""Campaigns: a multiplier or a fixed bonus between two instants in the shop's time zone, stacking up to a cap."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.rules_helpers import by_kind, held, line, lot, refund, snapshot

BLACK_FRIDAY = {
    "type": "campaign", "name": "Black Friday", "multiplier": "2",
    "starts_at": "2026-11-27T00:00:00", "ends_at": "2026-11-28T00:00:00",
}  # fmt: skip
NEW_YORK = {"time_zone": "America/New_York"}


def test_the_issues_example_is_explained_as_written():
    built = lot(snapshot(line(1, "37.42")), BLACK_FRIDAY, **NEW_YORK)
    assert built.explanation == "74 points: 37.42 eligible \u00d7 1 per 1.00, \u00d7 2 Black Friday campaign (rules v5)"


def test_a_campaign_counts_from_midnight_in_the_shops_time_zone_not_utc():
    order = snapshot(line(1, "10.00"))
    just_before = datetime(2026, 11, 27, 4, 59, tzinfo=UTC)  # 23:59 on the 26th in New York
    just_after = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert lot(order, BLACK_FRIDAY, paid_at=just_before, **NEW_YORK).points == 10
    assert lot(order, BLACK_FRIDAY, paid_at=just_after, **NEW_YORK).points == 20
    assert lot(order, BLACK_FRIDAY, paid_at=datetime(2026, 11, 28, 5, 0, tzinfo=UTC), **NEW_YORK).points == 10


def test_a_campaign_limited_to_a_product_set_multiplies_only_those_lines():
    coats_only = {**BLACK_FRIDAY, "match": {"product_types": ["Outerwear"]}}
    built = lot(snapshot(line(1, "100.00", product=1), line(2, "50.00", product=2)), coats_only, **NEW_YORK)
    assert by_kind(built) == {"base": 150, "campaign": 100}


def test_a_campaign_limited_to_a_customer_tag_skips_other_members():
    members_only = {**BLACK_FRIDAY, "customer_tag": "VIP"}
    order = snapshot(line(1, "10.00"))
    assert lot(order, members_only, **NEW_YORK).points == 10
    assert lot(order, members_only, tags=frozenset({"vip"}), **NEW_YORK).points == 20


def test_overlapping_campaigns_stack_up_to_the_merchants_cap():
    triple = {**BLACK_FRIDAY, "id": "weekend", "name": "Weekend", "multiplier": "3"}
    order = snapshot(line(1, "10.00"))
    assert lot(order, BLACK_FRIDAY, triple, campaign_stack_cap="10", **NEW_YORK).points == 10 + 10 + 20
    capped = lot(order, BLACK_FRIDAY, triple, campaign_stack_cap="2.5", **NEW_YORK)
    assert by_kind(capped) == {"base": 10, "campaign": 15}  # x2 fits, the x3 only adds the remaining 0.5


def test_a_fixed_bonus_campaign_adds_points_and_is_taken_back_by_share():
    bonus = {**BLACK_FRIDAY, "multiplier": None, "bonus_points": 100}
    bonus.pop("multiplier")
    built = lot(snapshot(line(1, "10.00"), line(2, "30.00")), bonus, **NEW_YORK)
    assert by_kind(built) == {"base": 40, "campaign": 100}
    assert held(built, refund(1, {2: 1})) == 10 + 25
