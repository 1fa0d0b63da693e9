"""Webhook subscriptions: after install, and every few hours, make sure the shop still sends us our topics.

Shopify deletes API-created subscriptions after repeated failed deliveries, so we check and re-create them
(the platform knows its topics and API: plugin/platforms/shopify/subscriptions.py for Shopify).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import or_, select

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.platforms.base import AdminClient
from plugin.services.milestones import settings as milestone_settings

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(hours=6)


def callback_uri(settings: Settings, platform: str = platforms.DEFAULT) -> str:
    return f"{settings.shopify_app_url}/webhooks/{platform}"


def ensure(
    settings: Settings, shop_id: int, client_factory: Callable[[Settings, Shop], AdminClient] = platforms.admin_client
) -> list[str]:
    """Create the subscriptions the shop is missing, and bring the customer topics' metafield namespaces to what
    the programme maps (a birthday metafield); returns the topics created or changed."""
    if not settings.shopify_app_url:
        log.warning("SHOPIFY_APP_URL is not set: cannot tell the shop where to send webhooks")
        return []
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active:
            return []
        platform = platforms.for_shop(shop)
        client = client_factory(settings, shop)
        namespaces = milestone_settings.mapped_namespaces(session, shop_id)
    created = platform.ensure_webhooks(client, callback_uri(settings, platform.name), namespaces)
    with transaction(settings.database_url) as session:
        session.get(Shop, shop_id).webhooks_checked_at = utcnow()
    if created:
        log.info("shop %s: created or updated webhook subscriptions %s", shop_id, created)
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
