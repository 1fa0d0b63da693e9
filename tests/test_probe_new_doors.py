"""The session's new doors given hostile text: a control character (NUL first) is a 400 naming the field, never a 500.

Found by probing (docs/security.md): NUL in a milestone or tier title, a survey question, an action key's name, a
survey's text answer (signed endpoint and App Proxy) or the widget's idempotency key reached PostgreSQL and was a 500.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Delivery, Member
from plugin.programme.referrals import CART_ATTRIBUTE
from tests import builders, referral_helpers
from tests.conftest import deliver
from tests.test_admin_api import call, session_token
from tests.test_milestones_actions import ALICE, balance, post
from tests.test_milestones_actions import programme as signed_programme  # noqa: F401 (a fixture)
from tests.test_milestones_widget_api import PROGRAMME as MILESTONES
from tests.test_milestones_widget_api import programme as widget_programme  # noqa: F401 (a fixture)
from tests.test_referrals_admin import _one_good_and_one_blocked
from tests.test_storefront_proxy import post as proxy_post
from tests.test_storefront_proxy import signed
from tests.test_tiers_api import PROGRAMME as TIERS

NUL = "a\x00b"


def with_value(document: dict, path: tuple, value) -> dict:
    copy = json.loads(json.dumps(document))
    place = copy
    for step in path[:-1]:
        place = place[step]
    place[path[-1]] = value
    return copy


def refused(response) -> dict:
    assert response.status_code in (400, 422), response.get_data(as_text=True)[:300]  # each door's own refusal
    error = response.get_json()["error"]
    assert error["code"].startswith("invalid_") and error["message"]
    return error["fields"]


@pytest.mark.parametrize(
    "page, document, path",
    [
        ("milestones", MILESTONES, ("thresholds", 0, "title")),
        ("milestones", MILESTONES, ("actions", 0, "title")),
        ("milestones", MILESTONES, ("actions", 2, "questions", 0, "text")),
        ("tiers", TIERS, ("tiers", 0, "name")),
        ("tiers", {**TIERS, "tiers": [{**TIERS["tiers"][0], "perks": ["ok"]}]}, ("tiers", 0, "perks", 0)),
        ("tiers", {**TIERS, "tiers": [{**TIERS["tiers"][0], "tag": "vip"}]}, ("tiers", 0, "tag")),
    ],
    ids=["threshold title", "action title", "question text", "tier name", "tier perk", "tier tag"],
)
def test_a_control_character_in_programme_text_is_a_400_and_saves_nothing(client, shop, page, document, path):
    token = session_token()
    before = call(client, "GET", page, token).get_json()
    fields = refused(call(client, "PUT", page, token, with_value(document, path, NUL)))
    assert "must not contain control characters" in json.dumps(fields)
    assert call(client, "GET", page, token).get_json() == before


def test_a_control_character_in_an_action_keys_name_is_a_400(client, shop):
    fields = refused(call(client, "POST", "action-keys", session_token(), {"name": NUL}))
    assert fields == {"name": ["must not contain control characters"]}
    assert call(client, "GET", "action-keys", session_token()).get_json()["keys"] == []


def test_a_nul_in_a_survey_answer_at_the_signed_endpoint_is_a_400_and_posts_nothing(client, settings, signed_programme):  # noqa: F811
    body = {"action": "nps", "customer_id": ALICE, "answers": {"recommend": 9, "why": NUL}}
    fields = refused(post(client, signed_programme, body, "survey-1"))
    assert fields == {"answers": {"why": ["must not contain control characters"]}}
    assert balance(settings) == 0


def test_an_unknown_action_id_is_not_echoed_whole(client, signed_programme):  # noqa: F811
    response = post(client, signed_programme, {"action": "a" * 100_000, "customer_id": ALICE}, "long-1")
    assert response.status_code == 404 and len(response.get_data()) < 500


@pytest.mark.parametrize(
    "body, field",
    [
        ({"idempotency_key": NUL}, "idempotency_key"),
        ({"idempotency_key": "k1", "answers": {"recommend": 9, "extra": NUL}}, "answers"),
    ],
    ids=["idempotency key", "answer"],
)
def test_the_widgets_action_door_refuses_a_nul_with_a_400(client, settings, widget_programme, body, field):  # noqa: F811
    assert field in refused(proxy_post(client, "actions/nps", signed(ALICE), body))


BEYOND_BIGINT = str(2**64)


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("GET", f"events/deliveries?endpoint_id={BEYOND_BIGINT}", None, "endpoint_id"),
        ("GET", "events/deliveries?event_id=%00", None, "event_id"),
        ("POST", "events/replay", {"event_id": NUL}, "event_id"),
        (
            "POST",
            "events/replay",
            {"since": "2026-01-01T00:00:00Z", "until": "2026-02-01T00:00:00Z", "endpoint_id": 2**64},
            "endpoint_id",
        ),
        ("GET", "reports/kpis?month=0000-01", None, "month"),
        ("GET", "reports/kpis?month=9999-12", None, "month"),
        ("GET", "reports/liability?start=9999-12-31&end=9999-12-31", None, "start"),
        ("GET", "reports/breakage?start=0001-01-01&end=0001-01-02", None, "start"),
        ("GET", "surveys/%00/answers", None, "survey_id"),
    ],
    ids=[
        "log endpoint past bigint",
        "log event NUL",
        "replay event NUL",
        "replay endpoint past bigint",
        "month 0",
        "month 9999",
        "dates near 9999",
        "dates near year 1",
        "survey NUL",
    ],
)
def test_event_report_and_survey_queries_out_of_range_are_400s_naming_the_field(
    client, shop, method, path, body, field
):
    fields = refused(call(client, method, path, session_token(), body))
    assert field in fields


def test_revoking_an_action_key_named_with_a_nul_or_at_length_is_a_404(client, shop):
    for key_id in ("%00", "k" * 5000):
        response = call(client, "DELETE", f"action-keys/{key_id}", session_token())
        assert response.status_code == 404 and len(response.get_data()) < 500


def test_approving_a_blocked_referral_with_a_nul_in_the_reason_is_a_400_and_approves_nothing(client, settings, shop):
    _one_good_and_one_blocked(client, settings)
    token = session_token()
    fields = refused(call(client, "POST", "referrals/2/approve", token, {"reason": "checked\x00"}))
    assert fields == {"reason": ["must not contain control characters"]}
    blocked = call(client, "GET", "referrals?status=blocked", token).get_json()["referrals"]
    assert [r["order_id"] for r in blocked] == [2]


@pytest.mark.parametrize("token", ["\x00", "v1.\x00.sig", "\ud800"], ids=["NUL", "NUL inside", "lone surrogate"])
def test_an_order_whose_referral_cart_attribute_holds_unstorable_text_still_earns(client, settings, shop, token):
    _one_good_and_one_blocked(client, settings)
    order = builders.order(100, 8000, [builders.line(10, "60.00")])
    order["note_attributes"] = [{"name": CART_ATTRIBUTE, "value": token}]
    assert deliver(client, "orders/paid", order).status_code == 200
    with transaction(settings.database_url) as session:
        assert session.scalars(select(Delivery.status).order_by(Delivery.id.desc()).limit(1)).one() == "processed"
        assert session.scalars(select(Member.balance).where(Member.customer_id == 8000)).one() > 0


def test_the_referral_stats_csv_writes_an_email_a_spreadsheet_would_run_as_text(client, settings, shop, monkeypatch):
    monkeypatch.setattr(referral_helpers, "ADVOCATE_EMAIL", "=1+1@example.com")  # a valid address, and a formula
    _one_good_and_one_blocked(client, settings)
    response = call(client, "GET", "referrals/stats?by=advocate&format=csv", session_token())
    assert response.status_code == 200
    cells = [cell for line in response.get_data(as_text=True).splitlines() for cell in line.split(",")]
    assert "'=1+1@example.com" in cells and "=1+1@example.com" not in cells
