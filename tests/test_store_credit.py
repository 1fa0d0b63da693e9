"""Store credit and cash back: points become money in the customer's store-credit account, exactly once, or back."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import Posting, utcnow
from plugin.programme import rewards
from plugin.services import redemption, shops
from tests.conftest import ENCRYPTION_KEY, SHOP
from tests.processes import ROOT, spawn, start_fake_shop, stop
from tests.test_redemption import balance, give_points, load, no_sleep_client
from tests.test_rewards_items import offer

CUSTOMER = "gid://shopify/Customer/7001"
CREDIT = {"id": "credit-5", "kind": "store_credit", "points": 500, "amount": "5.00"}
CASH_BACK = {"id": "cash", "kind": "cash_back", "points": 100, "amount": "1.00", "min_points": 200, "max_points": 1000}


def refused(item: dict) -> dict:
    with pytest.raises(rewards.ValidationError) as error:
        rewards.validate_catalogue([item])
    return error.value.messages[0]


# The rule.


@pytest.mark.parametrize("amount", ["0", "-5.00", "0.00"])
def test_a_credit_amount_of_zero_or_less_is_refused_on_its_field(amount):
    assert "amount" in refused({**CREDIT, "amount": amount})


def test_a_store_credit_needs_an_amount_and_takes_no_minimum_subtotal():
    assert refused({"id": "c", "kind": "store_credit", "points": 5})["amount"] == [
        "a store_credit reward needs a credit amount above 0"
    ]
    assert "min_subtotal" in refused({**CREDIT, "min_subtotal": "10.00"})
    (stored,) = rewards.validate_catalogue([CREDIT])
    assert (stored["title"], stored["amount"]) == ("5.00 store credit", "5.00")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount": "0"}, "amount", None),
        ({"amount": None}, "amount", "a cash_back reward needs an amount of credit per step of points above 0"),
        ({"points": 0}, "points", None),
        ({"max_points": None}, "max_points", "a cash_back reward needs max_points, the most spent at once"),
        ({"max_points": 0}, "max_points", None),
        ({"min_points": -100}, "min_points", None),
        ({"min_points": 250}, "min_points", "must be a multiple of points (100), one step"),
        ({"max_points": 1050}, "max_points", "must be a multiple of points (100), one step"),
        ({"min_points": 800, "max_points": 400}, "max_points", "must be at least min_points (800)"),
    ],
)
def test_a_cash_back_rate_or_bounds_of_zero_or_less_or_contradictory_are_refused_per_field(change, field, message):
    item = {k: v for k, v in {**CASH_BACK, **change}.items() if v is not None}
    messages = refused(item)
    assert field in messages
    if message:
        assert messages[field] == [message]


def test_bounds_belong_to_cash_back_only():
    assert "max_points" in refused({**CREDIT, "max_points": 1000})


def test_cash_back_points_are_whole_steps_within_bounds_and_buy_exact_money():
    reward = rewards.Reward.from_json(rewards.validate_catalogue([CASH_BACK])[0])
    assert reward.points_range() == (200, 1000, 100)
    assert reward.refusal_for_points(100) == "choose from 200 to 1000 points"
    assert reward.refusal_for_points(1100) == "choose from 200 to 1000 points"
    assert reward.refusal_for_points(350) == "choose a multiple of 100 points"
    assert reward.refusal_for_points(300) is None
    assert reward.credit_for(300) == Decimal("3.00")
    assert reward.title == "1.00 store credit per 100 points"


# Through the fake shop.


def with_currency(settings, currency: str = "USD") -> None:
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).currency = currency


def postings(settings, customer_points_kind: str) -> int:
    with transaction(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(Posting).where(Posting.kind == customer_points_kind))


def redeem(settings, customer_id: int, reward_id: str, points: int | None = None) -> int:
    with transaction(settings.database_url) as session:
        made = redemption.redeem(session, shops.get(session, SHOP), customer_id, reward_id, points=points)
        return made.id


@pytest.mark.parametrize("fault", ["none", "throttled", "5xx", "reply-lost"])
def test_a_store_credit_is_credited_once_despite_faults(fake_shop_api, shop_with_token, fault):
    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CREDIT)
    give_points(settings, 7001, 600)
    redemption_id = redeem(settings, 7001, "credit-5")
    state.throttle_next = 2 if fault == "throttled" else 0
    state.error_next = 2 if fault == "5xx" else 0
    state.lose_next_replies = 1 if fault == "reply-lost" else 0

    # A lost reply: the credit is tried once, never retried blind; the job looks again, and finds it.
    assert redemption.issue(settings, redemption_id, no_sleep_client) == "issued"
    [transaction_] = state.store_credit[CUSTOMER]["USD"]["transactions"]
    assert state.credits_made == 1
    assert (transaction_["amount"], transaction_["remaining"]) == (Decimal("5.00"), Decimal("5.00"))
    made = load(settings, redemption_id)
    assert (made.credit_milli, made.credit_currency, made.credit_balance_milli) == (5000, "USD", 5000)
    assert made.discount_id == transaction_["id"]
    assert balance(settings, 7001) == 100
    assert redemption.issue(settings, redemption_id, no_sleep_client) == "issued"  # again: nothing more
    assert state.credits_made == 1


def test_cash_back_credits_the_points_chosen_at_the_fixed_rate(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CASH_BACK)
    give_points(settings, 7001, 1000)
    with pytest.raises(redemption.BadPoints, match="multiple of 100"):
        redeem(settings, 7001, "cash", points=250)
    with pytest.raises(redemption.BadPoints, match="from 200 to 1000"):
        redeem(settings, 7001, "cash", points=100)
    assert postings(settings, "redeem") == 0  # refused before anything was taken
    first = redeem(settings, 7001, "cash", points=300)
    second = redeem(settings, 7001, "cash", points=300)  # the same amount twice: two credits, told apart
    assert redemption.issue(settings, first, no_sleep_client) == "issued"
    assert redemption.issue(settings, second, no_sleep_client) == "issued"
    assert load(settings, first).credit_expires_at != load(settings, second).credit_expires_at
    assert state.credits_made == 2
    assert [t["amount"] for t in state.store_credit[CUSTOMER]["USD"]["transactions"]] == [Decimal("3.00")] * 2
    assert load(settings, second).credit_balance_milli == 6000
    assert balance(settings, 7001) == 400


def test_a_store_credit_needs_the_shops_currency(fake_shop_api, shop_with_token):
    settings, _state = fake_shop_api
    offer(settings, CREDIT)
    give_points(settings, 7001, 600)
    with pytest.raises(redemption.RedemptionError, match="currency is not known"):
        redeem(settings, 7001, "credit-5")
    assert balance(settings, 7001) == 600


def test_a_refused_credit_fails_the_redemption_and_returns_the_points(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CREDIT)
    give_points(settings, 7001, 600)
    redemption_id = redeem(settings, 7001, "credit-5")
    with transaction(settings.database_url) as session:  # a currency Shopify refuses (the fake: a zero amount)
        redemption.find(session, redemption_id).credit_milli = 0
    assert redemption.issue(settings, redemption_id, no_sleep_client) == "failed"
    assert state.credits_made == 0 and balance(settings, 7001) == 600


# Cancelling.


def issued_credit(settings, state) -> int:
    with_currency(settings)
    offer(settings, CREDIT)
    give_points(settings, 7001, 600)
    redemption_id = redeem(settings, 7001, "credit-5")
    assert redemption.issue(settings, redemption_id, no_sleep_client) == "issued"
    return redemption_id


def test_cancelling_an_unspent_credit_debits_it_back_and_returns_the_points(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    redemption_id = issued_credit(settings, state)
    cancelled = redemption.cancel(settings, redemption_id, "asked", "agent@shop", no_sleep_client)
    assert cancelled.status == "cancelled" and balance(settings, 7001) == 600
    assert state.debits_made == 1
    credits = [t for t in state.store_credit[CUSTOMER]["USD"]["transactions"] if t["kind"] == "credit"]
    assert sum(t["remaining"] for t in credits) == 0


def test_a_cancel_whose_debit_reply_was_lost_does_not_debit_twice(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    redemption_id = issued_credit(settings, state)
    state.lose_next_replies = 1
    with pytest.raises(redemption.AdminAPIUnavailable):  # the debit is tried once: a retry could debit twice
        redemption.cancel(settings, redemption_id, "asked", "agent", no_sleep_client)
    assert state.debits_made == 1 and load(settings, redemption_id).status == "issued"
    cancelled = redemption.cancel(settings, redemption_id, "asked again", "agent", no_sleep_client)
    assert cancelled.status == "cancelled" and state.debits_made == 1 and balance(settings, 7001) == 600


def test_a_spent_credit_cannot_be_cancelled_and_says_so(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    redemption_id = issued_credit(settings, state)
    shop_app_spend(state, 7001, "2.00")
    with pytest.raises(redemption.CreditSpent, match=r"2\.00 of 5\.00 USD store credit has already been spent"):
        redemption.cancel(settings, redemption_id, "asked", "agent", no_sleep_client)
    kept = load(settings, redemption_id)
    assert kept.status == "issued" and "already been spent" in kept.reason  # support sees why
    assert state.debits_made == 0 and balance(settings, 7001) == 100


def shop_app_spend(state, customer_id: int, amount: str) -> None:
    from plugin.devtools.fake_shop import _debit

    with state.lock:
        _debit(state, f"gid://shopify/Customer/{customer_id}", {"amount": amount, "currencyCode": "USD"}, "Order")


# A job killed after the shop applied the credit and before we recorded it.

KILLED_JOB = """
import os, signal, sys
from plugin.config import Settings
from plugin.platforms.shopify import store_credit
from plugin.services import redemption

made = store_credit.credit
def credit_then_die(client, request):
    made(client, request)  # the shop has applied the credit ...
    os.kill(os.getpid(), signal.SIGKILL)  # ... and the job dies before it records it
store_credit.credit = credit_then_die
redemption.issue(Settings.from_env(), int(sys.argv[1]))
"""


def test_a_job_killed_after_the_shop_credited_never_credits_twice(settings, shop_with_token):
    process, base_url = start_fake_shop("--token", "shpat_test_token")
    try:
        settings = dataclasses.replace(settings, shopify_api_base_url=base_url)
        with_currency(settings)
        offer(settings, CREDIT)
        give_points(settings, 7001, 600)
        redemption_id = redeem(settings, 7001, "credit-5")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": settings.database_url,
            "SHOPIFY_API_BASE_URL": base_url,
            "SHOPIFY_API_KEY": settings.shopify_api_key,
            "SHOPIFY_API_SECRET": settings.shopify_api_secret,
            "LOYALTY_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        }
        job = spawn([sys.executable, "-c", KILLED_JOB, str(redemption_id)], cwd=ROOT, env=env)
        assert job.wait(timeout=60) == -signal.SIGKILL

        def shop_state() -> dict:
            return requests.get(f"{base_url}/_fake/store-credit", timeout=5).json()

        assert shop_state()["credits"] == 1  # the shop applied it
        killed = load(settings, redemption_id)
        assert killed.status == "pending" and killed.discount_id is None  # we never recorded it
        with transaction(settings.database_url) as session:  # the lease runs out, as it would for a dead job
            redemption.find(session, redemption_id).lease_until = utcnow() - timedelta(seconds=1)
        assert redemption.issue(settings, redemption_id) == "issued"  # the sweeper's retry looks first
        assert shop_state()["credits"] == 1
        account = shop_state()["accounts"][CUSTOMER]["USD"]
        assert account["balance"] == {"amount": "5.00", "currencyCode": "USD"}
        assert load(settings, redemption_id).credit_balance_milli == 5000
        assert balance(settings, 7001) == 100
    finally:
        stop(process)


# Through the App Proxy: the widget's doors.


def test_the_widget_redeems_cash_back_and_shows_the_balance_instead_of_a_code(fake_shop_api, shop_with_token):
    from plugin import create_app
    from tests.test_storefront_proxy import get, post, signed

    settings, state = fake_shop_api
    with_currency(settings, "EUR")
    offer(settings, CASH_BACK, CREDIT)
    give_points(settings, 7001, 1000)
    client = create_app(settings, TESTING=True).test_client()

    for points, message in ((250, "choose a multiple of 100 points"), (1100, "choose from 200 to 1000 points")):
        refused_ = post(client, "redeem", signed(7001), {"reward_id": "cash", "points": points})
        assert refused_.status_code == 422
        assert refused_.get_json()["error"]["code"] == "bad_points"
        assert refused_.get_json()["error"]["fields"] == {"points": [message]}
    not_a_number = post(client, "redeem", signed(7001), {"reward_id": "cash", "points": "300"})  # strict: no strings
    assert not_a_number.status_code == 400 and "points" in not_a_number.get_json()["error"]["fields"]
    assert balance(settings, 7001) == 1000  # nothing taken

    made = post(client, "redeem", signed(7001), {"reward_id": "cash", "points": 300, "idempotency_key": "click-0001"})
    assert made.status_code == 201
    answer = made.get_json()["redemption"]
    assert answer["status"] == "issued"  # jobs run inline here
    assert answer["code"] is None and answer["points"] == 300
    assert answer["store_credit"] == {"amount": "3.00", "currency": "EUR", "balance": "3.00"}
    widget = get(client, "widget", signed(7001)).get_json()
    assert widget["customer"]["balance"] == 700
    assert widget["redemptions"][0]["store_credit"] == answer["store_credit"]
    [cash] = [r for r in widget["rewards"] if r["id"] == "cash"]
    assert (cash["min_points"], cash["max_points"], cash["affordable"]) == (200, 1000, True)
    assert state.credits_made == 1


def test_the_cli_redeems_cash_back_and_explains_a_spent_credit_it_cannot_cancel(fake_shop_api, shop_with_token):
    import json

    from plugin import create_app

    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CASH_BACK)
    give_points(settings, 7001, 1000)
    app = create_app(settings, TESTING=True)
    cli = app.test_cli_runner()

    refused_ = cli.invoke(args=["loyalty", "redeem", SHOP, "7001", "cash", "--points", "150"])
    assert refused_.exit_code != 0 and "choose from 200 to 1000 points" in refused_.output
    made = cli.invoke(args=["loyalty", "redeem", SHOP, "7001", "cash", "--points", "500"])
    assert made.exit_code == 0, made.output
    answer = json.loads(made.output)
    assert answer["store_credit"] == {"amount": "5.00", "currency": "USD", "balance": "5.00"}  # jobs run inline
    shop_app_spend(state, 7001, "1.00")
    cancel = cli.invoke(args=["loyalty", "redemptions", "cancel", str(answer["id"]), "--reason", "asked"])
    assert cancel.exit_code != 0
    assert "1.00 of 5.00 USD store credit has already been spent" in cancel.output
    assert "nothing was debited and the points stay spent" in cancel.output
    assert balance(settings, 7001) == 500 and state.debits_made == 0


def test_the_support_api_cancels_an_unspent_credit_and_refuses_a_spent_one_with_409(fake_shop_api, shop_with_token):
    from plugin import create_app
    from tests.test_support import api, make_key

    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CREDIT)
    give_points(settings, 7001, 1000)
    client = create_app(settings, TESTING=True).test_client()
    first, second = redeem(settings, 7001, "credit-5"), redeem(settings, 7001, "credit-5")
    assert redemption.issue(settings, first) == redemption.issue(settings, second) == "issued"
    key = make_key(settings, "write")
    body = {"reason_code": "goodwill", "note": "asked"}

    card = api(client, "GET", "members?customer_id=7001", key).get_json()
    assert [r["store_credit"] for r in card["redemptions"]] == [
        {"amount": "5.00", "currency": "USD", "balance": "10.00"},
        {"amount": "5.00", "currency": "USD", "balance": "5.00"},
    ]
    cancelled = api(client, "POST", f"redemptions/{second}/cancel", key, body)
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    assert balance(settings, 7001) == 500 and state.debits_made == 1
    shop_app_spend(state, 7001, "5.00")  # the shopper spends what is left: the first credit
    refused_ = api(client, "POST", f"redemptions/{first}/cancel", key, body)
    assert refused_.status_code == 409
    error = refused_.get_json()["error"]
    assert error["code"] == "credit_spent"
    assert "5.00 of 5.00 USD store credit has already been spent" in error["message"]
    assert balance(settings, 7001) == 500 and state.debits_made == 1
