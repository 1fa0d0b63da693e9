"""The rule engine as a whole: registration, stage order, explanations, versions, and refusing bad rule sets."""

from __future__ import annotations

import importlib

import pytest
from marshmallow import ValidationError

from plugin.programme.earning import Lot
from plugin.programme.rules import MAX_RULES, STAGES, validate_rule_set
from plugin.programme.rules.registry import RULE_TYPES
from tests.rules_helpers import by_kind, held, line, lot, refund, snapshot

CAMPAIGN = {
    "type": "campaign", "name": "BF", "multiplier": "2",
    "starts_at": "2026-11-27T00:00:00", "ends_at": "2026-11-28T00:00:00",
}  # fmt: skip


def test_every_registered_rule_type_is_a_module_with_a_schema_a_parser_and_a_strategy():
    for name, cls in RULE_TYPES.items():
        module = importlib.import_module(cls.__module__)
        assert module.__doc__, name
        assert hasattr(cls, "Schema") and hasattr(cls, "from_json") and hasattr(cls, "apply"), name


def test_rules_combine_in_the_documented_order_base_multipliers_bonuses_caps():
    assert STAGES == ("eligibility", "base", "multiplier", "bonus", "cap")
    built = lot(
        snapshot(line(1, "100.00")),
        {"type": "points_cap", "max_points": 250},  # listed first, applied last
        {"type": "fixed_points", "points": 100},
        CAMPAIGN,
        {"type": "base_rate", "points": 1, "per_amount": "1"},
    )
    assert [c.kind for c in built.contributions] == ["base", "campaign", "bonus", "cap"]
    assert by_kind(built) == {"base": 100, "campaign": 100, "bonus": 100, "cap": -50}
    assert built.points == 250


def test_the_lot_names_the_rule_set_version_and_keeps_each_contributions_rule_and_version():
    built = lot(snapshot(line(1, "10.00")), {"type": "fixed_points", "points": 5, "id": "trip"}, version=7)
    assert built.rule_version.endswith("+rules-7")
    assert [(c.rule_id, c.rule_version) for c in built.contributions] == [("base", 7), ("trip", 7)]


def test_a_lot_is_reversed_from_its_own_contributions_after_the_rules_change_or_vanish():
    built = lot(snapshot(line(1, "10.00"), line(2, "10.00")), CAMPAIGN)
    stored = Lot.from_json(built.to_json())  # all that is left of the old rules is on the lot
    assert stored == built
    assert held(stored, refund(1, {1: 1})) == 20
    assert held(stored, refund(1, {1: 1}), refund(2, {2: 1})) == 0


@pytest.mark.parametrize(
    ("rule_set", "where", "message"),
    [
        (
            {"rules": [{"type": "multiplier", "multiplier": "0", "match": {"vendors": ["a"]}}]},
            ("rules", 0, "multiplier"),
            "above 0",
        ),
        (
            {"rules": [{"type": "multiplier", "multiplier": "-2", "match": {"vendors": ["a"]}}]},
            ("rules", 0, "multiplier"),
            "above 0",
        ),
        ({"rules": [{**CAMPAIGN, "ends_at": "2026-11-26T00:00:00"}]}, ("rules", 0, "ends_at"), "after starts_at"),
        ({"rules": [{"type": "points_cap", "max_points": -1}]}, ("rules", 0, "max_points"), "between 0"),
        ({"rules": [{"type": "base_rate", "cap_per_order": -5}]}, ("rules", 0, "cap_per_order"), "between 0"),
        ({"rules": [{"type": "mystery"}]}, ("rules", 0, "type"), "must be one of"),
        ({"rules": [{"type": "base_rate", "typo": 1}]}, ("rules", 0, "typo"), "Unknown field"),
        ({"time_zone": "Mars/Olympus"}, ("time_zone",), "unknown time zone"),
        ({"rules": [{"type": "fixed_points", "points": 1}] * (MAX_RULES + 1)}, ("rules",), "at most 200 rules"),
    ],
)
def test_bad_rule_sets_are_refused_with_a_message_on_the_field(rule_set, where, message):
    with pytest.raises(ValidationError) as refused:
        validate_rule_set(rule_set)
    found = refused.value.messages
    for key in where:
        found = found[key]
    assert message in " ".join(found if isinstance(found, list) else [str(found)])


def test_a_collection_the_shop_does_not_have_is_refused():
    proposed = {"rules": [{"type": "multiplier", "multiplier": "2", "match": {"collections": ["coats", "ghosts"]}}]}
    with pytest.raises(ValidationError) as refused:
        validate_rule_set(proposed, known_collections=frozenset({"coats"}))
    assert refused.value.messages == {"rules": {0: {"match": {"collections": ["unknown collection(s): ghosts"]}}}}
    assert validate_rule_set(proposed, known_collections=frozenset({"coats", "ghosts"}))["rules"][0]["id"]


def test_exactly_two_hundred_rules_are_accepted():
    assert len(validate_rule_set({"rules": [{"type": "fixed_points", "points": 1}] * MAX_RULES})["rules"]) == MAX_RULES
