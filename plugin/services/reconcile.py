"""Order reconciliation: fetch orders updated since the last sync and apply them like webhooks would."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import or_, select

from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.platforms.shopify.admin import AdminClient
from plugin.platforms.shopify.payloads import spread_unallocated_discount
from plugin.programme import events
from plugin.services import accrual

log = logging.getLogger(__name__)

PAGE_SIZE = 50
SAFETY_OVERLAP = timedelta(minutes=10)  # orders updated just before the last sync started are fetched again
PAID_STATUSES = frozenset({"PAID", "PARTIALLY_REFUNDED", "REFUNDED"})

ORDERS_UPDATED_SINCE = """query LoyaltyOrdersUpdatedSince($first: Int!, $cursor: String, $query: String!) {
  orders(first: $first, after: $cursor, query: $query, sortKey: UPDATED_AT) {
    nodes {
      id name email test taxesIncluded processedAt cancelledAt updatedAt displayFinancialStatus
      currencyCode presentmentCurrencyCode
      customer { id email firstName lastName }
      subtotalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 100) {
        nodes {
          id quantity isGiftCard
          originalUnitPriceSet { shopMoney { amount } }
          discountAllocations { allocatedAmountSet { shopMoney { amount } } }
          taxLines { priceSet { shopMoney { amount } } }
        }
      }
      shippingLines(first: 10) {
        nodes {
          discountedPriceSet { shopMoney { amount } }
          taxLines { priceSet { shopMoney { amount } } }
        }
      }
      totalTipReceivedSet { shopMoney { amount } }
      refunds {
        id createdAt
        refundLineItems(first: 100) { nodes { quantity lineItem { id } } }
        refundShippingLines(first: 10) { nodes { subtotalAmountSet { shopMoney { amount } } } }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}"""

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


def numeric_id(gid: str) -> int:
    """123 from "gid://shopify/Order/123" (a bare number is accepted as well)."""
    return int(str(gid).rsplit("/", 1)[-1].split("?", 1)[0])


def _shop_money(bag: dict[str, Any] | None) -> Decimal:
    if not bag:
        return Decimal(0)
    return Decimal(str(bag["shopMoney"]["amount"]))


def _sum_shop_money(bags: Iterable[dict[str, Any] | None]) -> Decimal:
    return sum((_shop_money(bag) for bag in bags), Decimal(0))


def _nodes(connection: dict[str, Any] | list | None) -> list[dict[str, Any]]:
    if connection is None:
        return []
    if isinstance(connection, list):
        return connection
    return connection.get("nodes") or []


def _moment(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _customer(node: dict[str, Any] | None) -> events.Customer | None:
    if not node:
        return None
    return events.Customer(numeric_id(node["id"]), node.get("email"), node.get("firstName"), node.get("lastName"))


def _line(node: dict[str, Any]) -> events.OrderLine:
    quantity = int(node["quantity"])
    return events.OrderLine(
        line_id=numeric_id(node["id"]),
        quantity=quantity,
        gross=_shop_money(node["originalUnitPriceSet"]) * quantity,
        discount=_sum_shop_money(a["allocatedAmountSet"] for a in node.get("discountAllocations") or []),
        tax=_sum_shop_money(t["priceSet"] for t in node.get("taxLines") or []),
        gift_card=bool(node.get("isGiftCard")),
    )


def _refund(node: dict[str, Any], order_id: int) -> events.RefundFacts:
    quantities: dict[int, int] = {}
    for refunded in _nodes(node.get("refundLineItems")):
        line_id = numeric_id(refunded["lineItem"]["id"])
        quantities[line_id] = quantities.get(line_id, 0) + int(refunded["quantity"])
    shipping = _sum_shop_money(s["subtotalAmountSet"] for s in _nodes(node.get("refundShippingLines")))
    return events.RefundFacts(numeric_id(node["id"]), order_id, quantities, shipping, _moment(node.get("createdAt")))


def order_snapshot(node: dict[str, Any]) -> events.OrderSnapshot:
    """The neutral snapshot of one GraphQL order: the same facts the webhook adapter reads, in shop money."""
    order_id = numeric_id(node["id"])
    customer = _customer(node.get("customer"))
    shipping_lines = _nodes(node.get("shippingLines"))
    lines = tuple(_line(line) for line in _nodes(node.get("lineItems")))
    subtotal = node.get("subtotalPriceSet")
    subtotal_bag = {"shop_money": {"amount": _shop_money(subtotal)}} if subtotal else None
    return events.OrderSnapshot(
        order_id=order_id,
        name=node.get("name"),
        customer=customer,
        email=node.get("email") or (customer.email if customer else None),
        currency=node["currencyCode"],
        test=bool(node.get("test")),
        taxes_included=bool(node.get("taxesIncluded")),
        lines=spread_unallocated_discount(lines, subtotal_bag),
        shipping=_sum_shop_money(s.get("discountedPriceSet") for s in shipping_lines),
        shipping_tax=_sum_shop_money(t["priceSet"] for s in shipping_lines for t in s.get("taxLines") or []),
        tip=_shop_money(node.get("totalTipReceivedSet")),  # unlike the webhook's plain tip, this is shop money
        processed_at=_moment(node.get("processedAt")),
        cancelled_at=_moment(node.get("cancelledAt")),
        refunds=tuple(_refund(refund, order_id) for refund in node.get("refunds") or []),
    )


def order_events(node: dict[str, Any]) -> list[events.Event]:
    """What the webhooks would have told us about this order by now."""
    snapshot = order_snapshot(node)
    found: list[events.Event] = []
    if node.get("displayFinancialStatus") in PAID_STATUSES:
        found.append(events.OrderPaid(snapshot, paid_at=snapshot.processed_at or utcnow()))
    if snapshot.cancelled_at is not None:
        found.append(events.OrderCancelled(snapshot))
    return found or [events.OrderCreated(snapshot)]


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
    """
    if client_factory is None:
        from plugin.services.redemption import admin_client as client_factory  # local import: redemption is heavier
    started = utcnow()
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active:
            raise LookupError(f"no installed shop {shop_id}")
        report = Report(since=starting_point(shop, since))
        client = client_factory(settings, shop)
    search = f"updated_at:>={report.since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    cursor = None
    while True:
        page = client.graphql(ORDERS_UPDATED_SINCE, {"first": page_size, "cursor": cursor, "query": search})
        orders = page.get("orders") or {}
        report.pages += 1
        for node in orders.get("nodes") or []:
            _apply_order(settings, shop_id, node, report)
        info = orders.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            break
        cursor = info["endCursor"]
    if not report.errors:
        with transaction(settings.database_url) as session:
            session.get(Shop, shop_id).reconciled_at = started
    log.info("shop %s reconciled: %s", shop_id, report.to_json())
    return report


def _apply_order(settings: Settings, shop_id: int, node: dict[str, Any], report: Report) -> None:
    try:
        with transaction(settings.database_url) as session:
            shop = session.get(Shop, shop_id)
            posted = sum(accrual.apply(session, shop, event) for event in order_events(node))
    except Exception as error:  # one bad order must not stop the others; it is reported and retried next run
        log.exception("reconcile: order %s of shop %s failed", node.get("id"), shop_id)
        report.errors.append({"order": node.get("id"), "error": f"{type(error).__name__}: {error}"})
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
