"""JSON bodies at every door: nesting past the parser's depth and lone UTF-16 surrogates get a 400, never a 500.

Found by probing the running app (docs/security.md): 50,000 `[` answered 500 (RecursionError) at the admin API,
the support API and the App Proxy's redeem; a note or title of "\\ud800" answered 500 once the database refused to
encode it.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import SupportAction, SupportKey
from plugin.web.json_bodies import loads
from tests import builders
from tests.conftest import deliver
from tests.test_admin_api import session_token
from tests.test_storefront_proxy import give, signed
from tests.test_support import balance, make_key

DEEP_ARRAY = "[" * 50_000 + "]" * 50_000
DEEP_OBJECT = '{"a":' * 30_000 + "1" + "}" * 30_000
JSON = "application/json"


@pytest.fixture
def member(client, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)]))
    return 7001


def refused_cleanly(response) -> bool:
    body = response.get_json(silent=True) or {}
    return response.status_code == 400 and {"code", "message"} <= set(body.get("error", {}))


def support_call(client, key: str, path: str, data: str):
    return client.post(f"/api/support/{path}", data=data, content_type=JSON, headers={"Authorization": f"Bearer {key}"})


def staff_call(client, method: str, path: str, data: str):
    headers = {"Authorization": f"Bearer {session_token()}"}
    return client.open(f"/api/admin/{path}", method=method, data=data, content_type=JSON, headers=headers)


@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
def test_a_body_nested_past_the_parsers_depth_is_a_400_at_every_door(client, settings, member, body):
    key = make_key(settings, "write")
    give(settings, 7002, 600)
    answers = {
        "support adjustment": support_call(client, key, "members/7001/adjustments", body),
        "support reversal": support_call(client, key, "orders/1/reversals", body),
        "staff settings": staff_call(client, "PUT", "settings", body),
        "staff new key": staff_call(client, "POST", "support/keys", body),
        "staff import undo": staff_call(client, "POST", "imports/1/undo", body),
        "proxy redeem": client.post(f"/proxy/redeem?{urlencode(signed(7002))}", data=body, content_type=JSON),
    }
    assert {door: answer.status_code for door, answer in answers.items() if not refused_cleanly(answer)} == {}
    assert balance(settings) == 120


def test_a_lone_surrogate_in_a_support_note_is_a_400_and_records_nothing(client, settings, member):
    key = make_key(settings, "write")
    body = '{"points": 5, "reason_code": "goodwill", "note": "\\ud800"}'
    answer = support_call(client, key, "members/7001/adjustments", body)
    assert refused_cleanly(answer), (answer.status_code, answer.get_data(as_text=True)[:200])
    assert balance(settings) == 120
    with transaction(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(SupportAction)) == 0


def test_a_lone_surrogate_in_a_reward_title_or_key_name_is_a_400_and_changes_nothing(client, settings, member):
    title = '{"rewards": [{"id": "p", "kind": "percentage", "points": 100, "percent": "10", "title": "\\udfff"}]}'
    before = staff_call(client, "GET", "settings", "").get_json()
    key_name = '{"name": "\\ud83d"}'
    answers = [staff_call(client, "PUT", "settings", title), staff_call(client, "POST", "support/keys", key_name)]
    assert [a.status_code for a in answers if not refused_cleanly(a)] == []
    assert staff_call(client, "GET", "settings", "").get_json() == before
    with transaction(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(SupportKey)) == 0


def test_an_escaped_surrogate_pair_is_one_character_and_is_kept(client, settings, member):
    key = make_key(settings, "write")
    body = '{"points": 5, "reason_code": "goodwill", "note": "\\ud83d\\ude00"}'
    answer = support_call(client, key, "members/7001/adjustments", body)
    assert answer.status_code == 201 and answer.get_json()["note"] == "\U0001f600"


@pytest.mark.parametrize(
    "text, reason",
    [(DEEP_ARRAY, "nested too deeply"), ('["\\udc00"]', "lone UTF-16 surrogate"), (b'{"a": "\xff"}', "utf-8")],
    ids=["deep", "surrogate", "bad-utf8"],
)
def test_the_loader_refuses_with_a_value_error_that_says_why(text, reason):
    with pytest.raises(ValueError, match=reason):
        loads(text)


def test_the_loader_reads_ordinary_json_and_a_literal_backslash_u():
    assert loads(b'{"note": "\\\\ud800 is how it is spelt", "n": [1, {"k": "\\u00e9"}]}') == {
        "note": "\\ud800 is how it is spelt",
        "n": [1, {"k": "é"}],
    }
