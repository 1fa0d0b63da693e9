"""End to end: real rq workers create codes in a fake shop that fails 30% of calls; one worker is SIGKILLed."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter

import pytest
import requests
from sqlalchemy import select

from plugin import jobs, ledger
from plugin.db import transaction
from plugin.models import Posting, Redemption
from plugin.programme.events import Customer
from plugin.services import redemption, shops
from plugin.services.accrual import enrol
from tests.conftest import SHOP
from tests.processes import kill_hard, run_worker, start_fake_shop, stop, stop_worker

pytestmark = pytest.mark.integration
TOKEN = "shpat_test_token"
REFUSING_SHOP = "refusing-shop.myshopify.com"  # installed with a token the fake shop rejects (401)


@pytest.fixture
def fake_shop():
    # "slow" answers take 1.5 s, past the client's 0.5 s read timeout: the shop did the work, we never heard.
    process, base_url = start_fake_shop("--token", TOKEN, "--fail-rate", "0.3", "--slow-seconds", "1.5")
    yield base_url
    stop(process)


def seed(settings, domain: str, grants: dict[int, int]) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.install(session, domain, TOKEN if domain == SHOP else "shpat_revoked", settings.encryption_keys)
        for customer_id, points in grants.items():
            member_id = enrol(session, shop.id, Customer(customer_id))
            ledger.post(
                session,
                shop.id,
                ledger.Entry(member_id, "bonus", points, "support", "seed", f"seed:{customer_id}", "manual"),
            )


def redeem_all(settings, domain: str, grants: dict[int, int]) -> list[int]:
    made = []
    for customer_id, points in grants.items():
        for n in range(points // 500):
            with transaction(settings.database_url) as session:
                shop = shops.get(session, domain)
                made.append(redemption.redeem(session, shop, customer_id, "5-off", f"{customer_id}-{n}").id)
    for redemption_id in made:
        jobs.enqueue_issue(settings, redemption_id)
    return made


def by_status(settings) -> Counter[str]:
    with transaction(settings.database_url) as session:
        return Counter(session.scalars(select(Redemption.status)))


def wait_until(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


def test_one_code_per_issued_redemption_despite_failures_and_a_killed_worker(queued, shop, fake_shop):
    settings = dataclasses.replace(
        queued, shopify_api_base_url=fake_shop, shopify_api_timeout=0.5, redemption_lease_seconds=6
    )
    good = {8000 + n: 500 * (n % 4 + 1) for n in range(10)}  # 23 redemptions in all
    refused = {8100: 1000, 8101: 500}
    seed(settings, SHOP, good)
    seed(settings, REFUSING_SHOP, refused)
    made = redeem_all(settings, SHOP, good) + redeem_all(settings, REFUSING_SHOP, refused)
    assert len(made) == 23 + 3

    first = run_worker(settings, burst=False)
    assert wait_until(lambda: sum(by_status(settings).values()) - by_status(settings)["pending"] >= 3, 60)
    kill_hard(first)  # very likely inside a job: most jobs wait on slow or failing shop calls
    assert by_status(settings)["pending"] > 0

    workers = [run_worker(settings, burst=False, LOYALTY_SWEEP_AFTER_SECONDS="0") for _ in range(2)]
    try:
        settled = wait_until(lambda: by_status(settings)["pending"] == 0, 150)
    finally:
        for worker in workers:
            stop_worker(worker)
    assert settled, by_status(settings)

    shop_state = requests.get(f"{fake_shop}/_fake/codes", timeout=5).json()
    live = {c["code"]: c for c in shop_state["codes"] if not c["deleted"]}
    assert shop_state["calls"] > 2 * len(made)  # the failures really happened, and were retried

    with transaction(settings.database_url) as session:
        rows = session.scalars(select(Redemption)).all()
        returned = set(session.scalars(select(Posting.source_id).where(Posting.kind == "return")))
        for row in rows:
            if row.status == "issued":
                assert row.code in live, row.code
                assert shop_state["creates"][row.code] == 1  # created once, however often it was tried
                assert live[row.code]["id"] == row.discount_id
                assert str(row.id) not in returned
            else:
                assert row.status == "failed", row.status
                assert row.code not in live  # no code for a failed redemption
                assert str(row.id) in returned  # and the points came back
        assert len(live) == sum(1 for row in rows if row.status == "issued")
        refusing_shop_id = shops.get(session, REFUSING_SHOP).id
        assert {row.status for row in rows if row.shop_id == refusing_shop_id} == {"failed"}
        for customer_id, points in refused.items():
            assert shops.member(session, shops.get(session, REFUSING_SHOP), customer_id).balance == points
        good_shop = shops.get(session, SHOP)
        for customer_id, points in good.items():
            member = shops.member(session, good_shop, customer_id)
            issued = sum(1 for row in rows if row.member_id == member.id and row.status == "issued")
            assert member.balance == points - 500 * issued
        assert ledger.verify(session) == []
