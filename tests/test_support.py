"""Support desk: keys and scopes, audited actions with undo, the explained history, CSV, parked deliveries."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select, text

from plugin import ledger
from plugin.db import transaction
from plugin.models import Posting, SupportKey
from plugin.services import shops, support
from tests import builders
from tests.conftest import SHOP, deliver

OTHER = "other-shop.myshopify.com"


def make_key(settings, scope: str, domain: str = SHOP) -> str:
    with transaction(settings.database_url) as session:
        return support.create_key(session, shops.get(session, domain), f"{scope}-desk", scope)[1]


def api(client, method: str, path: str, key: str | None, json=None, idempotency_key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.open(f"/api/support/{path}", method=method, headers=headers, json=json)


@pytest.fixture
def member(client, shop):
    """Customer 7001 (ada@example.com) with 120 points from order 1 (two lines) and 30 from order 2."""
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)], email="ada@example.com"))
    deliver(client, "orders/paid", builders.order(2, 7001, [builders.line(20, "30.00")], email="ada@example.com"))
    return 7001


def balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), 7001).balance


def test_keys_are_stored_hashed_scoped_and_revocable(client, settings, member):
    read_key, write_key = make_key(settings, "read"), make_key(settings, "write")
    with transaction(settings.database_url) as session:
        stored = " ".join(k.key_hash + k.prefix for k in session.scalars(select(SupportKey)))
    assert read_key not in stored and write_key not in stored
    assert api(client, "GET", "members?customer_id=7001", read_key).status_code == 200
    refused = api(
        client, "POST", "members/7001/adjustments", read_key, {"points": 5, "reason_code": "goodwill", "note": "x"}
    )
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (403, "read_only_key")
    assert api(client, "GET", "members?customer_id=7001", "lsk_nope_nope").status_code == 401
    assert api(client, "GET", "members?customer_id=7001", None).status_code == 401
    with transaction(settings.database_url) as session:
        key_id = session.scalars(select(SupportKey.id).where(SupportKey.scope == "read")).one()
        support.revoke_key(session, shops.get(session, SHOP), key_id)
    assert api(client, "GET", "members?customer_id=7001", read_key).status_code == 401


def test_a_key_sees_only_its_own_shop(client, settings, member):
    with transaction(settings.database_url) as session:
        shops.install(session, OTHER, None, settings.encryption_keys)
    other_key = make_key(settings, "write", OTHER)
    assert api(client, "GET", "members?customer_id=7001", other_key).status_code == 404
    assert (
        api(client, "POST", "orders/1/reversals", other_key, {"reason_code": "fraud", "note": "x"}).status_code == 404
    )


def test_lookup_by_email_gives_the_sidebar_card_in_one_call(client, settings, member):
    card = api(client, "GET", "members?email=ADA@example.com", make_key(settings, "read")).get_json()
    assert (card["customer_id"], card["balance"], card["available"]) == (7001, 150, 150)
    assert [(h["kind"], h["points"], h["order"]) for h in card["history"]] == [("earn", 30, "#2"), ("earn", 120, "#1")]
    assert card["history"][0]["rule_version"] == "earn-1+settings-1"


def test_adjustment_is_audited_idempotent_and_undoable(client, settings, member):
    key = make_key(settings, "write")
    body = {"points": 25, "reason_code": "goodwill", "note": "late parcel"}
    first = api(client, "POST", "members/7001/adjustments", key, body, idempotency_key="ticket-88")
    again = api(client, "POST", "members/7001/adjustments", key, body, idempotency_key="ticket-88")
    assert (first.status_code, again.status_code) == (201, 201)
    action = first.get_json()
    assert action["id"] == again.get_json()["id"]
    assert (action["balance_before"], action["balance_after"], action["actor"]) == (150, 175, "key:write-desk")
    assert balance(settings) == 175
    line = api(client, "GET", "members/7001/history", key).get_json()["history"][0]
    assert (line["by"], line["reason_code"], line["note"], line["support_action_id"]) == (
        "key:write-desk",
        "goodwill",
        "late parcel",
        action["id"],
    )

    undone = api(client, "POST", f"actions/{action['id']}/undo", key, {"reason_code": "correction", "note": "typo"})
    assert (
        undone.status_code == 201
        and undone.get_json()["points"] == -25
        and undone.get_json()["undo_of"] == action["id"]
    )
    assert balance(settings) == 150
    twice = api(client, "POST", f"actions/{action['id']}/undo", key, {"reason_code": "correction", "note": "again"})
    assert twice.status_code == 409
    trail = api(client, "GET", "actions?customer_id=7001", key).get_json()["actions"]
    assert [(a["action"], a["undone_by"]) for a in trail] == [("undo", None), ("adjust", undone.get_json()["id"])]


def test_actions_need_a_reason_code_and_a_note(client, settings, member):
    key = make_key(settings, "write")
    for body in (
        {"points": 5, "note": "x"},
        {"points": 5, "reason_code": "whim", "note": "x"},
        {"points": 5, "reason_code": "goodwill", "note": " "},
        {"points": 0, "reason_code": "goodwill", "note": "x"},
    ):
        response = api(client, "POST", "members/7001/adjustments", key, body)
        assert (response.status_code, response.get_json()["error"]["code"]) == (400, "invalid_request"), body
    assert balance(settings) == 150


def test_an_order_reversal_survives_later_deliveries_and_its_undo_respects_refunds(client, settings, member):
    key = make_key(settings, "write")
    too_much = api(client, "POST", "orders/1/reversals", key, {"points": 121, "reason_code": "fraud", "note": "x"})
    assert too_much.status_code == 400
    reversal = api(
        client, "POST", "orders/1/reversals", key, {"points": 50, "reason_code": "fraud", "note": "chargeback"}
    )
    assert reversal.status_code == 201 and reversal.get_json()["points"] == -50
    assert balance(settings) == 100
    deliver(client, "orders/create", builders.order(1, 7001, [builders.line(10, "60.00", 2)]))  # a late delivery
    assert balance(settings) == 100  # the reversal is one of the order's facts: nothing is re-awarded
    deliver(client, "refunds/create", builders.refund(9, 1, {10: 1}))  # half the order refunded: 60 points
    assert balance(settings) == 30 + 10  # order 1 may now hold 60 - 50 = 10; order 2 still holds 30
    undone = api(
        client,
        "POST",
        f"actions/{reversal.get_json()['id']}/undo",
        key,
        {"reason_code": "correction", "note": "chargeback won"},
    )
    assert undone.get_json()["points"] == 50  # back up to the 60 the refunded order may hold
    assert balance(settings) == 90
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_history_exports_as_csv(client, settings, member):
    key = make_key(settings, "write")
    api(client, "POST", "members/7001/adjustments", key, {"points": -10, "reason_code": "correction", "note": "dup"})
    response = api(client, "GET", "members/7001/history?format=csv", key)
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["kind"], r["points"], r["reason_code"]) for r in rows] == [
        ("adjust", "-10", "correction"),
        ("earn", "30", ""),
        ("earn", "120", ""),
    ]


def test_parked_deliveries_are_listed_and_replayed(client, settings, shop):
    deliver(client, "orders/paid", b"{broken")
    key = make_key(settings, "write")
    [parked] = api(client, "GET", "parked", key).get_json()["parked"]
    assert parked["reason"].startswith("malformed JSON")
    response = api(client, "POST", f"parked/{parked['id']}/replay", key)
    assert response.get_json() == {"id": parked["id"], "status": "parked"}  # still broken: stays parked


def test_the_ledger_adds_up_after_every_kind_of_action(client, settings, member):
    key = make_key(settings, "write")
    api(client, "POST", "members/7001/adjustments", key, {"points": 7, "reason_code": "goodwill", "note": "a"})
    api(client, "POST", "orders/2/reversals", key, {"reason_code": "refund", "note": "b"})
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []
        assert session.execute(select(func.sum(Posting.points))).scalar_one() == 150 + 7 - 30
        assert session.execute(text("SELECT count(*) FROM support_actions")).scalar_one() == 2


def set_policy(settings, policy: str) -> None:
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": policy})


def spend(settings, points: int, key: str) -> None:
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member = shops.member(session, shop_row, 7001)
        ledger.post(session, shop_row.id, ledger.Entry(member.id, "redeem", -points, "redemption", key, key, "test"))


def notes(settings) -> list[str]:
    with transaction(settings.database_url) as session:
        return [p.note for p in session.scalars(select(Posting).order_by(Posting.id))]


@pytest.mark.parametrize(
    "policy, after_refund, after_duplicate, after_next_earn",
    [
        # 150 earned (120 on order 1, 30 on order 2); 140 spent; order 1 fully refunded (-120), then 50 earned.
        ("allow_negative", -110, -110, -60),  # the whole reversal, into the red
        ("stop_at_zero", 0, 0, 50),  # 10 taken back, 110 forgiven for good
        ("claw_back", 0, 0, 0),  # 10 taken back, 110 owed; the next 50 earned pay 50 of it
    ],
)
def test_spent_points_policies_on_a_worked_example(
    client, settings, member, policy, after_refund, after_duplicate, after_next_earn
):
    set_policy(settings, policy)
    spend(settings, 140, "r-1")
    deliver(client, "refunds/create", builders.refund(9, 1, {10: 2}))
    assert balance(settings) == after_refund
    deliver(client, "refunds/create", builders.refund(9, 1, {10: 2}))  # a repeat changes nothing
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)]))
    assert balance(settings) == after_duplicate
    deliver(client, "orders/paid", builders.order(3, 7001, [builders.line(30, "50.00")]))
    assert balance(settings) == after_next_earn
    if policy != "allow_negative":
        assert any(f"{policy}: 110 points already spent" in (note or "") for note in notes(settings))
    if policy == "claw_back":
        assert any("claw_back of 50 points" in (note or "") for note in notes(settings))
        deliver(client, "orders/paid", builders.order(4, 7001, [builders.line(40, "100.00")]))
        assert balance(settings) == 40  # the remaining 60 owed are paid from these 100
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_support_cancels_an_unused_reward_and_the_points_come_back_once(fake_shop_api, shop_with_token):
    from plugin import create_app
    from plugin.services import redemption

    settings, state = fake_shop_api
    client = create_app(settings, TESTING=True).test_client()
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "600.00")]))
    with transaction(settings.database_url) as session:
        made = redemption.redeem(session, shops.get(session, SHOP), 7001, "5-off")
        redemption_id = made.id
    assert redemption.issue(settings, redemption_id) == "issued"
    key = make_key(settings, "write")
    body = {"reason_code": "goodwill", "note": "ordered by mistake"}
    response = api(client, "POST", f"redemptions/{redemption_id}/cancel", key, body)
    assert response.status_code == 200 and response.get_json()["status"] == "cancelled"
    assert [c["deleted"] for c in state.codes.values()] == [True]
    assert balance(settings) == 600
    again = api(client, "POST", f"redemptions/{redemption_id}/cancel", key, body)
    assert again.status_code == 409 and balance(settings) == 600


def test_a_parked_delivery_can_be_inspected_before_a_replay(client, settings, shop):
    deliver(client, "orders/paid", b'{"id": 1, "line_items": ')
    key = make_key(settings, "read")
    [parked] = api(client, "GET", "parked", key).get_json()["parked"]
    shown = api(client, "GET", f"parked/{parked['id']}", key).get_json()
    assert (shown["topic"], shown["status"], shown["body"]) == ("orders/paid", "parked", '{"id": 1, "line_items": ')
    assert shown["reason"].startswith("malformed JSON")
