"""Reward grants: a threshold or a punch card issues a catalogue reward at no point cost, once, and takes it back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import MilestoneHolding, Posting, Redemption
from plugin.programme import reward_grants
from plugin.programme.rewards import Reward, validate_catalogue
from plugin.services import shops
from plugin.services.milestones import settings as milestone_settings
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_rewards_items import offer
from tests.test_store_credit import shop_app_spend

ALICE = 7001
TEN_OFF = {"id": "ten-off", "kind": "fixed_amount", "points": 1000, "amount": "10.00"}
CREDIT = {"id": "credit-5", "kind": "store_credit", "points": 500, "amount": "5.00"}
CASH_BACK = {"id": "cash", "kind": "cash_back", "points": 100, "amount": "1.00", "max_points": 1000}
THRESHOLD = {"id": "big-spender", "amount": "500.00", "period": "lifetime", "points": 0, "reward": "ten-off"}
CARD = {"id": "coffee", "every": 2, "points": 0, "reward": "credit-5"}


# The grant decision, pure.


def test_a_grant_may_name_a_priced_reward_of_the_catalogue_that_has_not_ended():
    now = datetime(2026, 12, 3, tzinfo=UTC)
    ended = {**TEN_OFF, "id": "old", "available_until": "2026-12-01T00:00:00+00:00"}
    offered = [Reward.from_json(item) for item in validate_catalogue([TEN_OFF, CASH_BACK, ended])]
    assert reward_grants.refusal(offered, "ten-off", now) is None
    assert reward_grants.refusal(offered, "nope", now) == "no reward 'nope' in the shop's catalogue"
    assert "cash-back" in reward_grants.refusal(offered, "cash", now)
    assert reward_grants.refusal(offered, "old", now).startswith("this reward ended on 2026-12-01")
    assert reward_grants.refusal(offered, "old", now - timedelta(days=3)) is None


def test_a_grants_key_names_member_rule_version_and_number_and_a_reissue_gets_a_new_one():
    first = reward_grants.key("threshold", "big", 12, 1, "milestones-1+v3")
    assert first == "grant:threshold:big:12:1:milestones-1+v3"
    assert reward_grants.key("threshold", "big", 12, 1, "milestones-1+v3", 1) == first + ":2"
    assert reward_grants.key("threshold", "big", 12, 2, "milestones-1+v3") != first
    assert reward_grants.key("punch_card", "big", 12, 1, "milestones-1+v3") != first


@pytest.mark.parametrize(
    ("policy", "balance", "expected"),
    [
        ("allow_negative", 300, (-1000, 0, 0)),  # the whole value, below zero
        ("stop_at_zero", 300, (-1000, 700, 0)),  # forgive what the balance cannot pay, first
        ("claw_back", 300, (-300, 0, 700)),  # take what is there, the rest is owed
        ("claw_back", -50, (0, 0, 1000)),
        ("stop_at_zero", 5000, (-1000, 0, 0)),  # enough points: every policy takes the value
        ("claw_back", 5000, (-1000, 0, 0)),
    ],
)
def test_a_used_rewards_take_back_follows_the_spent_points_policy(policy, balance, expected):
    decision = reward_grants.used_reward_take_back(policy, 1000, balance)
    assert (decision.reverse, decision.forgive, decision.owed) == expected
    assert policy in decision.remark
    after = balance + decision.reverse + decision.forgive
    if policy != "allow_negative":
        assert after >= min(balance, 0)  # never dips below zero (nor further below it) because of the take-back
    assert -decision.reverse + decision.owed == 1000  # the whole value is reversed or owed


def test_an_unknown_policy_is_an_error_not_a_guess():
    with pytest.raises(ValueError, match="unknown spent-points policy"):
        reward_grants.used_reward_take_back("keep", 10, 0)


# Saving a programme that grants rewards.


def save(settings, **programme):
    with transaction(settings.database_url) as session:
        return milestone_settings.save(session, shops.get(session, SHOP), programme, "test")


def test_a_grant_must_give_points_or_an_existing_priced_reward(settings, shop):
    offer(settings, TEN_OFF, CASH_BACK)
    with pytest.raises(ValidationError) as refused:
        save(settings, thresholds=[{**THRESHOLD, "reward": None}], punch_cards=[{**CARD, "points": 0, "reward": None}])
    assert refused.value.messages == {
        "thresholds": {0: {"points": ["give points above 0, a reward from the catalogue, or both"]}},
        "punch_cards": {0: {"points": ["give points above 0, a reward from the catalogue, or both"]}},
    }
    with pytest.raises(ValidationError) as refused:
        save(settings, thresholds=[THRESHOLD, {**THRESHOLD, "id": "two", "reward": "gone"}], punch_cards=[
            {**CARD, "reward": "cash"}])  # fmt: skip
    messages = refused.value.messages
    assert messages["thresholds"] == {1: {"reward": ["no reward 'gone' in the shop's catalogue"]}}
    assert "cash-back" in messages["punch_cards"][0]["reward"][0]
    with transaction(settings.database_url) as session:
        assert milestone_settings.current(session, shop)["version"] == 0  # nothing saved
    saved = save(settings, thresholds=[THRESHOLD, {**THRESHOLD, "id": "both", "points": 50}])
    assert [t["reward"] for t in saved["thresholds"]] == ["ten-off", "ten-off"]


# End to end: signed webhooks, the inline jobs, the fake shop.


@pytest.fixture
def shop_client(fake_shop_api, shop_with_token):
    from plugin import create_app

    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings, state


def paid(client, order_id: int, price: str, customer_id: int = ALICE, webhook_id: str | None = None):
    payload = builders.order(order_id, customer_id, [builders.line(order_id * 10 + 1, price)])
    return deliver(client, "orders/paid", payload, webhook_id=webhook_id)


def grants_of(settings) -> list[Redemption]:
    with transaction(settings.database_url) as session:
        rows = session.scalars(select(Redemption).where(Redemption.kind == "grant").order_by(Redemption.id)).all()
        session.expunge_all()
        return list(rows)


def member_postings(settings) -> list[tuple[str, int, str]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(select(Posting.kind, Posting.points, Posting.source_type).order_by(Posting.id))
        return [tuple(row) for row in rows]


def balance(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), ALICE).balance


def test_crossing_a_threshold_issues_one_code_at_no_point_cost_and_repeats_issue_no_more(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD])
    paid(client, 1, "300.00")
    assert grants_of(settings) == [] and state.codes == {}
    paid(client, 2, "250.00", webhook_id="paid-2")
    [grant] = grants_of(settings)
    assert (grant.status, grant.points, grant.reward_id) == ("issued", 0, "ten-off")
    assert grant.granted_by["source_type"] == "threshold" and grant.granted_by["number"] == 1
    assert grant.idempotency_key == "grant:threshold:big-spender:1:1:milestones-1+v1"
    assert state.creates == {grant.code: 1} and not state.codes[grant.code]["deleted"]
    assert balance(settings) == 550  # the orders' points only: the reward cost nothing
    paid(client, 2, "250.00", webhook_id="paid-2")  # the same delivery again
    paid(client, 2, "250.00")  # and the same order under another webhook id
    assert [g.id for g in grants_of(settings)] == [grant.id] and state.creates == {grant.code: 1}
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_shuffled_deliveries_issue_the_same_single_reward(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD])
    deliver(client, "refunds/create", builders.refund(1, 3, {31: 1}))  # a refund before its order
    paid(client, 2, "250.00")
    paid(client, 3, "100.00")  # refunded already: counts nothing
    paid(client, 1, "300.00")  # 550 now
    paid(client, 2, "250.00")
    [grant] = grants_of(settings)
    assert grant.status == "issued" and list(state.creates.values()) == [1]


def test_a_refund_below_the_threshold_deactivates_an_unused_code(shop_client):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD])
    paid(client, 1, "300.00")
    paid(client, 2, "250.00")
    [grant] = grants_of(settings)
    deliver(client, "refunds/create", builders.refund(1, 2, {21: 1}))
    [taken] = grants_of(settings)
    assert taken.status == "cancelled" and taken.revoked_at is not None
    assert "no longer earned" in taken.reason and "unused and is deactivated" in taken.reason
    assert state.codes[grant.code]["deleted"]
    assert balance(settings) == 300  # no point posting for the reward: it was never paid for
    assert [p for p in member_postings(settings) if p[2] == "redemption"] == []
    paid(client, 3, "200.00")  # crossed again: a new reward under a new key
    fresh = grants_of(settings)[-1]
    assert fresh.id != grant.id and fresh.status == "issued"
    assert fresh.idempotency_key == grant.idempotency_key + ":2"
    key = (shop_id(settings), taken.member_id, "threshold:big-spender")  # read before: SQLite has one writer
    with transaction(settings.database_url) as session:
        assert session.get(MilestoneHolding, key).rewards == [[1, fresh.id]]


def shop_id(settings) -> int:
    with transaction(settings.database_url) as session:
        return shops.get(session, SHOP).id


@pytest.mark.parametrize(
    ("policy", "spent", "expected_balance", "expected"),
    [
        ("allow_negative", 200, 100 - 1000, [("reverse", -1000)]),
        ("stop_at_zero", 200, 0, [("forgive", 900), ("reverse", -1000)]),
        ("claw_back", 200, 0, [("reverse", -100)]),
    ],
)
def test_a_refund_after_the_code_was_used_takes_its_value_back_under_the_policy(
    shop_client, policy, spent, expected_balance, expected
):
    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD])
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"spent_points_policy": policy})
    paid(client, 1, "300.00")
    paid(client, 2, "250.00")
    [grant] = grants_of(settings)
    state.codes[grant.code]["used"] += 1  # the customer used it at checkout
    with transaction(settings.database_url) as session:  # and spent some points on something else
        member = shops.member(session, shops.get(session, SHOP), ALICE)
        ledger.post(session, member.shop_id, ledger.Entry(member.id, "redeem", -spent, "support", "x", "spend", "t"))
    deliver(client, "refunds/create", builders.refund(1, 2, {21: 1}))  # back to 300 of spend: 100 points left after it
    [taken] = grants_of(settings)
    assert taken.status == "issued" and taken.revoked_at is not None  # the customer keeps what was used
    assert not state.codes[grant.code]["deleted"]
    assert [(k, p) for k, p, source in member_postings(settings) if source == "redemption"] == expected
    assert balance(settings) == expected_balance
    assert policy in taken.reason and "was already used 1 time(s)" in taken.reason
    key = (shop_id(settings), taken.member_id, "threshold:big-spender")  # read before: SQLite has one writer
    with transaction(settings.database_url) as session:
        notes = session.scalars(select(Posting.note).where(Posting.source_type == "redemption")).all()
        assert all("taken back after it was used" in note for note in notes)
        if policy == "claw_back":  # owed on the rule's holding, netted against its next grant
            assert session.get(MilestoneHolding, key).unpaid == 900
        assert ledger.verify(session) == []


def test_a_punch_card_grants_store_credit_and_a_cancelled_punch_debits_it_back(shop_client):
    client, settings, state = shop_client
    offer(settings, CREDIT)
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).currency = "USD"
    save(settings, punch_cards=[CARD])
    paid(client, 1, "6.00")
    paid(client, 2, "7.00")
    [grant] = grants_of(settings)
    assert (grant.status, grant.credit_milli, grant.credit_currency) == ("issued", 5000, "USD")
    assert state.credits_made == 1
    deliver(client, "orders/cancelled", builders.order(2, ALICE, [builders.line(21, "7.00")],
                                                      cancelled_at="2026-11-21T10:00:00Z"))  # fmt: skip
    [taken] = grants_of(settings)
    assert taken.status == "cancelled" and state.debits_made == 1
    paid(client, 3, "8.00")  # a second punch again: a new credit
    assert [g.status for g in grants_of(settings)] == ["cancelled", "issued"] and state.credits_made == 2


def test_a_spent_punch_card_credit_is_taken_back_as_points(shop_client):
    client, settings, state = shop_client
    offer(settings, CREDIT)
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).currency = "USD"
    save(settings, punch_cards=[{**CARD, "points": 40}])  # points and a reward
    paid(client, 1, "600.00")
    paid(client, 2, "700.00")
    assert balance(settings) == 600 + 700 + 40
    shop_app_spend(state, ALICE, "2.00")
    deliver(client, "orders/cancelled", builders.order(2, ALICE, [builders.line(21, "700.00")],
                                                      cancelled_at="2026-11-21T10:00:00Z"))  # fmt: skip
    [taken] = grants_of(settings)
    assert taken.status == "issued" and taken.revoked_at is not None and state.debits_made == 0
    assert balance(settings) == 600 - 500  # the order's and the card's points back, and the credit's 500


def test_the_widget_shows_the_reward_a_threshold_gives_and_the_granted_code_with_the_redeemed_ones(shop_client):
    from tests.test_storefront_proxy import get, signed

    client, settings, _state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD], punch_cards=[{**CARD, "reward": "ten-off", "points": 30}])
    paid(client, 1, "380.00")
    shown = get(client, "milestones", signed(ALICE)).json
    [threshold], [card] = shown["thresholds"], shown["punch_cards"]
    assert threshold["remaining"] == "120.00" and threshold["points"] == 0
    assert (threshold["reward"]["id"], threshold["reward"]["kind"], threshold["reward"]["amount"]) == (
        "ten-off", "fixed_amount", "10.00")  # fmt: skip
    assert (card["points"], card["reward"]["id"]) == (30, "ten-off")
    paid(client, 2, "150.00")  # crossed, and the card's second punch: two granted codes
    listed = get(client, "widget", signed(ALICE)).json["redemptions"]
    granted = {r.code for r in grants_of(settings)}
    assert len(granted) == 2 and {r["code"] for r in listed} == granted
    assert all(r["status"] == "issued" for r in listed)


def test_a_take_back_the_shop_cannot_answer_is_retried_later_and_deletes_once(shop_client):
    from plugin.services import reward_grants as take_backs
    from tests.test_redemption import no_sleep_client

    client, settings, state = shop_client
    offer(settings, TEN_OFF)
    save(settings, thresholds=[THRESHOLD])
    paid(client, 1, "600.00")
    [grant] = grants_of(settings)
    with transaction(settings.database_url) as session:
        take_backs.request_revoke(session, grant.shop_id, grant.id, "support test")
    state.error_next = 50  # the shop answers 500 to everything for a while
    assert take_backs.revoke(settings, grant.id, grant.shop_id, no_sleep_client) == "retry"
    [waiting] = grants_of(settings)
    assert (waiting.status, waiting.revoked_at) == ("issued", None) and not state.codes[grant.code]["deleted"]
    assert take_backs.due(settings.database_url) == ([], [])  # resting: the sweeper leaves it alone until then
    assert take_backs.revoke(settings, grant.id, grant.shop_id, no_sleep_client) == "leased"
    state.error_next = 0
    state.lose_next_replies = 1  # the delete works but its answer is lost: the client asks again, harmlessly
    with transaction(settings.database_url) as session:
        session.get(Redemption, (grant.shop_id, grant.id)).lease_until = None  # the rest is over
    assert take_backs.due(settings.database_url) == ([], [(grant.shop_id, grant.id)])
    assert take_backs.revoke(settings, grant.id, grant.shop_id, no_sleep_client) == "cancelled"
    assert take_backs.revoke(settings, grant.id, grant.shop_id, no_sleep_client) == "nothing"  # done once
    assert state.codes[grant.code]["deleted"] and take_backs.due(settings.database_url) == ([], [])
