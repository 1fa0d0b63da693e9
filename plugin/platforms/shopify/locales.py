"""The shop's primary locale, from the Admin GraphQL `shopLocales` query (scope `read_locales`)."""

from __future__ import annotations

from plugin.platforms.shopify.admin import AdminClient

SHOP_LOCALES = "query LoyaltyShopLocales { shopLocales { locale primary published } }"


def primary_locale(client: AdminClient) -> str | None:
    """The locale the shop marks primary ("fr", "en-GB"); None when the shop names none."""
    answer = client.graphql(SHOP_LOCALES, {})
    for node in answer.get("shopLocales") or []:
        if node and node.get("primary") and isinstance(node.get("locale"), str):
            return node["locale"]
    return None
