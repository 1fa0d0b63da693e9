"""Webhook subscriptions: after install, and every few hours, make sure the shop still sends us our topics.

Shopify deletes API-created subscriptions after repeated failed deliveries, so we check and re-create them.
The compliance topics cannot be created through the API; they are declared in shopify.app.toml.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select

from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

log = logging.getLogger(__name__)

TOPICS = ("ORDERS_CREATE", "ORDERS_PAID", "ORDERS_CANCELLED", "REFUNDS_CREATE", "CUSTOMERS_CREATE", "APP_UNINSTALLED")
CHECK_EVERY = timedelta(hours=6)

LIST = """query LoyaltyWebhooks {
  webhookSubscriptions(first: 100) { nodes { id topic uri } }
}"""

CREATE = """mutation LoyaltySubscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}"""


def callback_uri(settings: Settings) -> str:
    return f"{settings.shopify_app_url}/webhooks/shopify"


def ensure(settings: Settings, shop_id: int, client_factory: Callable[[Settings, Shop], AdminClient]) -> list[str]:
    """Create the subscriptions the shop is missing; returns the topics created."""
    if not settings.shopify_app_url:
        log.warning("SHOPIFY_APP_URL is not set: cannot tell the shop where to send webhooks")
        return []
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active:
            return []
        client = client_factory(settings, shop)
    uri = callback_uri(settings)
    nodes = (client.graphql(LIST, {}).get("webhookSubscriptions") or {}).get("nodes") or []
    present = {node["topic"] for node in nodes if node.get("uri") == uri}
    created = []
    for topic in TOPICS:
        if topic in present:
            continue
        result = client.graphql(CREATE, {"topic": topic, "subscription": {"uri": uri}})
        errors = (result.get("webhookSubscriptionCreate") or {}).get("userErrors") or []
        if errors:
            raise AdminAPIError(f"{topic}: {errors}")
        created.append(topic)
    with transaction(settings.database_url) as session:
        session.get(Shop, shop_id).webhooks_checked_at = utcnow()
    if created:
        log.info("shop %s: re-created webhook subscriptions %s", shop_id, created)
    return created


def due(settings: Settings) -> list[int]:
    """Installed shops whose subscriptions were last checked too long ago."""
    with transaction(settings.database_url) as session:
        return list(
            session.scalars(
                select(Shop.id).where(
                    Shop.active.is_(True),
                    Shop.access_token.is_not(None),
                    or_(Shop.webhooks_checked_at.is_(None), Shop.webhooks_checked_at < utcnow() - CHECK_EVERY),
                )
            )
        )
