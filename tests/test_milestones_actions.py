"""Custom actions through the signed endpoint: signatures, replays, caps, cooldowns, surveys and NPS answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, Posting, SurveyAnswer
from plugin.services import shops
from plugin.services.milestones import action_keys, actions, surveys
from plugin.services.milestones import settings as milestone_settings
from tests.conftest import SHOP, deliver
from tests.test_admin_api import call, session_token

ALICE = 7001
REVIEW = {"id": "review", "title": "Write a review", "kind": "server", "points": 50,
          "cap": {"count": 2, "period": "day"}, "cooldown_minutes": 0}  # fmt: skip
SURVEY = {"id": "nps", "title": "Tell us", "kind": "survey", "points": 30, "cap": {"count": 1, "period": "lifetime"},
          "questions": [{"key": "recommend", "text": "Would you recommend us?", "type": "nps"},
                        {"key": "why", "text": "Why?", "type": "text"}]}  # fmt: skip
QUIZ = {"id": "quiz", "title": "Daily quiz", "kind": "server", "points": 5, "cooldown_minutes": 60}


class Clock:
    """A frozen clock for the action service and the signature check."""

    def __init__(self, monkeypatch, start: datetime):
        self.now = start
        monkeypatch.setattr(actions, "utcnow", lambda: self.now)
        monkeypatch.setattr(action_keys, "utcnow", lambda: self.now)

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def programme(client, settings, shop):
    with transaction(settings.database_url) as session:
        milestone_settings.save(session, shops.get(session, SHOP), {"actions": [REVIEW, SURVEY, QUIZ]}, "test")
    deliver(client, "customers/create", {"id": ALICE, "email": "alice@example.com"})
    created = call(client, "POST", "action-keys", session_token(), {"name": "reviews app"})
    assert created.status_code == 201
    return created.json


def post(client, key: dict, body: dict, idempotency_key: str, *, timestamp=None, secret=None, shop: str = SHOP):
    raw = json.dumps(body).encode()
    stamp = str(timestamp if timestamp is not None else int(actions.utcnow().timestamp()))
    headers = {
        "Content-Type": "application/json",
        "X-Loyalty-Shop-Domain": shop,
        "X-Loyalty-Key-Id": key["key_id"],
        "X-Loyalty-Timestamp": stamp,
        "X-Loyalty-Signature": action_keys.signature(secret or key["secret"], stamp, raw),
        "Idempotency-Key": idempotency_key,
    }
    return client.post("/api/actions/completions", data=raw, headers=headers)


def balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.balance).where(Member.customer_id == ALICE)).scalar_one()


def test_a_signed_completion_posts_its_points_named_after_the_action(client, settings, programme):
    response = post(client, programme, {"action": "review", "customer_id": ALICE}, "rev-1")
    assert response.status_code == 201 and response.json["completion"]["points"] == 50
    assert balance(settings) == 50
    with transaction(settings.database_url) as session:
        posting = session.execute(select(Posting).where(Posting.source_type == "action")).scalar_one()
        assert (posting.kind, posting.source_id) == ("bonus", "review")
        assert ledger.verify(session) == []


def test_a_replayed_idempotency_key_posts_nothing_new(client, settings, programme):
    first = post(client, programme, {"action": "review", "customer_id": ALICE}, "rev-1")
    again = post(client, programme, {"action": "review", "customer_id": ALICE}, "rev-1")
    assert first.status_code == 201 and again.status_code == 200 and again.json["completion"]["replayed"]
    assert balance(settings) == 50
    other = post(client, programme, {"action": "quiz", "customer_id": ALICE}, "rev-1")
    assert other.status_code == 422 and other.json["error"]["code"] == "idempotency_key_reused"


def test_a_bad_signature_a_stale_timestamp_and_a_revoked_key_get_401(client, settings, programme):
    body = {"action": "review", "customer_id": ALICE}
    assert post(client, programme, body, "k1", secret="lsec_wrong").status_code == 401
    stale = int(actions.utcnow().timestamp()) - 600
    assert post(client, programme, body, "k2", timestamp=stale).status_code == 401
    assert post(client, programme, body, "k3", shop="other-shop.myshopify.com").status_code == 401
    revoked = call(client, "DELETE", f"action-keys/{programme['key_id']}", session_token())
    assert revoked.status_code == 200 and revoked.json["revoked_at"]
    response = post(client, programme, body, "k4")
    assert response.status_code == 401 and response.json["error"]["code"] == "invalid_signature"
    assert balance(settings) == 0


def test_an_action_over_its_cap_gets_409_until_the_next_period(client, settings, programme, monkeypatch):
    clock = Clock(monkeypatch, datetime(2026, 12, 3, 10, tzinfo=UTC))
    body = {"action": "review", "customer_id": ALICE}
    assert post(client, programme, body, "a").status_code == 201
    assert post(client, programme, body, "b").status_code == 201
    over = post(client, programme, body, "c")
    assert over.status_code == 409 and over.json["error"]["code"] == "action_cap_reached"
    assert over.json["error"]["fields"] == {"action": ["at most 2 times per day"]}
    clock.advance(days=1)
    assert post(client, programme, body, "c").status_code == 201  # a refused key is not used up
    assert balance(settings) == 150


def test_an_action_inside_its_cooldown_gets_409_with_retry_after(client, settings, programme, monkeypatch):
    clock = Clock(monkeypatch, datetime(2026, 12, 3, 10, tzinfo=UTC))
    body = {"action": "quiz", "customer_id": ALICE}
    assert post(client, programme, body, "q1").status_code == 201
    clock.advance(minutes=59)
    early = post(client, programme, body, "q2")
    assert early.status_code == 409 and early.json["error"]["code"] == "action_cooldown"
    assert int(early.headers["Retry-After"]) == 60
    clock.advance(minutes=1)
    assert post(client, programme, body, "q2").status_code == 201
    assert balance(settings) == 10


def test_a_survey_stores_its_answers_and_the_nps_score(client, settings, programme):
    body = {"action": "nps", "customer_id": ALICE, "answers": {"recommend": 9, "why": "Fast delivery"}}
    assert post(client, programme, body, "s1").status_code == 201
    with transaction(settings.database_url) as session:
        rows = session.execute(select(SurveyAnswer.question_key, SurveyAnswer.score, SurveyAnswer.answer)).all()
        assert sorted(rows) == [("recommend", 9, None), ("why", None, "Fast delivery")]
        assert surveys.summary(session, 1, "nps")["nps"]["recommend"] == {
            "answers": 1, "promoters": 1, "detractors": 0, "score": 100,
        }  # fmt: skip
    again = post(client, programme, {**body, "answers": {"recommend": 3, "why": "x"}}, "s2")
    assert again.status_code == 409  # once ever


@pytest.mark.parametrize(
    ("answers", "field"),
    [({"recommend": 11, "why": "x"}, "recommend"), ({"recommend": -1, "why": "x"}, "recommend"),
     ({"recommend": 7.5, "why": "x"}, "recommend"), ({"recommend": 7}, "why"),
     ({"recommend": 7, "why": "x", "extra": 1}, "extra")],
)  # fmt: skip
def test_a_survey_answer_out_of_range_gets_400_and_stores_nothing(client, settings, programme, answers, field):
    response = post(client, programme, {"action": "nps", "customer_id": ALICE, "answers": answers}, "s1")
    assert response.status_code == 400 and field in response.json["error"]["fields"]["answers"]
    with transaction(settings.database_url) as session:
        assert session.execute(select(SurveyAnswer)).all() == []
    assert balance(settings) == 0


def test_bad_bodies_get_per_field_refusals(client, settings, programme):
    assert post(client, programme, {"action": "review"}, "x").json["error"]["fields"] == {
        "customer_id": ["the Shopify customer id, a positive whole number"]
    }
    unknown = post(client, programme, {"action": "nope", "customer_id": ALICE}, "x")
    assert unknown.status_code == 404 and "action" in unknown.json["error"]["fields"]
    stranger = post(client, programme, {"action": "review", "customer_id": 424242}, "x")
    assert stranger.status_code == 404
    assert post(client, programme, {"action": "review", "customer_id": ALICE}, "").status_code == 400


def test_keys_are_listed_without_secrets_and_managed_from_the_cli(app, client, settings, programme):
    listed = call(client, "GET", "action-keys", session_token()).json["keys"]
    assert [k["key_id"] for k in listed] == [programme["key_id"]] and "secret" not in listed[0]
    runner = app.test_cli_runner()
    created = json.loads(runner.invoke(args=["loyalty", "milestones", "keys", "create", SHOP, "crm"]).output)
    assert created["secret"].startswith("lsec_")
    assert post(client, created, {"action": "review", "customer_id": ALICE}, "cli-key").status_code == 201
    done = runner.invoke(args=["loyalty", "milestones", "complete", SHOP, str(ALICE), "quiz", "--key", "k"])
    assert done.exit_code == 0 and json.loads(done.output)["points"] == 5
    assert balance(settings) == 55


def test_privacy_exports_then_redacts_the_birthday_and_survey_words_keeping_scores(client, settings, programme):
    from plugin.models import MemberBirthday
    from plugin.services import privacy
    from plugin.services.milestones import birthdays

    body = {"action": "nps", "customer_id": ALICE, "answers": {"recommend": 4, "why": "Slow, ask for Alice"}}
    assert post(client, programme, body, "s1").status_code == 201
    with transaction(settings.database_url) as session:
        member_id = session.execute(select(Member.id).where(Member.customer_id == ALICE)).scalar_one()
        birthdays.give(session, 1, member_id, 3, 9, "widget")
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        exported = privacy.export_customer(session, shop, ALICE)["milestones"]
        assert exported["birthday"] == {"month": 3, "day": 9, "source": "widget"}
        assert [a["answer"] for a in exported["survey_answers"]] == [None, "Slow, ask for Alice"]
        privacy.redact_customer(session, shop, ALICE)
    with transaction(settings.database_url) as session:
        assert session.execute(select(MemberBirthday)).all() == []
        rows = session.execute(select(SurveyAnswer.question_key, SurveyAnswer.score, SurveyAnswer.answer)).all()
        assert sorted(rows) == [("recommend", 4, None), ("why", None, None)]
