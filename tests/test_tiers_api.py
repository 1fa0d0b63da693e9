"""Tiers at the admin API and the CLI: lists with counts, saves (refused per field), who moves, member history."""

from __future__ import annotations

import json

import pytest

from plugin.db import transaction
from plugin.services import shops, tier_preview, tier_sets, tiers
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_admin_api import call, session_token

PROGRAMME = {
    "metric": "spend",
    "period": "calendar_year",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100"},
        {"id": "gold", "name": "Gold", "threshold": "300", "multiplier": "1.5", "free_shipping": True},
    ],
}


def spend(client, order_id: int, customer_id: int, amount: str) -> None:
    deliver(client, "orders/paid", builders.order(order_id, customer_id, [builders.line(order_id * 10, amount)]))


def test_tiers_are_listed_with_member_counts_and_a_members_history_with_reasons(client, shop):
    token = session_token()
    assert call(client, "PUT", "tiers", token, PROGRAMME).status_code == 200
    spend(client, 1, 7001, "350.00")
    spend(client, 2, 7002, "150.00")
    spend(client, 3, 7003, "20.00")
    listed = call(client, "GET", "tiers", token).get_json()
    assert [(t["id"], t["members"]) for t in listed["tiers"]] == [("silver", 1), ("gold", 1)]
    assert (listed["version"], listed["members_without_tier"]) == (1, 1)
    member = call(client, "GET", "members/7001/tier", token).get_json()
    assert member["tier"] == "gold" and member["tier_until"].startswith("2028-01-01")
    assert [(h["from_tier"], h["to_tier"], h["reason"]) for h in member["history"]] == [
        (None, "gold", "spend 350.00 in 2026 (order #1)")
    ]
    assert call(client, "GET", "members/9999/tier", token).status_code == 404
    spec = client.get("/api/admin/openapi.json").get_json()
    assert {"/api/admin/tiers", "/api/admin/tiers/preview", "/api/admin/members/{customer_id}/tier"} <= set(
        spec["paths"]
    )


def test_who_moves_is_previewed_from_the_real_history_and_saving_applies_it(client, shop):
    token = session_token()
    call(client, "PUT", "tiers", token, PROGRAMME)
    spend(client, 1, 7001, "350.00")
    spend(client, 2, 7002, "150.00")
    spend(client, 3, 7003, "20.00")
    silver, gold = PROGRAMME["tiers"]
    raised = {**PROGRAMME, "tiers": [{**silver, "threshold": "10"}, {**gold, "threshold": "400"}]}
    preview = call(client, "POST", "tiers/preview", token, {"tiers": raised}).get_json()
    rows = {row["id"]: row for row in preview["tiers"]}
    assert (preview["complete"], preview["members"]) == (True, 3)
    assert (rows[None]["now"], rows[None]["up"], rows[None]["after"]) == (1, 1, 0)
    assert (rows["silver"]["now"], rows["silver"]["unchanged"], rows["silver"]["after"]) == (1, 1, 3)
    assert (rows["gold"]["now"], rows["gold"]["down"], rows["gold"]["after"]) == (1, 1, 0)
    assert sorted((m["from"] or "", m["to"]) for m in preview["moves"]) == [("", "silver"), ("gold", "silver")]
    saved = call(client, "PUT", "tiers", token, raised).get_json()  # inline jobs: applied at once
    assert [(t["id"], t["members"]) for t in saved["tiers"]] == [("silver", 3), ("gold", 0)]
    history = call(client, "GET", "members/7001/tier", token).get_json()["history"]
    assert history[0]["reason"] == "tier programme v2: spend 350.00 in 2026 (order #1)"


def refusal(client, body) -> dict:
    answer = call(client, "PUT", "tiers", session_token(), body)
    assert answer.status_code == 422, answer.get_json()
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_tiers"
    return error["fields"]


def test_every_refusal_the_issue_lists_names_its_field_and_saves_nothing(client, shop):
    out_of_order = {**PROGRAMME, "tiers": list(reversed(PROGRAMME["tiers"]))}
    assert refusal(client, out_of_order) == {
        "tiers": {"1": {"threshold": ["thresholds must rise: 100 is not above tier 0's 300"]}}
    }
    duplicate = {**PROGRAMME, "tiers": [PROGRAMME["tiers"][0], {**PROGRAMME["tiers"][1], "name": "SILVER"}]}
    assert refusal(client, duplicate) == {"tiers": {"1": {"name": ["duplicates the name of tier 0"]}}}
    zero = {**PROGRAMME, "tiers": [{**PROGRAMME["tiers"][0], "multiplier": "0"}]}
    assert refusal(client, zero) == {"tiers": {"0": {"multiplier": ["must be above 0, at most 100"]}}}
    unsupported = {"metric": "orders", "period": "rolling_12_months", "tiers": [{"id": "a", "name": "A",
                                                                                 "threshold": 2}]}  # fmt: skip
    assert refusal(client, unsupported) == {
        "period": ["the orders metric supports lifetime, calendar_year, not rolling_12_months"]
    }
    unmarked = {**PROGRAMME, "paid": {"tier": "gold", "skus": ["NOPE"], "product_tags": ["vip"]}}
    assert refusal(client, unmarked) == {
        "paid": {
            "skus": ["no product of the shop has the SKU 'NOPE'"],
            "product_tags": ["no product of the shop has the tag 'vip'"],
        }
    }
    assert call(client, "PUT", "tiers", session_token(), ["not", "an", "object"]).status_code == 400
    assert call(client, "GET", "tiers", session_token()).get_json()["version"] == 0  # nothing was saved
    preview = call(client, "POST", "tiers/preview", session_token(), {"tiers": zero})
    assert preview.status_code == 422 and preview.get_json()["error"]["fields"] == {
        "tiers": {"tiers": {"0": {"multiplier": ["must be above 0, at most 100"]}}}
    }


def cli(app, *args):
    return app.test_cli_runner().invoke(args=["loyalty", "tiers", *args])


def test_the_cli_saves_lists_previews_and_explains_tiers(app, client, shop):
    saved = cli(app, "save", SHOP, json.dumps(PROGRAMME))
    assert saved.exit_code == 0, saved.output
    spend(client, 1, 7001, "350.00")
    listed = json.loads(cli(app, "list", SHOP).output)
    assert [(t["id"], t["members"]) for t in listed["tiers"]] == [("silver", 0), ("gold", 1)]
    member = json.loads(cli(app, "member", SHOP, "7001").output)
    assert member["history"][0]["reason"] == "spend 350.00 in 2026 (order #1)"
    previewed = json.loads(cli(app, "preview", SHOP, json.dumps({**PROGRAMME, "metric": "orders"})).output)
    assert previewed["moves"] == [{"from": "gold", "to": None, "members": 1}]
    refused = cli(app, "save", SHOP, json.dumps({**PROGRAMME, "grace_days": -1}))
    assert refused.exit_code == 1 and "grace_days" in refused.output
    assert len(json.loads(cli(app, "history", SHOP).output)) == 1


@pytest.mark.parametrize(
    ("metric", "thresholds"), [("spend", ("100", "300")), ("points", ("100", "300")), ("orders", ("1", "2"))]
)
def test_the_preview_matches_what_applying_does(settings, client, shop, metric, thresholds):
    for n, (customer, amount) in enumerate(
        [(7001, "50.00"), (7002, "120.00"), (7003, "310.00"), (7004, "99.99"), (7005, "100.00"), (7002, "5.00")],
        start=1,
    ):
        deliver(client, "orders/paid", builders.order(n, customer, [builders.line(n * 10, amount, 2)]))
    deliver(client, "refunds/create", builders.refund(91, 3, {30: 1}))  # half of 7003's order
    deliver(client, "refunds/create", builders.refund(92, 2, {20: 2}))  # all of 7002's first order
    deliver(client, "orders/cancelled", {**builders.order(5, 7005, [builders.line(50, "100.00", 2)]),
                                         "cancelled_at": "2026-11-21T10:00:00Z"})  # fmt: skip
    silver, gold = PROGRAMME["tiers"]
    programme = {**PROGRAMME, "metric": metric, "tiers": [{**silver, "threshold": thresholds[0]},
                                                          {**gold, "threshold": thresholds[1]}]}  # fmt: skip
    with transaction(settings.database_url) as session:
        result = tier_preview.preview(session, shops.get(session, SHOP), programme)
        tier_sets.save(session, shops.get(session, SHOP), programme, "test")
    tier_sets.apply(settings.database_url, shop)
    with transaction(settings.database_url) as session:
        counts = tiers.counts(session, shop)
    assert {row["id"]: row["after"] for row in result["tiers"] if row["after"]} == counts
    assert sum(counts.values()) == 5


def test_the_preview_counts_a_capped_orders_points_without_the_tier_share_as_applying_does(settings, client, shop):
    from plugin.services import rule_sets

    with transaction(settings.database_url) as session:
        rule_sets.save(session, shops.get(session, SHOP), {"rules": [
            {"id": "cap", "type": "points_cap", "max_points": 250},
        ]}, "test")  # fmt: skip
    live = {"metric": "points", "period": "lifetime", "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100", "multiplier": "3"},
        {"id": "gold", "name": "Gold", "threshold": "300"},
    ]}  # fmt: skip
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), live, "test")
    for n, customer, amount in [(1, 7001, "100.00"), (2, 7001, "200.00"), (3, 7002, "150.00"), (4, 7002, "90.00")]:
        deliver(client, "orders/paid", builders.order(n, customer, [builders.line(n * 10, amount)]))
    # 7001's second order is capped (200 x 3 > 250): counted as 200, so 300 in all; 7002's counts 150 + 90.
    proposal = {**live, "tiers": [{**live["tiers"][0]}, {**live["tiers"][1], "threshold": "240"}]}
    with transaction(settings.database_url) as session:
        result = tier_preview.preview(session, shops.get(session, SHOP), proposal)
        tier_sets.save(session, shops.get(session, SHOP), proposal, "test")
    tier_sets.apply(settings.database_url, shop)
    with transaction(settings.database_url) as session:
        counts = tiers.counts(session, shop)
    assert {row["id"]: row["after"] for row in result["tiers"] if row["after"]} == counts == {"gold": 2}
