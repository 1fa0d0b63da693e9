"""Shopify webhook subscriptions: list ours and re-create the missing ones through the Admin API.

The compliance topics cannot be created through the API; they are declared in shopify.app.toml.

A customer payload carries metafields only of the namespaces its subscription names: `metafieldNamespaces`
([String!]) on `WebhookSubscriptionInput`, read back on `WebhookSubscription.metafieldNamespaces`, and changed in
place by `webhookSubscriptionUpdate(id, webhookSubscription)`. Checked in Shopify's Admin GraphQL reference
(shopify.dev/docs/api/admin-graphql/<version>/input-objects/WebhookSubscriptionInput) for 2025-10 and 2026-01
(with `uri`), and on 2026-07's `webhookSubscriptionUpdate` ("metafield namespaces") and 2027-01's sibling
`PubSubWebhookSubscriptionInput`, so also in the pinned 2026-10 between them (decision 0015's rule). The app-wide
subscriptions in shopify.app.toml cannot name a namespace one shop maps, so the per-shop ones carry it.
"""

from __future__ import annotations

from collections.abc import Sequence

from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

TOPICS = (
    "ORDERS_CREATE",
    "ORDERS_PAID",
    "ORDERS_CANCELLED",
    "REFUNDS_CREATE",
    "CUSTOMERS_CREATE",
    "CUSTOMERS_UPDATE",  # customer tags, for segment rates
    "PRODUCTS_CREATE",  # the product cache that product-aware earning rules match lines by
    "PRODUCTS_UPDATE",
    "PRODUCTS_DELETE",
    "APP_UNINSTALLED",
)

# The topics whose payloads may carry a merchant-mapped customer metafield (a birthday).
CUSTOMER_TOPICS = frozenset({"CUSTOMERS_CREATE", "CUSTOMERS_UPDATE"})

LIST = """query LoyaltyWebhooks {
  webhookSubscriptions(first: 100) { nodes { id topic uri metafieldNamespaces } }
}"""

CREATE = """mutation LoyaltySubscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"""


UPDATE = """mutation LoyaltyResubscribe($id: ID!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionUpdate(id: $id, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"""


def ensure_webhooks(
    client: AdminClient, callback_uri: str, customer_metafield_namespaces: Sequence[str] = ()
) -> list[str]:
    """Create the subscriptions to `callback_uri` the shop is missing, the customer topics naming the mapped
    metafield namespaces, and update a customer subscription whose namespaces differ; returns the topics changed."""
    namespaces = sorted(set(customer_metafield_namespaces))
    nodes = (client.graphql(LIST, {}).get("webhookSubscriptions") or {}).get("nodes") or []
    present = {node["topic"]: node for node in nodes if node.get("uri") == callback_uri}
    changed = []
    for topic in TOPICS:
        node = present.get(topic)
        subscription: dict = {"uri": callback_uri}
        if topic in CUSTOMER_TOPICS and (namespaces or node is not None):
            subscription["metafieldNamespaces"] = namespaces
        if node is None:
            _check(
                client.graphql(CREATE, {"topic": topic, "subscription": subscription}),
                "webhookSubscriptionCreate",
                topic,
            )
        elif topic in CUSTOMER_TOPICS and sorted(node.get("metafieldNamespaces") or []) != namespaces:
            _check(
                client.graphql(UPDATE, {"id": node["id"], "subscription": subscription}),
                "webhookSubscriptionUpdate",
                topic,
            )
        else:
            continue
        changed.append(topic)
    return changed


def _check(result: dict, mutation: str, topic: str) -> None:
    errors = (result.get(mutation) or {}).get("userErrors") or []
    if errors:
        raise AdminAPIError(f"{topic}: {errors}")
