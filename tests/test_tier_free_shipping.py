"""A tier's free shipping is a free-shipping code for the member: made once on entering the tier (retries, lost
replies and repeated deliveries make no second), shown in the widget's tier section and on the member's support
card, announced as reward.issued, and deleted when the member leaves the tier unless the programme keeps it."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Redemption
from plugin.programme.tier_settings import validate_tiers
from plugin.services import outbox, shops, support, tier_sets, tiers
from tests import builders
from tests.conftest import SHOP, deliver

ALICE = 7001
PROGRAMME = {
    "metric": "spend",
    "period": "lifetime",
    "tiers": [
        {"id": "silver", "name": "Silver", "threshold": "100"},
        {"id": "gold", "name": "Gold", "threshold": "300", "free_shipping": True},
    ],
}


@pytest.fixture
def shop_client(fake_shop_api, shop_with_token):
    from plugin import create_app

    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), settings, state


def save(settings, **changes) -> None:
    with transaction(settings.database_url) as session:
        tier_sets.save(session, shops.get(session, SHOP), {**PROGRAMME, **changes}, "test")


def paid(client, order_id: int, price: str, webhook_id: str | None = None):
    payload = builders.order(order_id, ALICE, [builders.line(order_id * 10 + 1, price)])
    assert deliver(client, "orders/paid", payload, webhook_id=webhook_id).status_code == 200


def codes(settings) -> list[Redemption]:
    with transaction(settings.database_url) as session:
        rows = session.scalars(select(Redemption).order_by(Redemption.id)).all()
        session.expunge_all()
        return list(rows)


def test_entering_the_tier_makes_one_free_shipping_code_for_that_customer(shop_client):
    client, settings, state = shop_client
    save(settings)
    paid(client, 1, "150.00")  # Silver: no free shipping
    assert codes(settings) == [] and state.codes == {}
    paid(client, 2, "200.00", webhook_id="paid-2")  # Gold
    [code] = codes(settings)
    assert (code.kind, code.status, code.points, code.reward_id) == ("grant", "issued", 0, "tier-ship:gold")
    made = state.codes[code.code]
    assert made["kind"] == "free_shipping" and not made["deleted"]
    sent = made["input"]
    assert sent["context"] == {"customers": {"add": [f"gid://shopify/Customer/{ALICE}"]}}
    assert (sent["appliesOncePerCustomer"], sent["usageLimit"], sent["destination"]) == (False, None, {"all": True})
    # Repeats of the same delivery, and the same order under another webhook id, make nothing more.
    paid(client, 2, "200.00", webhook_id="paid-2")
    paid(client, 2, "200.00")
    assert [c.id for c in codes(settings)] == [code.id] and state.creates == {code.code: 1}
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        issued = [e for e in outbox.recorded(session, shop.id) if e.event_type == "reward.issued"]
        assert [(e.payload["code"], e.payload["reward"]["kind"]) for e in issued] == [(code.code, "free_shipping")]
        member = shops.member(session, shop, ALICE)
        section = tiers.widget_section(session, shop, member.id)
        assert section["current"]["name"] == "Gold"
        assert section["free_shipping_code"] == {"code": code.code, "ends_on": code.ends_at.date().isoformat()}
        card = support.member_card(session, shop, member)
        assert [(r.reward["title"], r.code, r.status) for r in card["redemptions"]] == [
            ("Gold free shipping", code.code, "issued")
        ]


def test_a_lost_reply_is_retried_into_the_same_single_code(shop_client):
    client, settings, state = shop_client
    save(settings)
    state.lose_next_replies = 1  # the code is made in the shop, but the answer never arrives
    paid(client, 1, "350.00")
    assert state.lose_next_replies == 0  # the create's reply was lost
    [code] = codes(settings)
    if code.status == "pending":  # the sweeper's next pass: look-up first finds the code the lost reply made
        from plugin.jobs import tasks

        tasks.settle_grants_with(settings)
        [code] = codes(settings)
    assert code.status == "issued"
    assert state.creates == {code.code: 1} and len(state.codes) == 1


def test_leaving_the_tier_deletes_the_code_even_after_it_was_used(shop_client):
    client, settings, state = shop_client
    save(settings)
    paid(client, 1, "150.00")
    paid(client, 2, "200.00")
    [code] = codes(settings)
    state.codes[code.code]["used"] += 1  # free shipping on one checkout already
    assert deliver(client, "refunds/create", builders.refund(902, 2, {21: 1})).status_code == 200  # back to Silver
    [taken] = codes(settings)
    assert taken.status == "cancelled" and taken.revoked_at is not None and "left the Gold tier" in taken.reason
    assert state.codes[code.code]["deleted"]
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member = shops.member(session, shop, ALICE)
        assert member.balance == 150  # a status code costs and takes back no points
        assert tiers.widget_section(session, shop, member.id)["free_shipping_code"] is None
    paid(client, 3, "200.00")  # Gold again: a new stay, a new code
    fresh = codes(settings)[-1]
    assert fresh.id != code.id and fresh.status == "issued" and len(state.codes) == 2


def test_a_programme_that_keeps_the_code_leaves_it_with_the_customer(shop_client):
    client, settings, state = shop_client
    save(settings, free_shipping_on_leave="keep")
    paid(client, 1, "350.00")
    [code] = codes(settings)
    assert deliver(client, "refunds/create", builders.refund(901, 1, {11: 1})).status_code == 200
    [kept] = codes(settings)
    assert kept.status == "issued" and kept.revoke_requested_at is None and not state.codes[code.code]["deleted"]


def test_an_unknown_leave_option_is_refused_by_field():
    with pytest.raises(ValidationError) as refused:
        validate_tiers({**PROGRAMME, "free_shipping_on_leave": "sometimes"})
    assert "free_shipping_on_leave" in refused.value.messages
