"""Order reconciliation: fetch orders updated since the last sync (through the shop's platform) and apply them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.platforms.base import AdminClient, SyncedOrder
from plugin.services import accrual

log = logging.getLogger(__name__)

PAGE_SIZE = 50
SAFETY_OVERLAP = timedelta(minutes=10)  # orders updated just before the last sync started are fetched again
ClientFactory = Callable[[Settings, Shop], AdminClient]


@dataclass
class Report:
    since: datetime
    orders: int = 0
    pages: int = 0
    points: int = 0  # net points posted
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"orders": self.orders, "pages": self.pages, "since": self.since.isoformat(), "errors": self.errors}


def starting_point(shop: Shop, since: datetime | None) -> datetime:
    """--since when given; otherwise the last sync (or the install) minus a safety overlap."""
    if since is not None:
        return since
    return (shop.reconciled_at or shop.installed_at) - SAFETY_OVERLAP


def run(
    settings: Settings,
    shop_id: int,
    since: datetime | None = None,
    client_factory: ClientFactory | None = None,
    page_size: int = PAGE_SIZE,
) -> Report:
    """Fetch every order updated since the starting point and apply it, one transaction per order.

    The shop's reconciled_at moves to this run's start only when every page was read and every order applied,
    so a failed order is fetched again next time. AdminAPIError/AdminAPIUnavailable propagate to the caller.
    The platform reads and maps the orders (for Shopify: plugin/platforms/shopify/orders.py).
    """
    started = utcnow()
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active:
            raise LookupError(f"no installed shop {shop_id}")
        report = Report(since=starting_point(shop, since))
        platform = platforms.for_shop(shop)
        client = (client_factory or platform.admin_client)(settings, shop)
    for page in platform.orders_updated_since(client, report.since, page_size):
        report.pages += 1
        for order in page:
            _apply_order(settings, shop_id, order, report)
    if not report.errors:
        with transaction(settings.database_url) as session:
            session.get(Shop, shop_id).reconciled_at = started
    log.info("shop %s reconciled: %s", shop_id, report.to_json())
    return report


def _apply_order(settings: Settings, shop_id: int, order: SyncedOrder, report: Report) -> None:
    try:
        with transaction(settings.database_url) as session:
            shop = session.get(Shop, shop_id)
            posted = sum(accrual.apply(session, shop, event) for event in order.read_events())
    except Exception as error:  # one bad order must not stop the others; it is reported and retried next run
        log.exception("reconcile: order %s of shop %s failed", order.reference, shop_id)
        report.errors.append({"order": order.reference, "error": f"{type(error).__name__}: {error}"})
        return
    report.orders += 1
    report.points += posted


def due(settings: Settings, every: timedelta) -> list[int]:
    """Installed shops whose orders were last reconciled longer ago than `every` (or never)."""
    with transaction(settings.database_url) as session:
        return list(
            session.scalars(
                select(Shop.id).where(
                    Shop.active.is_(True),
                    Shop.access_token.is_not(None),
                    or_(Shop.reconciled_at.is_(None), Shop.reconciled_at < utcnow() - every),
                )
            )
        )
