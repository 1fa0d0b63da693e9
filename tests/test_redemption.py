"""Redemption service: spending points, issuing the shop's code exactly once, failures, cancellation."""

from __future__ import annotations

import dataclasses
import json
import threading

import pytest
import requests
import responses
from sqlalchemy import select

from plugin import ledger, platforms
from plugin.config import DEFAULT_API_VERSION
from plugin.db import transaction
from plugin.jobs import dispatch as queue
from plugin.jobs import tasks as jobs
from plugin.models import Posting, Redemption
from plugin.platforms.shopify.admin import AdminClient
from plugin.programme.events import Customer
from plugin.services import redemption, shops
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SHOP, deliver

FAKE = "https://fake-shop.test"
GRAPHQL = f"{FAKE}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
TOKEN = "shpat_test_token"  # what the `shop` fixture installs


@pytest.fixture
def shop_settings(settings):
    return dataclasses.replace(settings, shopify_api_base_url=FAKE)


def no_sleep_client(settings, shop):
    client = platforms.admin_client(settings, shop)
    client.sleep = lambda _seconds: None
    return client


def give_points(settings, customer_id: int, points: int) -> int:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member_id = enrol(session, shop.id, Customer(customer_id, f"c{customer_id}@example.com"))
        entry = ledger.Entry(member_id, "bonus", points, "support", "seed", f"seed:{customer_id}", "manual")
        ledger.post(session, shop.id, entry)
        return member_id


def redeem(settings, customer_id: int, reward_id: str = "5-off", key: str | None = None) -> int:
    with transaction(settings.database_url) as session:
        return redemption.redeem(session, shops.get(session, SHOP), customer_id, reward_id, key).id


def load(settings, redemption_id: int) -> Redemption:
    with transaction(settings.database_url) as session:
        return redemption.find(session, redemption_id)


def balance(settings, customer_id: int) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), customer_id).balance


def node(discount_id: str | None, used: int = 0) -> dict:
    found = {"id": discount_id, "codeDiscount": {"__typename": "DiscountCodeBasic", "asyncUsageCount": used}}
    return {"data": {"codeDiscountNodeByCode": found if discount_id else None}}


def created(discount_id: str | None, errors: list | None = None) -> dict:
    result = {"codeDiscountNode": {"id": discount_id} if discount_id else None, "userErrors": errors or []}
    return {"data": {"discountCodeBasicCreate": result}}


def bodies() -> list[dict]:
    return [json.loads(call.request.body) for call in responses.calls]


def test_a_new_shop_offers_500_points_for_5_off(settings, shop):
    with transaction(settings.database_url) as session:
        [reward] = redemption.catalogue(shops.get(session, SHOP).settings)
    assert (reward.id, reward.kind, reward.points, str(reward.amount)) == ("5-off", "fixed_amount", 500, "5.00")
    assert (reward.customer_only, reward.single_use) == (True, True)


def test_redeem_takes_the_points_and_records_a_pending_redemption(settings, shop):
    give_points(settings, 7001, 700)
    made = load(settings, redeem(settings, 7001))
    assert (made.status, made.points, made.reward["id"]) == ("pending", 500, "5-off")
    assert made.code.startswith("PTS-") and len(made.code) >= 12
    assert balance(settings, 7001) == 200
    with transaction(settings.database_url) as session:
        posting = session.scalars(select(Posting).order_by(Posting.id.desc())).first()
    assert (posting.kind, posting.points, posting.source_id) == ("redeem", -500, str(made.id))


def test_redeem_refuses_when_points_are_short(settings, shop):
    give_points(settings, 7001, 499)
    with pytest.raises(redemption.NotEnoughPoints, match="499 are available"):
        redeem(settings, 7001)
    assert balance(settings, 7001) == 499


def test_pending_points_cannot_be_spent_yet(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"pending_days": 30})
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "900.00")]))
    with pytest.raises(redemption.NotEnoughPoints, match="0 are available"):
        redeem(settings, 7001)


def test_unknown_reward_and_stranger_are_refused(settings, shop):
    give_points(settings, 7001, 5000)
    with pytest.raises(redemption.UnknownReward):
        redeem(settings, 7001, "free-car")
    with pytest.raises(redemption.NotAMember):
        redeem(settings, 424242)


def test_same_idempotency_key_returns_the_same_redemption(settings, shop):
    give_points(settings, 7001, 1200)
    first = redeem(settings, 7001, key="req-1")
    again = redeem(settings, 7001, key="req-1")
    assert first == again
    assert balance(settings, 7001) == 700


def test_idempotency_key_of_another_member_is_refused(settings, shop):
    give_points(settings, 7001, 600)
    give_points(settings, 7002, 600)
    redeem(settings, 7001, key="req-1")
    with pytest.raises(redemption.RedemptionError, match="another member"):
        redeem(settings, 7002, key="req-1")


def test_catalogue_rewards_are_validated(settings, shop):
    with transaction(settings.database_url) as session, pytest.raises(Exception, match="percent"):
        shops.update_settings(
            session, shops.get(session, SHOP), {"rewards": [{"id": "ten", "kind": "percentage", "points": 10}]}
        )


@responses.activate
def test_issue_creates_the_code_once_with_the_shops_token(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, json=created("gid://shopify/DiscountCodeNode/1"))

    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    made = load(shop_settings, redemption_id)
    assert (made.status, made.discount_id) == ("issued", "gid://shopify/DiscountCodeNode/1")
    assert [call.request.headers["X-Shopify-Access-Token"] for call in responses.calls] == [TOKEN, TOKEN]
    lookup, create = bodies()
    assert lookup["variables"] == {"code": made.code}
    sent = create["variables"]["basicCodeDiscount"]
    assert sent["code"] == made.code
    assert sent["context"] == {"customers": {"add": ["gid://shopify/Customer/7001"]}}
    assert sent["customerGets"]["value"] == {"discountAmount": {"amount": "5.00", "appliesOnEachItem": False}}
    assert (sent["usageLimit"], sent["appliesOncePerCustomer"]) == (1, True)

    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    assert len(responses.calls) == 2  # settled: a repeated job does not call the shop again


@responses.activate
def test_a_code_left_by_an_earlier_attempt_is_found_not_created_again(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/9"))
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    assert len(responses.calls) == 1
    assert load(shop_settings, redemption_id).discount_id == "gid://shopify/DiscountCodeNode/9"


@responses.activate
def test_a_taken_code_that_is_ours_counts_as_created(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    taken = [{"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, json=created(None, taken))
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/3"))
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    assert load(shop_settings, redemption_id).discount_id == "gid://shopify/DiscountCodeNode/3"
    assert balance(shop_settings, 7001) == 0


@responses.activate
def test_a_refused_code_fails_the_redemption_and_returns_the_points(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    invalid = [{"field": ["basicCodeDiscount", "endsAt"], "code": "INVALID", "message": "is invalid"}]
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, json=created(None, invalid))
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "failed"
    failed = load(shop_settings, redemption_id)
    assert failed.status == "failed" and "is invalid" in failed.reason
    assert balance(shop_settings, 7001) == 500
    with transaction(shop_settings.database_url) as session:
        kinds = session.scalars(select(Posting.kind).order_by(Posting.id)).all()
        assert ledger.verify(session) == []
    assert kinds == ["bonus", "redeem", "return"]


@responses.activate
def test_an_unreachable_shop_keeps_it_pending_then_fails_only_once_no_code_exists(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, status=503)
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "retry"
    waiting = load(shop_settings, redemption_id)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert waiting.lease_until is not None  # the sweeper leaves it alone for a while
    assert balance(shop_settings, 7001) == 0

    with transaction(shop_settings.database_url) as session:
        last_try = redemption.find(session, redemption_id)
        last_try.attempts, last_try.lease_until = redemption.MAX_ATTEMPTS - 1, None
    responses.replace(responses.POST, GRAPHQL, status=503)
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "retry"  # cannot tell: keep waiting
    assert balance(shop_settings, 7001) == 0

    with transaction(shop_settings.database_url) as session:
        redemption.find(session, redemption_id).lease_until = None
    assert redemption.issue(shop_settings, redemption_id, _unavailable_but_last_lookup_answers) == "failed"
    assert load(shop_settings, redemption_id).reason.startswith("the shop was unavailable 6 times")
    assert balance(shop_settings, 7001) == 500


def _unavailable_but_last_lookup_answers(settings, shop) -> AdminClient:
    """A shop that fails every call (503s from `responses`), except the final look-up before giving up."""
    client = no_sleep_client(settings, shop)
    send = client.graphql
    lookups = []

    def graphql(query, variables):
        if "codeDiscountNodeByCode" in query:
            lookups.append(query)
            if len(lookups) > 1:
                return {"codeDiscountNodeByCode": None}
        return send(query, variables)

    client.graphql = graphql
    return client


@responses.activate
def test_cancel_deletes_the_unused_code_and_returns_the_points_once(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, json=created("gid://shopify/DiscountCodeNode/5"))
    redemption.issue(shop_settings, redemption_id, no_sleep_client)

    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/5"))
    deleted = {"deletedCodeDiscountId": "gid://shopify/DiscountCodeNode/5", "userErrors": []}
    responses.post(GRAPHQL, json={"data": {"discountCodeDelete": deleted}})
    cancelled = redemption.cancel(
        shop_settings, redemption_id, "shopper changed their mind", "agent@shop", no_sleep_client
    )
    assert (cancelled.status, cancelled.reason) == ("cancelled", "shopper changed their mind")
    assert bodies()[-1]["variables"] == {"id": "gid://shopify/DiscountCodeNode/5"}
    assert balance(shop_settings, 7001) == 500
    with pytest.raises(redemption.CannotCancel, match="already returned"):
        redemption.cancel(shop_settings, redemption_id, "again", "agent@shop", no_sleep_client)
    assert balance(shop_settings, 7001) == 500


@responses.activate
def test_a_used_code_cannot_be_cancelled(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/5"))
    redemption.issue(shop_settings, redemption_id, no_sleep_client)
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/5", used=1))
    with pytest.raises(redemption.CannotCancel, match="already been used"):
        redemption.cancel(shop_settings, redemption_id, "no", "agent", no_sleep_client)
    assert balance(shop_settings, 7001) == 0


def test_a_pending_redemption_cannot_be_cancelled_yet(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    with pytest.raises(redemption.CannotCancel, match="still being created"):
        redemption.cancel(shop_settings, redemption_id, "no", "agent", no_sleep_client)


def test_concurrent_redemptions_never_overdraw(settings, shop):
    give_points(settings, 7001, 1500)  # covers exactly three 500-point rewards
    outcomes: list[str] = []
    start = threading.Barrier(12)

    def attempt() -> None:
        start.wait()
        try:
            redeem(settings, 7001)
            outcomes.append("redeemed")
        except redemption.NotEnoughPoints:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["redeemed"] * 3 + ["refused"] * 9
    assert balance(settings, 7001) == 0
    with transaction(settings.database_url) as session:
        assert len(session.scalars(select(Redemption)).all()) == 3
        assert ledger.verify(session) == []


@responses.activate
def test_a_lost_answer_then_a_transient_shop_error_still_ends_with_the_one_code(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    transient = {"errors": [{"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]}
    taken = [{"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, body=requests.exceptions.ReadTimeout())  # made in the shop, answer lost
    responses.post(GRAPHQL, json=transient)  # Shopify's own hiccup on the retry: not a refusal
    responses.post(GRAPHQL, json=created(None, taken))
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/7"))
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    assert load(shop_settings, redemption_id).discount_id == "gid://shopify/DiscountCodeNode/7"
    assert balance(shop_settings, 7001) == 0


@responses.activate
def test_a_refusal_after_a_lost_answer_finds_the_code_instead_of_failing(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node(None))
    responses.post(GRAPHQL, body=requests.exceptions.ReadTimeout())
    responses.post(GRAPHQL, json={"errors": [{"message": "nope", "extensions": {"code": "BAD_REQUEST"}}]})
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/8"))  # the lost attempt made it
    assert redemption.issue(shop_settings, redemption_id, no_sleep_client) == "issued"
    assert balance(shop_settings, 7001) == 0  # the shopper has the code, so the points stay spent


@responses.activate
def test_cancel_survives_a_lost_delete_answer(shop_settings, shop_with_token):
    give_points(shop_settings, 7001, 500)
    redemption_id = redeem(shop_settings, 7001)
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/5"))
    redemption.issue(shop_settings, redemption_id, no_sleep_client)
    gone = [{"field": ["id"], "code": "INVALID", "message": "Discount does not exist"}]
    responses.post(GRAPHQL, json=node("gid://shopify/DiscountCodeNode/5"))
    responses.post(GRAPHQL, body=requests.exceptions.ReadTimeout())  # deleted, answer lost
    responses.post(GRAPHQL, json={"data": {"discountCodeDelete": {"deletedCodeDiscountId": None, "userErrors": gone}}})
    responses.post(GRAPHQL, json=node(None))
    cancelled = redemption.cancel(shop_settings, redemption_id, "asked", "agent", no_sleep_client)
    assert cancelled.status == "cancelled"
    assert balance(shop_settings, 7001) == 500


def test_an_idempotency_key_cannot_be_reused_for_another_reward(settings, shop):
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        rewards = [*shop_row.settings["rewards"], {"id": "ship", "kind": "free_shipping", "points": 100}]
        shops.update_settings(session, shop_row, {"rewards": rewards})
    give_points(settings, 7001, 1000)
    redeem(settings, 7001, "5-off", key="req-1")
    with pytest.raises(redemption.RedemptionError, match="another reward"):
        redeem(settings, 7001, "ship", key="req-1")


def test_an_uninstalled_shop_takes_no_redemptions(settings, shop):
    give_points(settings, 7001, 1000)
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).active = False
    with pytest.raises(redemption.RedemptionError, match="uninstalled"):
        redeem(settings, 7001)
    assert balance(settings, 7001) == 1000


@pytest.mark.integration
def test_with_redis_a_waiting_redemption_gets_one_queued_job_however_often_the_sweeper_runs(queued, shop, monkeypatch):
    settings = dataclasses.replace(queued, sweep_after_seconds=0)
    give_points(settings, 7001, 500)
    redemption_id = redeem(settings, 7001, key="click-1")

    def issue_jobs() -> list[tuple]:
        return [job.args for job in queue.queue_for(settings).get_jobs() if job.func_name == jobs.ISSUE_CODE.name]

    jobs.enqueue_issue(settings, redemption_id)  # as the App Proxy does after its commit
    jobs.enqueue_issue(settings, redemption_id)  # the shopper's retry of the same click
    # Every worker sweeps, again and again, while the job waits in a long queue: nothing is requeued.
    assert jobs.sweep(settings) == (0, 0)
    assert jobs.sweep(settings) == (0, 0)
    assert issue_jobs() == [(redemption_id,)]

    # Once the job has started, the lease guards the redemption: a job lost after that is queued again.
    monkeypatch.setattr(jobs.Settings, "from_env", staticmethod(lambda: settings))
    monkeypatch.setattr(jobs.redemption, "issue", lambda _settings, _id, **_shop: "killed before it took the lease")
    queue.queue_for(settings).empty()
    jobs.issue_code(redemption_id)
    assert jobs.sweep(settings) == (0, 1)
    assert issue_jobs() == [(redemption_id, shop)]  # the sweeper's job names the shop (decision 0021)
