"""The embedded admin's support desk: its API under session tokens, and the Support section in Chromium."""

from __future__ import annotations

import csv
import io

import pytest

from plugin.db import transaction
from plugin.models import SupportAction
from plugin.services import shops
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_admin_api import session_token


def staff(client, method: str, path: str, token: str | None = "valid", json=None, idempotency_key: str | None = None):
    token = session_token() if token == "valid" else token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return client.open(f"/api/admin/support/{path}", method=method, headers=headers, json=json)


@pytest.fixture
def member(client, shop):
    """Customer 7001 (ada@example.com) with 120 points from order 1 and 30 from order 2."""
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)], email="ada@example.com"))
    deliver(client, "orders/paid", builders.order(2, 7001, [builders.line(20, "30.00")], email="ada@example.com"))
    return 7001


def balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), 7001).balance


def test_staff_look_up_adjust_and_undo_as_themselves(client, settings, member):
    card = staff(client, "GET", "members?email=ADA@example.com").get_json()
    assert (card["customer_id"], card["balance"], card["available"]) == (7001, 150, 150)
    assert [(h["kind"], h["points"], h["order"]) for h in card["history"]] == [("earn", 30, "#2"), ("earn", 120, "#1")]

    body = {"points": 25, "reason_code": "goodwill", "note": "late parcel"}
    first = staff(client, "POST", "members/7001/adjustments", json=body, idempotency_key="ticket-88")
    again = staff(client, "POST", "members/7001/adjustments", json=body, idempotency_key="ticket-88")
    assert (first.status_code, again.status_code) == (201, 201)
    action = first.get_json()
    assert action["id"] == again.get_json()["id"]
    assert (action["actor"], action["balance_before"], action["balance_after"]) == ("staff:42", 150, 175)
    assert balance(settings) == 175
    line = staff(client, "GET", "members/7001/history").get_json()["history"][0]
    assert (line["by"], line["reason_code"], line["note"], line["support_action_id"]) == (
        "staff:42",
        "goodwill",
        "late parcel",
        action["id"],
    )

    undone = staff(client, "POST", f"actions/{action['id']}/undo", json={"reason_code": "correction", "note": "typo"})
    assert undone.status_code == 201
    assert (undone.get_json()["points"], undone.get_json()["undo_of"]) == (-25, action["id"])
    assert balance(settings) == 150
    twice = staff(client, "POST", f"actions/{action['id']}/undo", json={"reason_code": "correction", "note": "x"})
    assert (twice.status_code, twice.get_json()["error"]["code"]) == (409, "support_error")
    trail = staff(client, "GET", "actions?customer_id=7001").get_json()["actions"]
    assert [(a["action"], a["actor"], a["undone_by"]) for a in trail] == [
        ("undo", "staff:42", None),
        ("adjust", "staff:42", undone.get_json()["id"]),
    ]
    with transaction(settings.database_url) as session:
        assert {a.actor for a in session.query(SupportAction)} == {"staff:42"}


def test_refusals_carry_the_support_errors_status_and_code(client, settings, member):
    missing = staff(client, "GET", "members?email=nobody@example.com")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "not_found")
    invalid = staff(client, "POST", "members/7001/adjustments", json={"points": 5, "reason_code": "whim", "note": "x"})
    assert (invalid.status_code, invalid.get_json()["error"]["code"]) == (400, "invalid_request")
    assert "reason_code" in invalid.get_json()["error"]["message"]
    not_json = staff(client, "POST", "members/7001/adjustments")
    assert (not_json.status_code, not_json.get_json()["error"]["code"]) == (400, "invalid_request")
    no_reward = staff(client, "POST", "redemptions/999/cancel", json={"reason_code": "goodwill", "note": "x"})
    assert no_reward.status_code == 404
    assert balance(settings) == 150


def test_an_order_reversal_and_its_undo(client, settings, member):
    too_much = staff(client, "POST", "orders/1/reversals", json={"points": 121, "reason_code": "fraud", "note": "x"})
    assert too_much.status_code == 400
    reversal = staff(
        client, "POST", "orders/1/reversals", json={"points": 50, "reason_code": "fraud", "note": "chargeback"}
    )
    assert reversal.status_code == 201
    assert (reversal.get_json()["points"], reversal.get_json()["actor"]) == (-50, "staff:42")
    assert balance(settings) == 100
    undone = staff(
        client,
        "POST",
        f"actions/{reversal.get_json()['id']}/undo",
        json={"reason_code": "correction", "note": "chargeback won"},
    )
    assert undone.get_json()["points"] == 50 and balance(settings) == 150


def test_history_exports_as_csv(client, settings, member):
    staff(client, "POST", "members/7001/adjustments", json={"points": -10, "reason_code": "correction", "note": "dup"})
    response = staff(client, "GET", "members/7001/history?format=csv")
    assert response.mimetype == "text/csv"
    assert "points-7001.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["kind"], r["points"], r["by"]) for r in rows] == [
        ("adjust", "-10", "staff:42"),
        ("earn", "30", ""),
        ("earn", "120", ""),
    ]


def test_keys_are_created_once_listed_and_revoked(client, settings, member):
    created = staff(client, "POST", "keys", json={"name": "helpdesk", "scope": "write"})
    assert created.status_code == 201
    key = created.get_json()
    assert key["key"].startswith(f"lsk_{key['prefix']}_") and key["revoked_at"] is None
    listed = staff(client, "GET", "keys").get_json()["keys"]
    assert [(k["id"], k["name"], k["scope"]) for k in listed] == [(key["id"], "helpdesk", "write")]
    assert "key" not in listed[0]  # shown once, at creation
    support_api = {"Authorization": f"Bearer {key['key']}"}
    assert client.get("/api/support/members?customer_id=7001", headers=support_api).status_code == 200

    revoked = staff(client, "POST", f"keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.get_json()["revoked_at"]
    assert client.get("/api/support/members?customer_id=7001", headers=support_api).status_code == 401
    assert staff(client, "POST", "keys/999999/revoke").status_code == 404
    bad_scope = staff(client, "POST", "keys", json={"name": "x", "scope": "admin"})
    assert (bad_scope.status_code, bad_scope.get_json()["error"]["code"]) == (400, "invalid_request")
    assert staff(client, "POST", "keys", json={"name": " ", "scope": "read"}).status_code == 400


def test_parked_deliveries_are_listed_and_replayed(client, settings, shop):
    deliver(client, "orders/paid", b"{broken")
    [parked] = staff(client, "GET", "parked").get_json()["parked"]
    assert parked["reason"].startswith("malformed JSON") and parked["topic"] == "orders/paid"
    response = staff(client, "POST", f"parked/{parked['id']}/replay")
    assert response.get_json() == {"id": parked["id"], "status": "parked"}  # still broken: stays parked
    assert staff(client, "POST", "parked/999999/replay").status_code == 404


def test_the_openapi_document_lists_the_support_routes(client):
    paths = client.get("/api/admin/openapi.json").get_json()["paths"]
    assert "/api/admin/support/members/{customer_id}/adjustments" in paths
    assert "/api/admin/support/keys" in paths
