"""Look up, through the shop's Admin API, the products that paid orders wait for, and settle those orders."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import OrderProductWait, Shop
from plugin.platforms.shopify.admin import AdminClient
from plugin.programme.events import ProductFacts
from plugin.services import accrual

log = logging.getLogger(__name__)
MAX_PER_RUN = 500  # products per job run (ten batched queries); the next sweep takes the rest


def look_up(
    settings: Settings, shop_id: int, client_factory: Callable[[Settings, Shop], AdminClient] = platforms.admin_client
) -> int:
    """Fetch the waited-for products (batched, throttled by the Admin client), cache them, and settle the orders
    that waited. A product the shop no longer has is cached as deleted with no facts, so its orders settle
    rather than wait forever. Returns the points posted."""
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active or shop.access_token is None:
            return 0
        wanted = list(
            session.scalars(
                select(OrderProductWait.product_id)
                .distinct()
                .where(OrderProductWait.shop_id == shop_id)
                .order_by(OrderProductWait.product_id)
                .limit(MAX_PER_RUN)
            )
        )
        if not wanted:
            return 0
        found, gone = platforms.for_shop(shop).fetch_products(client_factory(settings, shop), wanted)
        posted = sum(accrual.product_known(session, shop, product) for product in found)
        posted += sum(
            accrual.product_known(session, shop, ProductFacts(pid, collections=frozenset()), deleted=True)
            for pid in sorted(gone)
        )
        log.info("shop %s: looked up %d products, %d points settled", shop_id, len(wanted), posted)
        return posted


def due(settings: Settings) -> list[int]:
    """Shops with orders waiting for a product."""
    with transaction(settings.database_url) as session:
        return list(session.scalars(select(OrderProductWait.shop_id).distinct().order_by(OrderProductWait.shop_id)))
