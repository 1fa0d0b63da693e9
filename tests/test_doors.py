"""Every front door gives the same bad input the same clean refusal: 4xx, {"error": {code, message, fields}}."""

from __future__ import annotations

import json
import threading
from urllib.parse import urlencode

import pytest

from plugin.db import transaction
from plugin.models import SupportAction
from plugin.services import shops, support
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_admin_api import session_token
from tests.test_storefront_proxy import signed

HUGE = 10**30
BEYOND_BIGINT = str(2**64)


def make_key(settings) -> str:
    with transaction(settings.database_url) as session:
        return support.create_key(session, shops.get(session, SHOP), "desk", "write")[1]


@pytest.fixture
def doors(client, shop, settings):
    """Customer 7001 with 120 points from order 1, and a way in through each HTTP door: name -> (prefix, headers)."""
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)], email="ada@example.com"))
    return {
        "support_api": ("/api/support", {"Authorization": f"Bearer {make_key(settings)}"}),
        "admin": ("/api/admin/support", {"Authorization": f"Bearer {session_token()}"}),
    }


def balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), 7001).balance


def send(client, door, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
    prefix, auth = door
    all_headers = {**auth, **(headers or {})}
    if raw is not None:
        return client.open(
            f"{prefix}/{path}", method=method, headers=all_headers, data=raw, content_type="application/json"
        )
    return client.open(f"{prefix}/{path}", method=method, headers=all_headers, json=body)


def refusal(response) -> tuple[int, str, dict | None]:
    assert response.status_code < 500, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    return response.status_code, error["code"], error.get("fields")


GOOD = {"points": 5, "reason_code": "goodwill", "note": "late parcel"}
MALFORMED_ADJUSTMENTS = {
    "points as a string": ({**GOOD, "points": "5"}, {"points"}),
    "points as a bool": ({**GOOD, "points": True}, {"points"}),
    "points 1e30": ({**GOOD, "points": 1e30}, {"points"}),
    "points 2^63-1": ({**GOOD, "points": 2**63 - 1}, {"points"}),
    "points 10^30": ({**GOOD, "points": HUGE}, {"points"}),
    "points zero": ({**GOOD, "points": 0}, {"points"}),
    "a number as the note": ({**GOOD, "note": 12345}, {"note"}),
    "a list as the note": ({**GOOD, "note": ["late"]}, {"note"}),
    "an object as the note": ({**GOOD, "note": {"text": "late"}}, {"note"}),
    "a note with NUL": ({**GOOD, "note": "late\x00parcel"}, {"note"}),
    "a blank note": ({**GOOD, "note": "   "}, {"note"}),
    "an unknown reason": ({**GOOD, "reason_code": "whim"}, {"reason_code"}),
    "a non-string reason": ({**GOOD, "reason_code": 7}, {"reason_code"}),
    "nothing at all": ({}, {"points", "reason_code", "note"}),
    "a misspelt field": ({**GOOD, "reason": "goodwill"}, {"reason"}),
    "a list, not an object": ([GOOD], {"_schema"}),
    "a bare number": (5, {"_schema"}),
}


@pytest.mark.parametrize("body, bad_fields", MALFORMED_ADJUSTMENTS.values(), ids=MALFORMED_ADJUSTMENTS.keys())
def test_every_http_door_refuses_a_malformed_adjustment_alike(client, settings, doors, body, bad_fields):
    answers = {
        name: refusal(send(client, door, "POST", "members/7001/adjustments", body)) for name, door in doors.items()
    }
    assert answers["support_api"] == answers["admin"]
    status, code, fields = answers["admin"]
    assert (status, code, set(fields)) == (400, "invalid_request", bad_fields)
    assert all(isinstance(messages, list) and messages for messages in fields.values())
    assert balance(settings) == 120


@pytest.mark.parametrize(
    "path, body, bad_fields",
    [
        ("orders/1/reversals", {"points": HUGE, "reason_code": "fraud", "note": "x"}, {"points"}),
        ("orders/1/reversals", {"points": 1.5, "reason_code": "fraud", "note": "x"}, {"points"}),
        ("orders/1/reversals", {"reason_code": "fraud", "note": "nul\x00"}, {"note"}),
        ("orders/1/reversals", {"reason_code": "fraud", "note": 3}, {"note"}),
        ("actions/1/undo", {"reason_code": "fraud", "note": False}, {"note"}),
        ("actions/1/undo", {"note": "x"}, {"reason_code"}),
        ("redemptions/1/cancel", {"reason_code": "goodwill", "note": 42}, {"note"}),
        ("redemptions/1/cancel", {"reason_code": "goodwill", "note": "\x00"}, {"note"}),
    ],
)
def test_other_writes_refuse_malformed_bodies_alike(client, settings, doors, path, body, bad_fields):
    answers = {name: refusal(send(client, door, "POST", path, body)) for name, door in doors.items()}
    assert answers["support_api"] == answers["admin"]
    status, code, fields = answers["admin"]
    assert (status, code, set(fields)) == (400, "invalid_request", bad_fields)
    assert balance(settings) == 120


def test_a_body_that_is_not_json_is_a_400(client, doors):
    for door in doors.values():
        status, code, fields = refusal(send(client, door, "POST", "members/7001/adjustments", raw=b"{not json"))
        assert (status, code) == (400, "invalid_request") and fields


@pytest.mark.parametrize(
    "method, path, field",
    [
        ("GET", "members?customer_id=%C2%B2", "customer_id"),  # "²" passes str.isdigit() but not int()
        ("GET", f"members?customer_id={BEYOND_BIGINT}", "customer_id"),
        ("GET", "members?customer_id=-3", "customer_id"),
        ("GET", "members", "customer_id"),  # neither an email nor a customer id
        ("GET", f"actions?customer_id={BEYOND_BIGINT}", "customer_id"),
        ("GET", f"members/{BEYOND_BIGINT}/history", "customer_id"),
        ("GET", "members/7001/history?format=xml", "format"),
        ("GET", f"parked/{BEYOND_BIGINT}", "delivery_id"),
        ("POST", f"members/{BEYOND_BIGINT}/adjustments", "customer_id"),
        ("POST", f"orders/{BEYOND_BIGINT}/reversals", "order_id"),
        ("POST", f"actions/{BEYOND_BIGINT}/undo", "action_id"),
        ("POST", f"redemptions/{BEYOND_BIGINT}/cancel", "redemption_id"),
        ("POST", f"parked/{BEYOND_BIGINT}/replay", "delivery_id"),
    ],
)
def test_ids_and_queries_out_of_range_are_400s_naming_the_field(client, doors, method, path, field):
    body = {**GOOD, "reason_code": "fraud"} if method == "POST" else None
    answers = {name: refusal(send(client, door, method, path, body)) for name, door in doors.items()}
    assert answers["support_api"] == answers["admin"]
    status, code, fields = answers["admin"]
    assert (status, code, list(fields)) == (400, "invalid_request", [field])


def test_email_look_up_is_exact_and_knows_no_wildcards(client, doors):
    for door in doors.values():
        assert send(client, door, "GET", "members?email=ADA@example.com").get_json()["customer_id"] == 7001
        for pattern in ("%", "%25", "ada@example.co_", "_%", "%@example.com"):
            response = send(client, door, "GET", f"members?email={pattern}")
            assert refusal(response)[:2] == (404, "not_found"), pattern


def test_idempotency_key_reused_with_another_body_is_a_422_and_changes_nothing(client, settings, doors):
    for name, door in doors.items():
        key = {"Idempotency-Key": f"ticket-{name}"}
        first = send(client, door, "POST", "members/7001/adjustments", GOOD, key)
        assert first.status_code == 201
        again = send(client, door, "POST", "members/7001/adjustments", GOOD, key)
        assert (again.status_code, again.get_json()["id"]) == (201, first.get_json()["id"])
        other = send(client, door, "POST", "members/7001/adjustments", {**GOOD, "points": 500}, key)
        status, code, fields = refusal(other)
        assert (status, code, list(fields)) == (422, "idempotency_key_reused", ["Idempotency-Key"])
        elsewhere = send(client, door, "POST", "orders/1/reversals", {**GOOD, "points": None}, key)
        assert refusal(elsewhere)[:2] == (422, "idempotency_key_reused")
    assert balance(settings) == 120 + 5 + 5


def test_an_idempotency_key_longer_than_its_column_is_a_400(client, settings, doors):
    for door in doors.values():
        response = send(client, door, "POST", "members/7001/adjustments", GOOD, {"Idempotency-Key": "k" * 300})
        status, code, fields = refusal(response)
        assert (status, code, list(fields)) == (400, "invalid_request", ["Idempotency-Key"])
    assert balance(settings) == 120


def test_concurrent_retries_with_one_key_answer_one_action(app, settings, doors):
    prefix, auth = doors["support_api"]
    barrier = threading.Barrier(6)
    answers: list = []

    def retry() -> None:
        client = app.test_client()
        barrier.wait()
        response = client.post(
            f"{prefix}/members/7001/adjustments", json=GOOD, headers={**auth, "Idempotency-Key": "ticket-race"}
        )
        answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=retry) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in answers} <= {201, 409}, answers
    assert len({body["id"] for status, body in answers if status == 201}) == 1
    assert all(body["error"]["code"] == "idempotency_key_in_flight" for status, body in answers if status == 409)
    with transaction(settings.database_url) as session:
        assert session.query(SupportAction).count() == 1
    assert balance(settings) == 125


def cli(app, *args: str):
    return app.test_cli_runner().invoke(args=["loyalty", *args])


@pytest.mark.parametrize(
    "points, note, bad_field",
    [
        (str(HUGE), "late", "points"),
        (str(2**63 - 1), "late", "points"),
        ("5", "late\x00parcel", "note"),
        ("5", " ", "note"),
    ],
    ids=["10^30", "2^63-1", "NUL", "blank"],
)
def test_the_cli_refuses_what_the_apis_refuse_in_their_error_shape(
    app, client, settings, doors, points, note, bad_field
):
    result = cli(app, "adjust", SHOP, "7001", points, "--reason", "goodwill", "--note", note)
    assert result.exit_code == 1
    printed = json.loads(result.output.strip().splitlines()[-1])
    body = {"points": int(points), "reason_code": "goodwill", "note": note}
    answered = send(client, doors["support_api"], "POST", "members/7001/adjustments", body).get_json()
    assert printed == answered and list(printed["error"]["fields"]) == [bad_field]
    assert balance(settings) == 120


def test_the_cli_and_the_apis_answer_an_action_alike(app, client, doors):
    printed = json.loads(cli(app, "adjust", SHOP, "7001", "5", "--reason", "goodwill", "--note", "late").output)
    listed = send(client, doors["support_api"], "GET", "actions").get_json()["actions"][0]
    assert printed == listed


def test_the_app_proxy_refuses_malformed_redeem_bodies_in_the_same_shape(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "600.00")]))
    for body, field in [
        ({}, "reward_id"),
        ({"reward_id": 5}, "reward_id"),
        ({"reward_id": ["5-off"]}, "reward_id"),
        ({"reward_id": "5-off", "idempotency_key": 1e30}, "idempotency_key"),
        ({"reward_id": "5-off", "idempotency_key": HUGE}, "idempotency_key"),
        ({"reward_id": "5-off\x00"}, "reward_id"),
        ({"reward_id": "5-off", "idempotency_key": "click-0001\x00"}, "idempotency_key"),
        ([{"reward_id": "5-off"}], "_schema"),
    ]:
        response = client.post(f"/proxy/redeem?{urlencode(signed(7001))}", json=body)
        status, code, fields = refusal(response)
        assert (status, code, list(fields)) == (400, "invalid_request", [field]), body
    assert balance(settings) == 600


DOCUMENTS = ["/api/admin/openapi.json", "/api/support/openapi.json"]


def _walk(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key, value
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


@pytest.mark.parametrize("url", DOCUMENTS)
def test_every_bound_in_the_documents_is_a_number(client, url):
    spec = client.get(url).get_json()
    bounds = [(path, key, value) for path, key, value in _walk(spec) if key in ("minimum", "maximum")]
    assert bounds and all(isinstance(value, int | float) for _, _, value in bounds), bounds


@pytest.mark.parametrize("url", DOCUMENTS)
def test_every_post_that_reads_a_body_declares_it(client, url):
    spec = client.get(url).get_json()
    posts = {path: ops["post"] for path, ops in spec["paths"].items() if "post" in ops}
    with_body = {p for p in posts if p.endswith(("/adjustments", "/reversals", "/undo", "/cancel", "/keys"))}
    assert with_body and all("requestBody" in posts[p] for p in with_body), sorted(with_body)
    undo = posts[next(p for p in with_body if p.endswith("/undo") and "/actions/" in p)]
    assert undo["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/UndoRequest"}


def test_error_answers_match_the_documented_error_schema(client, doors):
    from plugin.services.schemas import ErrorEnvelope

    for url, door in zip(DOCUMENTS, [doors["admin"], doors["support_api"]], strict=True):
        spec = client.get(url).get_json()
        default = spec["components"]["responses"]["DEFAULT_ERROR"]["content"]["application/json"]["schema"]
        assert default == {"$ref": "#/components/schemas/ErrorEnvelope"}
        envelope = spec["components"]["schemas"]["ErrorEnvelope"]
        assert envelope["required"] == ["error"] and envelope["additionalProperties"] is False
        detail = spec["components"]["schemas"]["ErrorDetail"]
        assert detail["properties"]["code"]["type"] == "string" and set(detail["required"]) == {"code", "message"}
        answers = [
            send(client, door, "POST", "members/7001/adjustments", {"points": "many"}),  # 400, with fields
            send(client, door, "GET", "members?email=nobody@example.com"),  # 404
            send(client, door, "POST", "members/7001/adjustments", raw=b"[1"),  # not JSON
            client.get(f"{door[0]}/actions"),  # no credentials: 401
        ]
        assert [a.status_code for a in answers] == [400, 404, 400, 401]
        for answer in answers:  # the schema the document is generated from accepts each, unknown keys refused
            assert ErrorEnvelope().validate(answer.get_json()) == {}, answer.get_json()


@pytest.mark.parametrize("url", ["/api/support/members", "/api/admin/settings", "/api/admin/support/keys"])
def test_a_405_names_the_methods_allowed(client, url):
    response = client.delete(url)
    assert response.status_code == 405 and "GET" in response.headers["Allow"]
    assert response.get_json()["error"]["code"] == "method_not_allowed"


def test_the_support_api_publishes_its_own_document(client):
    spec = client.get("/api/support/openapi.json").get_json()
    assert spec["info"]["title"] == "Loyalty support API"
    assert "/api/support/members/{customer_id}/adjustments" in spec["paths"]
    assert spec["components"]["securitySchemes"]["supportKey"]["scheme"] == "bearer"
    adjust = spec["paths"]["/api/support/members/{customer_id}/adjustments"]["post"]
    assert adjust["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Action"
    }
    assert [p["name"] for p in adjust["parameters"] if p["in"] == "header"] == ["Idempotency-Key"]


def test_the_app_proxy_refuses_an_id_beyond_bigint_with_a_400(client, shop):
    response = client.get(f"/proxy/redemptions/{BEYOND_BIGINT}?{urlencode(signed(7001))}")
    assert refusal(response) == (400, "invalid_request", {"redemption_id": [f"must be from 1 to {2**63 - 1}"]})


def test_a_retry_that_loses_the_race_for_its_key_answers_the_winners_action(client, settings, doors):
    """The other request commits the key between this one's look-up and its insert: the answer is the winner's."""
    from sqlalchemy import create_engine, event, text

    from plugin.db import engine_for
    from plugin.services.schemas import AdjustmentRequest, load

    if settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's BEGIN IMMEDIATE serialises writers: no other request can commit in between")
    asked = support.fingerprint("adjust", 7001, load(AdjustmentRequest(), GOOD))
    other = create_engine(settings.database_url)
    winner: list[int] = []

    def commit_the_same_key_first(conn, cursor, statement, parameters, context, executemany):
        if winner or "FROM support_actions" not in statement or "idempotency_key" not in statement:
            return
        with other.begin() as rival:
            winner.append(
                rival.execute(
                    text(
                        "INSERT INTO support_actions (shop_id, member_id, action, actor, reason_code, note, points,"
                        " balance_before, balance_after, idempotency_key, request_fingerprint, created_at)"
                        " SELECT shop_id, id, 'adjust', 'key:desk', 'goodwill', 'late parcel', 5, 120, 125,"
                        " 'ticket-race', :asked, now() FROM members WHERE customer_id = 7001 RETURNING id"
                    ),
                    {"asked": asked},
                ).scalar_one()
            )

    engine = engine_for(settings.database_url)
    event.listen(engine, "after_cursor_execute", commit_the_same_key_first)
    try:
        response = send(
            client, doors["support_api"], "POST", "members/7001/adjustments", GOOD, {"Idempotency-Key": "ticket-race"}
        )
    finally:
        event.remove(engine, "after_cursor_execute", commit_the_same_key_first)
        other.dispose()
    assert winner, "the race was not staged"
    assert (response.status_code, response.get_json()["id"]) == (201, winner[0])
    with transaction(settings.database_url) as session:
        assert session.query(SupportAction).count() == 1
    assert balance(settings) == 120  # the loser posted nothing (the staged winner is a bare row)


@pytest.mark.parametrize("blank", ["", "   "])
def test_a_blank_idempotency_key_is_no_key_so_each_request_is_its_own_action(client, settings, doors, blank):
    # Stripped, a blank key was stored as "" and the next blank-keyed request hit the unique index: a 500.
    for door in doors.values():
        for _ in range(2):
            response = send(client, door, "POST", "members/7001/adjustments", GOOD, {"Idempotency-Key": blank})
            assert response.status_code == 201, response.get_data(as_text=True)
    assert balance(settings) == 120 + 4 * 5
