"""Staff cannot break their own programme through settings: bounded numbers and strings, readable stored rows."""

from __future__ import annotations

import json
import logging

import pytest
from sqlalchemy import update

from plugin.db import transaction
from plugin.models import Shop
from plugin.services import shops
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_admin_api import call, session_token
from tests.test_cli import run
from tests.test_storefront_proxy import get, signed

FIXED = {"id": "5-off", "kind": "fixed_amount", "points": 500, "amount": "5.00"}


def put_rewards(client, *rewards: dict, **changes):
    return call(client, "PUT", "settings", session_token(), json={"rewards": list(rewards), **changes})


def stored(settings) -> tuple[int, dict]:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        return shop.settings_version, shop.settings


@pytest.mark.parametrize(
    "changes, path",
    [
        ({"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "1e-999999"}]}, "percent"),
        ({"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "0.5"}]}, "percent"),
        ({"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "100.01"}]}, "percent"),
        ({"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "12.345"}]}, "percent"),
        ({"rewards": [{**FIXED, "amount": "1e30"}]}, "amount"),
        ({"rewards": [{**FIXED, "amount": 1e30}]}, "amount"),
        ({"rewards": [{**FIXED, "amount": "1e999999"}]}, "amount"),
        ({"rewards": [{**FIXED, "amount": "5.001"}]}, "amount"),
        ({"rewards": [{**FIXED, "amount": "9" * 100_000}]}, "amount"),
        ({"rewards": [{**FIXED, "min_subtotal": "1e30"}]}, "min_subtotal"),
        ({"rewards": [{**FIXED, "min_subtotal": "-0.01"}]}, "min_subtotal"),
        ({"rewards": [{**FIXED, "points": 2**63 - 1}]}, "points"),
        ({"rewards": [{**FIXED, "points": 10**30}]}, "points"),
        ({"rewards": [{**FIXED, "title": "x" * 1_000_000}]}, "title"),
        ({"rewards": [{**FIXED, "title": "five\x00off"}]}, "title"),
        ({"rewards": [{**FIXED, "title": "   "}]}, "title"),
        ({"rewards": [{**FIXED, "id": "x" * 1000}]}, "id"),
    ],
    ids=[
        "tiny-percent",
        "percent-below-1",
        "percent-over-100",
        "percent-3-decimals",
        "amount-1e30",
        "amount-1e30-number",
        "amount-1e999999",
        "amount-3-decimals",
        "amount-100k-digits",
        "min-subtotal-1e30",
        "min-subtotal-negative",
        "points-2^63-1",
        "points-1e30",
        "million-char-title",
        "title-with-nul",
        "blank-title",
        "long-id",
    ],
)
def test_out_of_bounds_reward_fields_are_refused_per_field_and_nothing_is_saved(client, settings, shop, changes, path):
    response = call(client, "PUT", "settings", session_token(), json=changes)
    assert response.status_code == 422, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == "invalid_settings"
    assert path in error["fields"]["rewards"]["0"]
    assert stored(settings)[0] == 1
    assert call(client, "GET", "settings", session_token()).status_code == 200


@pytest.mark.parametrize("per_amount", ["1e30", 1e30, "1e-999999", "0.001", "1000000.01", "NaN", "-Infinity"])
def test_out_of_bounds_earn_rates_are_refused(client, settings, shop, per_amount):
    response = call(client, "PUT", "settings", session_token(), json={"earn": {"points": 1, "per_amount": per_amount}})
    assert response.status_code == 422
    assert "per_amount" in response.get_json()["error"]["fields"]["earn"]
    assert stored(settings)[0] == 1


def test_earn_points_beyond_the_bound_are_refused(client, settings, shop):
    response = call(client, "PUT", "settings", session_token(), json={"earn": {"points": 10**30, "per_amount": "1"}})
    assert response.status_code == 422 and "points" in response.get_json()["error"]["fields"]["earn"]


def test_a_catalogue_longer_than_fifty_rewards_is_refused(client, settings, shop):
    rewards = [{"id": f"r{n}", "kind": "free_shipping", "points": 100} for n in range(51)]
    response = put_rewards(client, *rewards)
    assert response.status_code == 422 and "rewards" in response.get_json()["error"]["fields"]
    assert put_rewards(client, *rewards[:50]).status_code == 200


def test_in_bounds_values_are_saved_in_a_short_canonical_form(client, settings, shop):
    response = put_rewards(
        client,
        {**FIXED, "amount": 5, "min_subtotal": "20.5"},
        {"id": "tenth", "kind": "percentage", "points": 100, "percent": "12.50"},
        {"id": "all", "kind": "percentage", "points": 9000, "percent": 100},
        earn={"points": 1_000_000, "per_amount": "1000000"},
    )
    assert response.status_code == 200, response.get_json()
    saved = stored(settings)[1]
    assert saved["earn"] == {"points": 1_000_000, "per_amount": "1000000.00"}
    first, tenth, everything = saved["rewards"]
    assert (first["amount"], first["min_subtotal"]) == ("5.00", "20.50")
    assert (tenth["percent"], tenth["title"]) == ("12.5", "12.5% off")
    assert (everything["percent"], everything["title"]) == ("100", "100% off")


def test_three_decimals_are_allowed_only_in_a_currency_that_has_them(client, settings, shop):
    three = {**FIXED, "amount": "5.125"}
    assert put_rewards(client, three).status_code == 422  # the shop sells in USD
    with transaction(settings.database_url) as session:
        session.execute(update(Shop).values(currency="KWD"))
    response = put_rewards(client, three, earn={"points": 1, "per_amount": "0.500"})
    assert response.status_code == 200, response.get_json()
    assert stored(settings)[1]["rewards"][0]["amount"] == "5.125"
    assert put_rewards(client, {**FIXED, "amount": "5.1255"}).status_code == 422


def test_the_cli_refuses_out_of_bounds_settings_with_a_message(app, settings, shop):
    for changes in (
        {"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "1e-999999"}]},
        {"rewards": [{**FIXED, "amount": "1e30"}]},
        {"earn": {"points": 1, "per_amount": "1e30"}},
        {"rewards": [{**FIXED, "title": "x" * 1_000_000}]},
    ):
        result = run(app, "settings", SHOP, "--set", json.dumps(changes))
        assert result.exit_code == 1 and "invalid settings" in result.output, result.output[:300]
        assert result.exception is None or isinstance(result.exception, SystemExit)
    assert stored(settings)[0] == 1
    assert run(app, "settings", SHOP).exit_code == 0


@pytest.mark.parametrize("changes", ["[1, 2]", '"pending_days"', "7", "null"])
def test_the_cli_refuses_settings_that_are_not_an_object(app, settings, shop, changes):
    result = run(app, "settings", SHOP, "--set", changes)
    assert result.exit_code == 1 and "invalid settings" in result.output, result.output[:300]
    assert stored(settings)[0] == 1


BROKEN_ROW = {
    "earn": {"points": 3, "per_amount": "1e30"},
    "pending_days": 2,
    "colour": "red",
    "rewards": [
        {"id": "tiny", "kind": "percentage", "points": 100, "percent": "1E-999999"},
        {**FIXED, "title": "x" * 1_000_000},
        {"id": "ship", "kind": "free_shipping", "points": 300},
        {"id": "ship", "kind": "free_shipping", "points": 400},
        "not a reward",
    ],
}


@pytest.fixture
def broken_row(settings, shop):
    """A stored row no save could make today (as if saved before the rules were tightened, or edited by hand)."""
    with transaction(settings.database_url) as session:
        session.execute(update(Shop).values(settings=BROKEN_ROW, settings_version=7))


def test_a_stored_row_that_no_longer_validates_still_reads_with_defaults_for_the_bad_parts(client, broken_row, caplog):
    with caplog.at_level(logging.WARNING):
        response = call(client, "GET", "settings", session_token())
    assert response.status_code == 200
    shown = response.get_json()["settings"]
    assert shown["earn"] == {"points": 1, "per_amount": "1.00"}  # the bad rate falls back to the default
    assert shown["pending_days"] == 2 and "colour" not in shown  # good parts are kept
    assert [reward["id"] for reward in shown["rewards"]] == ["ship"]
    assert "fell back to the default" in caplog.text and "left out of the catalogue" in caplog.text


def test_the_widget_and_orders_keep_working_on_a_broken_stored_row(client, settings, broken_row):
    widget = get(client, "widget", signed(7001))
    assert widget.status_code == 200, widget.get_data(as_text=True)[:300]
    assert [reward["id"] for reward in widget.get_json()["rewards"]] == ["ship"]
    assert deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "30.00")])).status_code == 200
    customer = get(client, "widget", signed(7001)).get_json()["customer"]
    assert customer["balance"] == 30  # earned at the default rate, since the stored rate is unreadable


def test_a_save_after_a_broken_row_repairs_it(client, settings, broken_row):
    shown = call(client, "GET", "settings", session_token()).get_json()["settings"]
    response = call(client, "PUT", "settings", session_token(), json=shown)
    assert response.status_code == 200 and response.get_json()["version"] == 8
    assert stored(settings)[1]["earn"] == {"points": 1, "per_amount": "1.00"}
