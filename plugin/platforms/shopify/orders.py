"""Shopify order sync: the Admin GraphQL query for recently updated orders and its mapping to neutral events."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from plugin.models import utcnow
from plugin.platforms.base import SyncedOrder
from plugin.platforms.shopify.admin import AdminClient
from plugin.platforms.shopify.payloads import spread_unallocated_discount
from plugin.programme import events

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


def orders_updated_since(client: AdminClient, since: datetime, page_size: int) -> Iterator[list[SyncedOrder]]:
    """Pages of the orders updated since `since`, oldest update first, each order as its webhooks' events."""
    search = f"updated_at:>={since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    cursor = None
    while True:
        page = client.graphql(ORDERS_UPDATED_SINCE, {"first": page_size, "cursor": cursor, "query": search})
        orders = page.get("orders") or {}
        yield [SyncedOrder(node.get("id"), partial(order_events, node)) for node in orders.get("nodes") or []]
        info = orders.get("pageInfo") or {}
        if not info.get("hasNextPage"):
            return
        cursor = info["endCursor"]
