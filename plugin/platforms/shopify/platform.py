"""The Shopify platform as the core sees it: the Platform protocol, each part delegated to its Shopify module."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import object_session

from plugin.config import Settings
from plugin.models import Shop
from plugin.platforms.base import SyncedOrder, TierChange
from plugin.platforms.shopify import (
    adapter,
    customers,
    locales,
    metafields,
    orders,
    products,
    subscriptions,
    tiers,
    tokens,
)
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable, AdminClient
from plugin.programme import events

STILL_INSTALLED_QUERY = "{ shop { id } }"  # the cheapest authenticated query: any token of the shop may run it


class ShopifyPlatform:
    name = "shopify"
    lifecycle_topics = adapter.LIFECYCLE_TOPICS
    shop_domain_hint = "*.myshopify.com"
    max_balances_per_call = metafields.PER_CALL

    def verify_webhook(self, body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
        return adapter.verify_webhook(body, signature, secrets)

    def is_valid_shop_domain(self, domain: str | None) -> bool:
        return adapter.is_valid_shop_domain(domain)

    def triggered_at(self, header: str | None, fallback: datetime) -> datetime:
        return adapter.parse_triggered_at(header, fallback)

    def parse_event(self, topic: str, payload: Any, triggered_at: datetime) -> events.Event | None:
        return adapter.parse_event(topic, payload, triggered_at)

    def admin_client(self, settings: Settings, shop: Shop) -> AdminClient:
        """A client with a fresh token, that refreshes once more if the shop says 401."""
        session = object_session(shop)
        if session is None:
            raise ValueError("admin_client needs a shop loaded in an open session")
        token = tokens.current(session, settings, shop)
        shop_id = shop.id
        return AdminClient(
            shop.domain,
            token,
            settings.shopify_api_version,
            settings.shopify_api_base_url,
            read_timeout=settings.shopify_api_timeout,
            on_unauthorized=lambda: tokens.refresh_now(settings, shop_id) if shop.refresh_token else None,
        )

    def push_balances(self, client: AdminClient, balances: Sequence[tuple[int, int]]) -> None:
        metafields.push_balances(client, balances)

    def push_tier(self, client: AdminClient, change: TierChange) -> None:
        tiers.push_tier(client, change)

    def orders_updated_since(self, client: AdminClient, since: datetime, page_size: int) -> Iterator[list[SyncedOrder]]:
        return orders.orders_updated_since(client, since, page_size)

    def ensure_webhooks(
        self, client: AdminClient, callback_uri: str, customer_metafield_namespaces: Sequence[str] = ()
    ) -> list[str]:
        return subscriptions.ensure_webhooks(client, callback_uri, customer_metafield_namespaces)

    def find_customers(
        self, client: AdminClient, ids: Sequence[int], emails: Sequence[str], pause: Callable[[], None]
    ) -> tuple[list[events.Customer], int]:
        return customers.find_customers(client, ids, emails, pause)

    def uninstall_refusal(self, settings: Settings, shop: Shop) -> str | None:
        session = object_session(shop)
        if session is None:
            raise ValueError("uninstall_refusal needs a shop loaded in an open session")
        try:
            token = tokens.current(session, settings, shop)
        except AdminAPIError:
            return None  # a refused refresh is an answer too: the app is gone
        except AdminAPIUnavailable as error:
            return f"app/uninstalled not confirmed: the shop's Admin API could not be reached ({error}); replay it"
        try:
            client = AdminClient(
                shop.domain,
                token,
                settings.shopify_api_version,
                settings.shopify_api_base_url,
                max_attempts=2,
                read_timeout=min(settings.shopify_api_timeout, 5.0),
            )
            client.graphql(STILL_INSTALLED_QUERY, {})
        except AdminAPIError as error:
            if error.status in (401, 403):
                return None  # the shop refused our token: uninstalled indeed
            # A frozen or locked shop (402, 423) or an odd answer says nothing about our token: ask again later.
            return f"app/uninstalled not confirmed: the shop's Admin API answered {error}; replay it"
        except AdminAPIUnavailable as error:
            return f"app/uninstalled not confirmed: the shop's Admin API could not be reached ({error}); replay it"
        return "app/uninstalled not acted on: the shop's Admin API still accepts our token, so the app is installed"

    def existing_collections(self, client: AdminClient, names: Iterable[str]) -> set[str]:
        return products.existing_collections(client, names)

    def primary_locale(self, client: AdminClient) -> str | None:
        return locales.primary_locale(client)

    def fetch_products(
        self, client: AdminClient, product_ids: Iterable[int]
    ) -> tuple[list[events.ProductFacts], set[int]]:
        return products.fetch(client, product_ids)


SHOPIFY = ShopifyPlatform()
