"""An amount or percentage off chosen collections or products: ids checked in the shop at save, codes made once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from plugin.db import transaction
from plugin.programme import rewards
from plugin.programme.rewards import Reward
from plugin.services import redemption, shops
from tests.conftest import SHOP
from tests.test_admin_api import call, session_token
from tests.test_redemption import balance, give_points, no_sleep_client, redeem

COLLECTION = "gid://shopify/Collection/1"
PRODUCT = "gid://shopify/Product/2"
VARIANT = "gid://shopify/ProductVariant/11"


def offer(settings, *items: dict) -> None:
    with transaction(settings.database_url) as session:
        shops.update_settings(session, shops.get(session, SHOP), {"rewards": list(items)})


@pytest.fixture
def admin_client(fake_shop_api, shop_with_token):
    """A test client whose admin API asks the in-process fake shop, and the fake shop's state."""
    from plugin import create_app

    settings, state = fake_shop_api
    return create_app(settings, TESTING=True).test_client(), state


# The rule.


def test_items_are_refused_per_field_when_malformed_mixed_or_on_the_wrong_kind():
    def refused(item: dict) -> dict:
        with pytest.raises(rewards.ValidationError) as error:
            rewards.validate_catalogue([item])
        return error.value.messages[0]

    base = {"id": "off", "kind": "percentage", "points": 100, "percent": "10"}
    assert "collection_ids" in refused({**base, "collection_ids": ["gid://shopify/Product/1"]})
    assert "variant_ids" in refused({**base, "variant_ids": ["123"]})
    assert "collection_ids" in refused({**base, "collection_ids": [COLLECTION], "product_ids": [PRODUCT]})
    assert "collection_ids" in refused({**base, "collection_ids": [COLLECTION, COLLECTION]})
    assert "product_ids" in refused({"id": "s", "kind": "free_shipping", "points": 1, "product_ids": [PRODUCT]})
    assert "percent" in refused({**base, "percent": "0"}) and "percent" in refused({**base, "percent": "100.5"})


def test_a_reward_on_items_gets_a_title_that_says_so():
    (stored,) = rewards.validate_catalogue(
        [{"id": "off", "kind": "percentage", "points": 100, "percent": "15", "collection_ids": [COLLECTION]}]
    )
    assert stored["title"] == "15% off selected items" and stored["collection_ids"] == [COLLECTION]
    assert Reward.from_json(stored).item_ids == (COLLECTION,)


# Saving, checked against the shop.


def test_ids_the_shop_does_not_hold_are_refused_per_field_and_nothing_is_saved(admin_client):
    client, state = admin_client
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    rewards_sent = [
        {
            "id": "a",
            "kind": "percentage",
            "points": 100,
            "percent": "10",
            "collection_ids": [COLLECTION, "gid://shopify/Collection/99"],
        },
        {
            "id": "b",
            "kind": "fixed_amount",
            "points": 100,
            "amount": "5.00",
            "product_ids": [PRODUCT],
            "variant_ids": ["gid://shopify/ProductVariant/98"],
        },
    ]
    response = call(client, "PUT", "settings", session_token(), json={**current, "rewards": rewards_sent})
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]["rewards"]
    assert fields == {
        "0": {"collection_ids": ["gid://shopify/Collection/99 does not exist in the shop"]},
        "1": {"variant_ids": ["gid://shopify/ProductVariant/98 does not exist in the shop"]},
    }
    assert call(client, "GET", "settings", session_token()).get_json()["version"] == 1

    state.items.add("gid://shopify/Collection/99")
    state.items.add("gid://shopify/ProductVariant/98")
    response = call(client, "PUT", "settings", session_token(), json={**current, "rewards": rewards_sent})
    assert response.status_code == 200 and response.get_json()["version"] == 2


def test_an_id_of_another_type_is_not_accepted_for_a_collection(admin_client):
    client, state = admin_client
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    state.items.discard(COLLECTION)
    state.items.add("gid://shopify/Product/1")  # same number, another type: still not a collection
    sent = [{"id": "a", "kind": "percentage", "points": 1, "percent": "10", "collection_ids": [COLLECTION]}]
    response = call(client, "PUT", "settings", session_token(), json={**current, "rewards": sent})
    assert response.status_code == 422


def test_an_unreachable_shop_answers_503_and_saves_nothing(admin_client):
    client, state = admin_client
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    state.error_next = 1000
    sent = [{"id": "a", "kind": "percentage", "points": 1, "percent": "10", "collection_ids": [COLLECTION]}]
    response = call(client, "PUT", "settings", session_token(), json={**current, "rewards": sent})
    assert response.status_code == 503 and response.get_json()["error"]["code"] == "shop_unavailable"
    state.error_next = 0
    assert call(client, "GET", "settings", session_token()).get_json()["version"] == 1


def test_a_shop_without_a_token_saves_well_formed_ids_unchecked(client, shop):
    current = call(client, "GET", "settings", session_token()).get_json()["settings"]
    sent = [{"id": "a", "kind": "percentage", "points": 1, "percent": "10", "collection_ids": [COLLECTION]}]
    response = call(client, "PUT", "settings", session_token(), json={**current, "rewards": sent})
    assert response.status_code == 200


# Redeeming, end to end against the fake shop, with its faults.


@pytest.mark.parametrize(
    ("reward", "items"),
    [
        (
            {"id": "off", "kind": "percentage", "points": 100, "percent": "15", "collection_ids": [COLLECTION]},
            {"collections": {"add": [COLLECTION]}},
        ),
        (
            {
                "id": "off",
                "kind": "fixed_amount",
                "points": 100,
                "amount": "7.50",
                "product_ids": [PRODUCT],
                "variant_ids": [VARIANT],
            },
            {"products": {"productsToAdd": [PRODUCT], "productVariantsToAdd": [VARIANT]}},
        ),
    ],
    ids=["percentage-off-a-collection", "amount-off-products"],
)
@pytest.mark.parametrize("fault", ["none", "throttled", "5xx", "reply-lost"])
def test_a_reward_on_items_becomes_one_code_on_those_items_despite_faults(
    fake_shop_api, shop_with_token, reward, items, fault
):
    settings, state = fake_shop_api
    offer(settings, reward)
    give_points(settings, 7001, 300)
    redemption_id = redeem(settings, 7001, "off")
    state.throttle_next = 2 if fault == "throttled" else 0
    state.error_next = 2 if fault == "5xx" else 0
    state.lose_next_replies = 1 if fault == "reply-lost" else 0

    assert redemption.issue(settings, redemption_id, no_sleep_client) == "issued"
    [made] = state.codes.values()
    assert state.creates == {made["code"]: 1}  # once, even when the first reply was lost
    gets = made["input"]["customerGets"]
    assert gets["items"] == items
    if reward["kind"] == "percentage":
        assert Decimal(str(gets["value"]["percentage"])) == Decimal("0.15")
    else:
        assert gets["value"]["discountAmount"] == {"amount": "7.50", "appliesOnEachItem": False}
    assert balance(settings, 7001) == 200
