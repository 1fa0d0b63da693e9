"""Rule set versions and the preview through the admin API, the CLI and the service."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from marshmallow import ValidationError
from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import Posting, RuleSetVersion, Shop, utcnow
from plugin.programme import events
from plugin.services import accrual, preview, rule_sets, shops
from tests.conftest import SHOP
from tests.test_admin_api import call, session_token

X2 = {"rules": [{"type": "multiplier", "multiplier": "2", "match": {"product_ids": [501]}, "name": "Coats"}]}


def pay(settings, order_id: int, customer_id: int, *lines: tuple[str, int | None], days_ago: int = 1) -> None:
    order_lines = tuple(
        events.OrderLine(order_id * 10 + i, 1, Decimal(amount), product_id=product)
        for i, (amount, product) in enumerate(lines)
    )
    snapshot = events.OrderSnapshot(
        order_id, f"#{order_id}", events.Customer(customer_id), None, "USD", False, False, order_lines
    )
    with transaction(settings.database_url) as session:
        accrual.apply(
            session, shops.get(session, SHOP), events.OrderPaid(snapshot, utcnow() - timedelta(days=days_ago))
        )


@pytest.fixture
def history(settings, shop):
    pay(settings, 1, 7001, ("100.00", 501), ("50.00", 502))
    pay(settings, 2, 7002, ("30.00", 502))
    pay(settings, 3, 7003, ("10.00", 501))
    pay(settings, 4, 7001, ("999.00", 501), days_ago=40)  # outside a 30-day window
    with transaction(settings.database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), events.OrderRefunded(events.RefundFacts(31, 3, {30: 1})))
    return settings


def test_the_preview_compares_points_money_members_and_the_largest_changes_and_saves_nothing(history):
    with transaction(history.database_url) as session:
        before = session.execute(select(func.count(Posting.id))).scalar_one()
        result = preview.preview(session, shops.get(session, SHOP), X2, 30)
    assert result["complete"] is True and result["orders_replayed"] == 3
    assert result["points_issued"] == {"current": 180, "proposed": 280, "change": 100}  # order 3 was refunded
    assert result["money_value"] == {
        "currency": "USD", "per_point": "0.01", "current": "1.80", "proposed": "2.80", "change": "1.00"
    }  # fmt: skip
    assert result["members_affected"] == 1
    assert result["largest_changes"] == [
        {"order_id": 1, "customer_id": 7001, "current": 150, "proposed": 250, "change": 100}
    ]
    with transaction(history.database_url) as session:
        assert session.execute(select(func.count(Posting.id))).scalar_one() == before
        assert session.execute(select(Shop.rules_version)).scalar_one() == 0


def test_a_preview_past_its_time_bound_stops_and_says_it_is_partial(history):
    with transaction(history.database_url) as session:
        result = preview.preview(session, shops.get(session, SHOP), X2, 30, seconds=0)
    assert (result["complete"], result["orders_replayed"]) == (False, 0)


def test_the_admin_api_saves_versions_refuses_bad_rules_per_field_and_previews(client, history):
    token = session_token()
    assert call(client, "GET", "rules", token).get_json()["version"] == 0
    bad = {"rules": [{"type": "multiplier", "multiplier": 0, "match": {"vendors": ["a"]}},
                     {"type": "points_cap", "max_points": -3}]}  # fmt: skip
    refused = call(client, "PUT", "rules", token, json=bad)
    assert refused.status_code == 422
    assert set(refused.get_json()["error"]["fields"]["rules"]) == {"0", "1"}
    assert call(client, "PUT", "rules", token, json=X2).get_json()["version"] == 1
    assert call(client, "PUT", "rules", token, json={"rules": []}).get_json()["version"] == 2
    assert [v["version"] for v in call(client, "GET", "rules/history", token).get_json()["versions"]] == [2, 1]
    answer = call(client, "POST", "rules/preview", token, json={"rules": X2, "days": 30})
    assert answer.status_code == 200 and answer.get_json()["points_issued"]["change"] == 100
    assert call(client, "POST", "rules/preview", token, json={"rules": X2, "days": "many"}).status_code == 422
    assert call(client, "POST", "rules/preview", token, json={"rules": bad}).status_code == 422
    assert client.put("/api/admin/rules", data="[", headers={"Authorization": f"Bearer {token}"}).status_code == 400
    assert call(client, "PUT", "rules", None, json=X2).status_code == 401
    with transaction(history.database_url) as session:
        assert session.execute(select(func.count(RuleSetVersion.id))).scalar_one() == 2


def test_the_cli_previews_as_json_and_refuses_bad_rules_with_their_fields(app, history):
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["loyalty", "rules", "preview", SHOP, json.dumps(X2), "--days", "30"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["points_issued"]["proposed"] == 280
    refused = runner.invoke(
        args=["loyalty", "rules", "save", SHOP, '{"rules": [{"type": "points_cap", "max_points": -1}]}']
    )
    assert refused.exit_code != 0 and "max_points" in refused.output
    saved = runner.invoke(args=["loyalty", "rules", "save", SHOP, json.dumps(X2)])
    assert json.loads(saved.output)["version"] == 1
    assert json.loads(runner.invoke(args=["loyalty", "rules", "show", SHOP]).output)["version"] == 1


def test_saving_a_rule_set_naming_an_unknown_collection_is_refused(history):
    with transaction(history.database_url) as session, pytest.raises(ValidationError) as refused:
        rule_sets.save(session, shops.get(session, SHOP), {"rules": [
            {"type": "exclusion", "match": {"collections": ["nowhere"]}}]}, "test")  # fmt: skip
    assert "unknown collection" in str(refused.value.messages)


def test_the_preview_reuses_lots_made_under_the_current_rules_and_recomputes_older_ones(history, monkeypatch):
    built = []  # rule set versions the engine (build_lot) ran: refunded orders, which need contributions
    tallied = []  # rule set versions the compiled points-only rules ran: every other order
    real_build_lot = preview.program.build_lot
    real_compile = preview.tally.compile_points

    def counting_build_lot(*args, **kwargs):
        built.append(kwargs["rules"].version)
        return real_build_lot(*args, **kwargs)

    def counting_compile(rules, *args, **kwargs):
        points = real_compile(rules, *args, **kwargs)

        def counted(*order):
            tallied.append(rules.version)
            return points(*order)

        return counted

    monkeypatch.setattr(preview.program, "build_lot", counting_build_lot)
    monkeypatch.setattr(preview.tally, "compile_points", counting_compile)
    with transaction(history.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), X2, "test")  # version 1: every stored lot is older
    with transaction(history.database_url) as session:
        stale = preview.preview(session, shops.get(session, SHOP), X2, 30)
    assert stale["points_issued"] == {"current": 280, "proposed": 280, "change": 0}  # both sides recomputed
    assert (sorted(built), sorted(tallied)) == ([1, 2], [1, 1, 2, 2])  # order 3 (refunded) by the engine

    pay(history, 5, 7004, ("100.00", 501), ("40.00", 502))  # its lot is made under version 1
    with transaction(history.database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), events.OrderRefunded(events.RefundFacts(51, 5, {51: 1})))
    built.clear()
    tallied.clear()
    with transaction(history.database_url) as session:
        fresh = preview.preview(session, shops.get(session, SHOP), X2, 30)
    # Order 5 keeps 200 of its 240 points after the refund of its 40.00 line, read from its stored lot.
    assert fresh["points_issued"] == {"current": 480, "proposed": 480, "change": 0}
    assert (sorted(built), sorted(tallied)) == ([1, 2, 2], [1, 1, 2, 2])  # order 5's current side from its lot
