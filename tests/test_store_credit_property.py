"""Store credit under any order of job runs, faults and lost replies: exactly one credit per issued redemption."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Redemption, utcnow
from plugin.services import redemption
from tests.test_redemption import balance, give_points, load, no_sleep_client
from tests.test_rewards_items import offer
from tests.test_store_credit import CASH_BACK, CREDIT, redeem, with_currency

_customers = itertools.count(9000)
FAULTS = st.sampled_from(["none", "throttled", "5xx", "reply-lost", "reply-lost-twice"])


def _expire(settings, redemption_id: int) -> None:
    """What time does for a dead or waiting job: its lease runs out, so the sweeper may run it again."""
    with transaction(settings.database_url) as session:
        found = session.scalars(select(Redemption).where(Redemption.id == redemption_id)).one()
        found.lease_until = utcnow() - timedelta(seconds=1)


def test_any_order_of_runs_and_faults_gives_one_credit_per_redemption(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    with_currency(settings)
    offer(settings, CREDIT, CASH_BACK)

    @hypothesis_settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        choices=st.lists(st.sampled_from([("credit-5", None), ("cash", 200), ("cash", 300)]), min_size=1, max_size=3),
        data=st.data(),
    )
    def check(choices, data):
        customer = next(_customers)
        give_points(settings, customer, 2000)
        made = [redeem(settings, customer, reward, points) for reward, points in choices]
        runs = data.draw(st.lists(st.tuples(st.sampled_from(made), FAULTS), max_size=8))
        for redemption_id, fault in runs:
            state.throttle_next = 2 if fault == "throttled" else 0
            state.error_next = 2 if fault == "5xx" else 0
            state.lose_next_replies = {"reply-lost": 1, "reply-lost-twice": 2}.get(fault, 0)
            redemption.issue(settings, redemption_id, no_sleep_client)
            if data.draw(st.booleans()):
                _expire(settings, redemption_id)
        state.throttle_next = state.error_next = state.lose_next_replies = 0
        for redemption_id in made:  # the sweeper, later, with the shop well again
            _expire(settings, redemption_id)
            redemption.issue(settings, redemption_id, no_sleep_client)

        owner = f"gid://shopify/Customer/{customer}"
        credits = state.store_credit.get(owner, {}).get("USD", {"transactions": []})["transactions"]
        rows = [load(settings, redemption_id) for redemption_id in made]
        assert all(row.status == "issued" for row in rows)
        assert sorted(t["id"] for t in credits) == sorted(row.discount_id for row in rows)  # one each, no more
        for row in rows:
            [mine] = [t for t in credits if t["id"] == row.discount_id]
            assert mine["amount"] == Decimal(row.credit_milli) / 1000
        assert balance(settings, customer) == 2000 - sum(row.points for row in rows)

    check()
