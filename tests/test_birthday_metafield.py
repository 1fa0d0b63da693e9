"""A mapped birthday metafield reaches us: the customer webhook subscriptions ask for its namespace, re-subscribe
when the mapping changes, and a customers/update payload carrying it sets the birthday."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import responses
from sqlalchemy import select

from plugin import platforms
from plugin.config import DEFAULT_API_VERSION
from plugin.db import transaction
from plugin.models import MemberBirthday, Posting
from plugin.services import shops, subscriptions
from plugin.services.milestones import birthdays
from plugin.services.milestones import settings as milestone_settings
from tests.conftest import SHOP, deliver

GRAPHQL = f"https://{SHOP}/admin/api/{DEFAULT_API_VERSION}/graphql.json"
URI = "https://app.test/webhooks/shopify"
TOPICS = ["ORDERS_CREATE", "ORDERS_PAID", "ORDERS_CANCELLED", "REFUNDS_CREATE", "CUSTOMERS_CREATE",
          "CUSTOMERS_UPDATE", "PRODUCTS_CREATE", "PRODUCTS_UPDATE", "PRODUCTS_DELETE", "APP_UNINSTALLED"]  # fmt: skip


def map_birthday(settings, metafield: str | None) -> None:
    with transaction(settings.database_url) as session:
        milestone_settings.save(
            session, shops.get(session, SHOP), {"birthday": {"points": 200, "metafield": metafield}}, "test"
        )


def subscribed(namespaces: dict[str, list[str]]) -> list[dict]:
    """Every topic subscribed to our URI; the customer topics with the given namespaces."""
    return [
        {"id": f"gid://shopify/WebhookSubscription/{n}", "topic": topic, "uri": URI,
         "metafieldNamespaces": namespaces.get(topic, [])}
        for n, topic in enumerate(TOPICS)
    ]  # fmt: skip


def sent(calls) -> list[dict]:
    return [json.loads(call.request.body)["variables"] for call in calls[1:]]


@responses.activate
def test_the_customer_subscriptions_ask_for_the_mapped_namespace_and_follow_its_changes(settings, shop_with_token):
    settings = dataclasses.replace(settings, shopify_app_url="https://app.test")
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).webhooks_checked_at = datetime.now(UTC)
    assert shop_with_token not in subscriptions.due(settings)

    map_birthday(settings, "facts.birth_date")
    assert shop_with_token in subscriptions.due(settings)  # the sweeper re-subscribes on its next pass
    missing_create = [node for node in subscribed({}) if node["topic"] != "CUSTOMERS_CREATE"]
    responses.post(GRAPHQL, json={"data": {"webhookSubscriptions": {"nodes": missing_create}}})
    responses.post(
        GRAPHQL, json={"data": {"webhookSubscriptionCreate": {"webhookSubscription": {"id": "x"}, "userErrors": []}}}
    )
    responses.post(
        GRAPHQL, json={"data": {"webhookSubscriptionUpdate": {"webhookSubscription": {"id": "y"}, "userErrors": []}}}
    )
    assert subscriptions.ensure(settings, shop_with_token, platforms.admin_client) == [
        "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"
    ]  # fmt: skip
    create, update = sent(responses.calls)
    assert "webhookSubscriptionCreate" in json.loads(responses.calls[1].request.body)["query"]
    assert create == {"topic": "CUSTOMERS_CREATE", "subscription": {"uri": URI, "metafieldNamespaces": ["facts"]}}
    assert "webhookSubscriptionUpdate" in json.loads(responses.calls[2].request.body)["query"]
    assert update == {
        "id": "gid://shopify/WebhookSubscription/5",
        "subscription": {"uri": URI, "metafieldNamespaces": ["facts"]},
    }
    assert shop_with_token not in subscriptions.due(settings)

    # Already asking for it: nothing to change.
    responses.calls.reset()
    both = {"CUSTOMERS_CREATE": ["facts"], "CUSTOMERS_UPDATE": ["facts"]}
    responses.replace(responses.POST, GRAPHQL, json={"data": {"webhookSubscriptions": {"nodes": subscribed(both)}}})
    assert subscriptions.ensure(settings, shop_with_token, platforms.admin_client) == []
    assert len(responses.calls) == 1

    # The mapping is removed: the namespace is no longer asked for.
    map_birthday(settings, None)
    assert shop_with_token in subscriptions.due(settings)
    responses.calls.reset()
    responses.replace(responses.POST, GRAPHQL, json={"data": {"webhookSubscriptions": {"nodes": subscribed(both)}}})
    responses.post(
        GRAPHQL, json={"data": {"webhookSubscriptionUpdate": {"webhookSubscription": {"id": "y"}, "userErrors": []}}}
    )
    assert subscriptions.ensure(settings, shop_with_token, platforms.admin_client) == [
        "CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"
    ]  # fmt: skip
    assert [call["subscription"] for call in sent(responses.calls)] == [{"uri": URI, "metafieldNamespaces": []}] * 2


def test_an_unchanged_mapping_does_not_ask_for_a_new_subscription_check(settings, shop):
    map_birthday(settings, "facts.birth_date")
    with transaction(settings.database_url) as session:
        shops.get(session, SHOP).webhooks_checked_at = datetime.now(UTC)
    map_birthday(settings, "facts.birth_date")  # saved again (another field, say): the mapping is the same
    with transaction(settings.database_url) as session:
        assert shops.get(session, SHOP).webhooks_checked_at is not None


def test_a_customers_update_carrying_the_mapped_metafield_sets_the_birthday_the_job_awards(client, settings, shop):
    map_birthday(settings, "facts.birth_date")
    deliver(client, "customers/create", {"id": 7001, "email": "alice@example.com"})
    payload = {
        "id": 7001,
        "email": "alice@example.com",
        "metafields": [
            {"namespace": "other", "key": "birth_date", "value": "1970-01-01"},
            {"namespace": "facts", "key": "birth_date", "value": "1990-07-14", "type": "date"},
        ],
    }
    assert deliver(client, "customers/update", payload).status_code == 200
    with transaction(settings.database_url) as session:
        row = session.execute(select(MemberBirthday)).scalar_one()
        assert (row.month, row.day, row.source) == (7, 14, "metafield")
    assert birthdays.award_all(settings.database_url, datetime(2027, 7, 14, 9, tzinfo=UTC))["awarded"] == 1
    with transaction(settings.database_url) as session:
        assert session.scalars(select(Posting.points).where(Posting.source_type == "birthday")).all() == [200]
