"""Shopify webhook subscriptions: list ours and re-create the missing ones through the Admin API.

The compliance topics cannot be created through the API; they are declared in shopify.app.toml.
"""

from __future__ import annotations

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

LIST = """query LoyaltyWebhooks {
  webhookSubscriptions(first: 100) { nodes { id topic uri } }
}"""

CREATE = """mutation LoyaltySubscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"""


def ensure_webhooks(client: AdminClient, callback_uri: str) -> list[str]:
    """Create the subscriptions to `callback_uri` the shop is missing; returns the topics created."""
    nodes = (client.graphql(LIST, {}).get("webhookSubscriptions") or {}).get("nodes") or []
    present = {node["topic"] for node in nodes if node.get("uri") == callback_uri}
    created = []
    for topic in TOPICS:
        if topic in present:
            continue
        result = client.graphql(CREATE, {"topic": topic, "subscription": {"uri": callback_uri}})
        errors = (result.get("webhookSubscriptionCreate") or {}).get("userErrors") or []
        if errors:
            raise AdminAPIError(f"{topic}: {errors}")
        created.append(topic)
    return created
