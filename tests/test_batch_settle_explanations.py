"""The set-based settlement's stored strings (the lot's "explanation", the earn posting's note and details) are
byte for byte those of the straightforward path: every explanation rendered on its own, by the renderer as it was
before it remembered numbers and the note reused the lot's text (decision 0074)."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from plugin.programme import earning as program
from plugin.programme import events, explanations
from plugin.programme.earning import ProgramSettings
from plugin.programme.rules import Product, rule_set, validate_rule_set
from plugin.programme.rules.core import MemberTier
from plugin.services import accrual, batch_accrual

PAID_AT = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
PRODUCTS = {
    1: Product(1, "Outerwear", "Acme", frozenset({"winter"}), frozenset({"11", "coats"})),
    2: Product(2, "Shoes", "Bolt", frozenset({"summer"}), frozenset({"22"})),
    3: Product(3, "Accessories", "Acme", frozenset(), frozenset()),
}
GOLD = MemberTier("gold", "Gold", Decimal("1.5"), 3)
SILVER = MemberTier("silver", "Silver", Decimal("1.25"), 3)
CAMPAIGN = {"type": "campaign", "name": "Black Friday", "starts_at": "2026-11-27T00:00:00",
            "ends_at": "2026-11-28T00:00:00"}  # fmt: skip


# The renderer as it was (plugin/programme/explanations.py before decision 0074), kept verbatim as the reference.


def _straight_number(value: Any, lang: str) -> str:
    text = str(value)
    try:
        exact = Decimal(text)
    except InvalidOperation:
        return text
    if not exact.is_finite():
        return text
    if "e" in text.casefold():
        text = f"{exact:f}"
    mark, group = explanations.NUMBER_SYMBOLS[explanations.language(lang)]
    sign = "-" if text.startswith("-") else ""
    whole, _, fraction = text.lstrip("+-").partition(".")
    if len(whole) >= 4:
        whole = f"{int(whole):,}".replace(",", group)
    return sign + whole + (mark + fraction if fraction else "")


def _straight_render(details: dict[str, Any] | None, locale: str | None = "en") -> str | None:
    if details is None:
        return None
    return _straight(details, explanations.language(locale))


def _straight(details: dict[str, Any], lang: str) -> str:
    key = details.get("key")
    if key == "text":
        return str(details.get("text", ""))
    table = explanations.CATALOGUE[lang]
    if key not in table:
        return str(details.get("text") or key)
    params = {name: _straight_param(name, value, lang) for name, value in details.items() if name != "key"}
    text = table[key].format_map(explanations._Missing(params))
    if details.get("on") is not None:
        text = table["on_amount"].format(text=text, amount=_straight_number(details["on"], lang))
    return text


def _straight_param(name: str, value: Any, lang: str) -> str:
    if isinstance(value, dict) and "key" in value:
        return _straight(value, lang)
    if isinstance(value, list):
        return ", ".join(_straight_param(name, item, lang) for item in value)
    if name in explanations.NUMBER_PARAMS or name == "version":
        return _straight_number(value, lang) if name != "version" else str(value)
    return str(value)


def _order(lines: list[tuple[int, str, int | None]], name: str | None, shipping: str = "0") -> events.OrderSnapshot:
    return events.OrderSnapshot(
        order_id=4242, name=name, customer=events.Customer(77, "a@example.com", tags=frozenset({"vip"})),
        email=None, currency="USD", test=False, taxes_included=False, shipping=Decimal(shipping),
        lines=tuple(
            events.OrderLine(n, quantity, Decimal(gross), product_id=product, variant_id=n * 10)
            for n, (quantity, gross, product) in enumerate(lines, 1)
        ),
    )  # fmt: skip


def _settled_against_straight(
    snapshot: events.OrderSnapshot, rules_json: dict[str, Any] | None, tier: MemberTier | None, version: int = 5
) -> tuple[dict, dict | None]:
    """_settle's order row and posting, each stored string checked against the straightforward path's."""
    rules = rule_set(validate_rule_set(rules_json), version) if rules_json is not None else rule_set(None, 0)
    settings = ProgramSettings(include_shipping=True)
    shop = SimpleNamespace(id=9, tiers_version=3)
    event = events.OrderPaid(snapshot, PAID_AT)
    order, posting = batch_accrual._settle(
        shop, event, 5, rules, settings, set(), tier, PRODUCTS, snapshot.name, 3 if tier else None
    )
    lot = program.build_lot(
        snapshot, settings, PAID_AT, has_member=True, rules=rules, products=PRODUCTS,
        member_tags=snapshot.customer.tags, member_tier=tier,
    )  # fmt: skip
    expected = lot.to_json()
    if lot.contributions:
        expected["explanation"] = _straight_render(lot.details)
    assert order["lot"] == expected
    assert order["lot"].get("explanation") == expected.get("explanation")  # the string itself, not only equal dicts
    if posting is None:
        assert order["points_held"] == 0
        return order, None
    described = SimpleNamespace(name=snapshot.name, order_id=snapshot.order_id, cancelled_at=None)
    details = accrual._details(described, lot, lot.points)
    assert posting["details"] == details
    assert posting["note"] == _straight_render(details)
    assert posting["note"] == accrual._explain(described, lot, lot.points)  # the one-by-one path's note
    return order, posting


CASES = {
    "base alone": ([(1, "37.42", 3)], {"rules": [{"type": "base_rate", "points": 1, "per_amount": "1.00"}]}, None),
    "multipliers on some lines and on every line": (
        [(2, "1250.00", 1), (1, "80.10", 2), (1, "5.00", 3)],
        {
            "rules": [
                {"type": "multiplier", "multiplier": "2", "match": {"product_types": ["Shoes"]}, "name": "Shoes"},
                {"type": "multiplier", "multiplier": "1.5", "match": {"tags": ["winter"], "product_ids": [1, 2]}},
                {"type": "multiplier", "multiplier": "3", "match": {"collections": ["22", "coats"]}},
                {"type": "multiplier", "multiplier": "1.5", "match": {"variant_ids": [10, 20, 30]}},
            ]
        },
        None,
    ),
    "campaign and tier multiplier": (
        [(1, "194.00", 1), (1, "194.00", 2)],
        {"rules": [{**CAMPAIGN, "multiplier": "2"}]},
        GOLD,
    ),
    "campaign bonus, fixed points and a per-order bonus": (
        [(1, "19.99", 3)],
        {
            "rules": [
                {**CAMPAIGN, "bonus_points": 50},
                {"type": "fixed_points", "points": 1500, "name": "Welcome"},
                {"type": "fixed_points", "points": 5},
            ]
        },
        SILVER,
    ),
    "capped": (
        [(4, "2000.00", 1), (1, "10.00", 3)],
        {
            "rules": [
                {"type": "multiplier", "multiplier": "1.5", "match": {"vendors": ["acme"]}},
                {"type": "points_cap", "max_points": 1000},
            ]
        },
        GOLD,
    ),
    "a base rate's cap and a segment rate": (
        [(1, "300.00", 2)],
        {
            "rules": [
                {"type": "customer_segment", "tag": "vip", "points": 5, "per_amount": "100"},
                {"type": "base_rate", "points": 1, "per_amount": "1", "cap_per_order": 12},
            ]
        },
        None,
    ),
    "nothing eligible": (
        [(1, "50.00", 1)],
        {"rules": [{"type": "exclusion", "match": {"product_types": ["Outerwear"]}}]},
        GOLD,
    ),
    "under the minimum": (
        [(1, "20.00", 3)],
        {"rules": [{"type": "base_rate", "points": 1, "per_amount": "1", "min_subtotal": "50"}]},
        None,
    ),
    "the rules before any rule set": ([(1, "12.50", None)], None, None),
}


@pytest.mark.parametrize("name", [None, "#1001", "Order 1,002"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_settlements_lot_explanation_note_and_details_are_the_straightforward_paths(case, name):
    lines, rules_json, tier = CASES[case]
    _settled_against_straight(_order(lines, name, shipping="4.99"), rules_json, tier)


def test_an_order_without_a_name_is_labelled_by_its_id_in_the_note():
    _, posting = _settled_against_straight(_order([(1, "37.42", 3)], None), None, None)
    assert posting["note"] == "order 4242: 37 points: 37.42 eligible \u00d7 1 per 1.00 (rules v0)"


multipliers = st.sampled_from(["0.5", "1.5", "2", "3", "1.25"])
matches = st.one_of(
    st.fixed_dictionaries({"product_types": st.lists(st.sampled_from(["Outerwear", "Shoes"]), min_size=1)}),
    st.fixed_dictionaries({"tags": st.just(["winter"]), "product_ids": st.just([3])}),
    st.fixed_dictionaries({"collections": st.just(["coats"])}),
)
rule = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("base_rate"), "points": st.integers(1, 5), "per_amount": st.sampled_from(["1", "0.5", "3"])},
        optional={"min_subtotal": st.sampled_from(["10", "1000"]), "cap_per_order": st.integers(0, 3000)},
    ),
    st.fixed_dictionaries({"type": st.just("multiplier"), "multiplier": multipliers, "match": matches},
                          optional={"name": st.just("Big sale")}),
    st.fixed_dictionaries({"type": st.just("exclusion"), "match": matches}),
    st.fixed_dictionaries({"type": st.just("fixed_points"), "points": st.integers(1, 5000)},
                          optional={"name": st.just("Thanks")}),
    st.fixed_dictionaries({"type": st.just("points_cap"), "max_points": st.integers(0, 5000)}),
    st.builds(lambda m: {**CAMPAIGN, "multiplier": m}, multipliers),
    st.builds(lambda p: {**CAMPAIGN, "bonus_points": p}, st.integers(1, 2000)),
)  # fmt: skip
order_lines = st.lists(
    st.tuples(
        st.integers(1, 3),
        st.decimals("0", "25000", places=2).map(str),
        st.sampled_from([1, 2, 3, None]),
    ),
    min_size=1,
    max_size=4,
)


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=order_lines,
    rules_json=st.lists(rule, max_size=5).map(lambda rules: {"campaign_stack_cap": "3", "rules": rules}),
    tier=st.sampled_from([None, GOLD, SILVER]),
    name=st.sampled_from([None, "#7", "1234"]),
)
def test_any_rule_set_settles_to_the_straightforward_paths_strings(lines, rules_json, tier, name):
    _settled_against_straight(_order(lines, name, shipping="0"), rules_json, tier)


scalars = st.one_of(
    st.sampled_from(["1234.50", "0.10", "1E+1", "-1234.5", "999", "12", "NaN", "Infinity", "abc", "+5", " 7 ", ""]),
    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
    st.integers(-(10**7), 10**7),
    st.booleans(),
    st.text(max_size=6),
    st.decimals(allow_nan=True, allow_infinity=True),
)
keys = st.sampled_from([*explanations.CATALOGUE["en"], "text", "from_the_future"])


def _fields(key: str) -> list[str]:
    """The parameters the key's English template names, then the ones every template may be given."""
    template = explanations.CATALOGUE["en"].get(key, "")
    named = [field for _, field, _, _ in string.Formatter().parse(template) if field]
    return [*named, *sorted(explanations.NUMBER_PARAMS), "version", "on", "text", "x"]


def _details_of(values: st.SearchStrategy) -> st.SearchStrategy:
    """Details of any key, most of their parameters the ones its template shows."""
    return keys.flatmap(
        lambda key: st.dictionaries(st.sampled_from(_fields(key)[:4] * 4 + _fields(key)), values, max_size=5).map(
            lambda params: {**params, "key": key}
        )
    )


details = st.recursive(
    _details_of(scalars),
    lambda inner: _details_of(st.one_of(scalars, inner, st.lists(st.one_of(scalars, inner), max_size=3))),
    max_leaves=12,
)


@hypothesis_settings(max_examples=400, deadline=None)
@given(details=details, locale=st.sampled_from(["en", "fr", "fr-CA", "de", None]))
def test_any_details_render_as_the_straightforward_renderer_does(details, locale):
    assert explanations.render(details, locale) == _straight_render(details, locale)
    for value in details.values():
        if not isinstance(value, (dict, list)):
            assert explanations.number(value, locale) == _straight_number(value, explanations.language(locale))
