"""A free product: one unit of a chosen variant at no cost, optionally above a subtotal, made once in the shop."""

from __future__ import annotations

import pytest

from plugin.programme import rewards
from plugin.services import redemption
from tests.test_admin_api import call, session_token
from tests.test_redemption import balance, give_points, no_sleep_client, redeem
from tests.test_rewards_items import admin_client, offer  # noqa: F401 (a fixture)

VARIANT = "gid://shopify/ProductVariant/11"  # the fake shop sells it at 12.50
TOTE = {"id": "tote", "kind": "free_product", "points": 200, "variant_id": VARIANT, "min_subtotal": "30.00"}


def test_a_free_product_needs_one_well_formed_variant_and_nothing_else_needs_one():
    def refused(item: dict) -> dict:
        with pytest.raises(rewards.ValidationError) as error:
            rewards.validate_catalogue([item])
        return error.value.messages[0]

    assert "variant_id" in refused({"id": "t", "kind": "free_product", "points": 1})
    assert "variant_id" in refused({**TOTE, "variant_id": "gid://shopify/Product/11"})
    assert "variant_id" in refused({"id": "s", "kind": "free_shipping", "points": 1, "variant_id": VARIANT})
    assert "amount" in refused({**TOTE, "amount": "5.00"})
    (stored,) = rewards.validate_catalogue([TOTE])
    assert (stored["title"], stored["variant_id"], stored["min_subtotal"]) == ("Free product", VARIANT, "30.00")


def test_a_variant_the_shop_does_not_sell_is_refused_at_save(admin_client):  # noqa: F811
    client, _state = admin_client
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    sent = {**current, "rewards": [{**TOTE, "variant_id": "gid://shopify/ProductVariant/404"}]}
    response = call(client, "PUT", "settings", session_token(), json=sent)
    assert response.status_code == 422
    assert response.get_json()["error"]["fields"]["rewards"] == {
        "0": {"variant_id": ["gid://shopify/ProductVariant/404 does not exist in the shop"]}
    }
    assert call(client, "PUT", "settings", session_token(), json={**current, "rewards": [TOTE]}).status_code == 200


@pytest.mark.parametrize("fault", ["none", "throttled", "5xx", "reply-lost"])
def test_a_free_product_becomes_one_code_worth_one_unit_despite_faults(fake_shop_api, shop_with_token, fault):
    settings, state = fake_shop_api
    offer(settings, TOTE)
    give_points(settings, 7001, 300)
    redemption_id = redeem(settings, 7001, "tote")
    state.throttle_next = 2 if fault == "throttled" else 0
    state.error_next = 2 if fault == "5xx" else 0
    state.lose_next_replies = 1 if fault == "reply-lost" else 0

    assert redemption.issue(settings, redemption_id, no_sleep_client) == "issued"
    [made] = state.codes.values()
    assert state.creates == {made["code"]: 1}
    sent = made["input"]
    # The variant's price off that variant only, split across its units: one unit free, never every unit.
    assert sent["customerGets"] == {
        "value": {"discountAmount": {"amount": "12.50", "appliesOnEachItem": False}},
        "items": {"products": {"productVariantsToAdd": [VARIANT]}},
    }
    assert sent["minimumRequirement"] == {"subtotal": {"greaterThanOrEqualToSubtotal": "30.00"}}
    assert balance(settings, 7001) == 100


def test_a_variant_gone_from_the_shop_fails_the_redemption_and_returns_the_points(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    offer(settings, TOTE)
    give_points(settings, 7001, 300)
    redemption_id = redeem(settings, 7001, "tote")
    state.items.discard(VARIANT)  # deleted after the reward was saved
    assert redemption.issue(settings, redemption_id, no_sleep_client) == "failed"
    assert state.codes == {} and balance(settings, 7001) == 300
