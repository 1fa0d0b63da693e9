"""Order reconciliation: GraphQL orders become webhook-equal snapshots, and an outage heals to the exact balances."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from plugin import create_app, ledger
from plugin.db import transaction
from plugin.jobs import dispatch as queue
from plugin.jobs import tasks as jobs
from plugin.models import Member, Order, Posting, Shop, utcnow
from plugin.platforms.shopify import orders as shopify_orders
from plugin.platforms.shopify.payloads import load_order
from plugin.services import reconcile, shops
from tests import builders
from tests.conftest import SHOP, deliver

OUTAGE_SHOP = "outage-shop.myshopify.com"
CUSTOMERS = (8001, 8002, 8003, 8004, 8005)


def _gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def _shop_money(bag: dict[str, Any]) -> dict[str, Any]:
    """A GraphQL MoneyBag from a webhook `*_set` bag (presentment money kept, to prove it is never read)."""
    return {
        "shopMoney": {"amount": bag["shop_money"]["amount"], "currencyCode": bag["shop_money"]["currency_code"]},
        "presentmentMoney": {
            "amount": bag["presentment_money"]["amount"],
            "currencyCode": bag["presentment_money"]["currency_code"],
        },
    }


def _tax_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"priceSet": _shop_money(tax["price_set"])} for tax in lines]


def graphql_order(webhook: dict[str, Any], status: str, updated_at: str) -> dict[str, Any]:
    """The GraphQL Admin API's view of the order a webhook payload (from tests/builders.py) describes."""
    customer = webhook["customer"]
    return {
        "id": _gid("Order", webhook["id"]),
        "name": webhook["name"],
        "email": webhook["email"],
        "test": webhook["test"],
        "taxesIncluded": webhook["taxes_included"],
        "processedAt": webhook["processed_at"],
        "cancelledAt": webhook["cancelled_at"],
        "updatedAt": updated_at,
        "displayFinancialStatus": status,
        "currencyCode": webhook["currency"],
        "presentmentCurrencyCode": webhook["presentment_currency"],
        "customer": customer
        and {
            "id": _gid("Customer", customer["id"]),
            "email": customer["email"],
            "firstName": customer["first_name"],
            "lastName": customer["last_name"],
        },
        "subtotalPriceSet": None,
        "lineItems": {
            "nodes": [
                {
                    "id": _gid("LineItem", line["id"]),
                    "quantity": line["quantity"],
                    "isGiftCard": line["gift_card"],
                    "originalUnitPriceSet": _shop_money(line["price_set"]),
                    "discountAllocations": [
                        {"allocatedAmountSet": _shop_money(a["amount_set"])} for a in line["discount_allocations"]
                    ],
                    "taxLines": _tax_lines(line["tax_lines"]),
                }
                for line in webhook["line_items"]
            ]
        },
        "shippingLines": {
            "nodes": [
                {"discountedPriceSet": _shop_money(s["discounted_price_set"]), "taxLines": _tax_lines(s["tax_lines"])}
                for s in webhook["shipping_lines"]
            ]
        },
        "totalTipReceivedSet": {"shopMoney": {"amount": webhook["total_tip_received"]}},
        "refunds": [
            {
                "id": _gid("Refund", refund["id"]),
                "createdAt": refund["created_at"],
                "refundLineItems": {
                    "nodes": [
                        {"quantity": r["quantity"], "lineItem": {"id": _gid("LineItem", r["line_item_id"])}}
                        for r in refund["refund_line_items"]
                    ]
                },
                "refundShippingLines": {
                    "nodes": [
                        {"subtotalAmountSet": _shop_money(s["subtotal_amount_set"])}
                        for s in refund["refund_shipping_lines"]
                    ]
                },
            }
            for refund in webhook["refunds"]
        ],
    }


def scenario(seed: int = 11) -> tuple[list[tuple[str, dict[str, Any], str]], list[dict[str, Any]]]:
    """About thirty orders for five shoppers: their webhooks in the order Shopify sends them, and the orders now."""
    rng = random.Random(seed)
    deliveries: list[tuple[str, dict[str, Any], str]] = []
    final_orders: list[dict[str, Any]] = []
    now = utcnow()
    for number in range(1, 31):
        order_id = 5000 + number
        rate = Decimal("0.92") if number % 4 == 0 else Decimal(1)  # every fourth buyer pays in EUR
        lines = [
            builders.line(
                order_id * 10 + position,
                rng.choice(("9.99", "19.50", "45.00", "120.00", "7.25")),
                rng.randint(1, 3),
                discount=rng.choice(("0.00", "0.00", "2.50")),
                tax=rng.choice(("0.00", "1.20")),
                gift_card=position == 3 and number % 5 == 0,
                rate=rate,
            )
            for position in range(1, rng.randint(1, 3) + 1)
        ]
        customer = None if number == 29 else CUSTOMERS[number % len(CUSTOMERS)]  # one guest checkout
        shipping = rng.choice(("0.00", "5.00"))
        paid = builders.order(
            order_id,
            customer,
            lines,
            shipping=shipping,
            presentment_currency="EUR" if rate != 1 else None,
            test=number == 17,
        )
        refunds = []
        remaining = {line["id"]: line["quantity"] for line in lines}
        for refund_number in range(rng.choice((0, 0, 1, 2))):
            quantities = {}
            for line_id, left in remaining.items():
                if left and rng.random() < 0.6:
                    quantities[line_id] = rng.randint(1, left)
                    remaining[line_id] -= quantities[line_id]
            refund_shipping = shipping if refund_number == 0 and shipping != "0.00" and rng.random() < 0.5 else "0.00"
            refunds.append(
                builders.refund(order_id * 10 + refund_number, order_id, quantities, shipping=refund_shipping)
            )
        cancelled = number % 6 == 0
        unpaid = number == 12  # cancelled before it was ever paid
        current = {**paid, "refunds": refunds, "cancelled_at": "2026-11-22T08:00:00Z" if cancelled or unpaid else None}
        if not unpaid:
            deliveries.append(("orders/paid", paid, f"paid-{order_id}"))
        deliveries.extend(("refunds/create", refund, f"refund-{refund['id']}") for refund in refunds)
        if current["cancelled_at"]:
            deliveries.append(("orders/cancelled", current, f"cancel-{order_id}"))
        all_refunded = not any(remaining.values())
        status = "VOIDED" if unpaid else "REFUNDED" if all_refunded else "PARTIALLY_REFUNDED" if refunds else "PAID"
        updated = (now - timedelta(seconds=rng.randint(0, 300))).isoformat()
        final_orders.append(graphql_order(current, status, updated))
    return deliveries, final_orders


def balances(settings, domain: str) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, domain).id
        return dict(session.execute(select(Member.customer_id, Member.balance).where(Member.shop_id == shop_id)).all())


def points_held(settings, domain: str) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        shop_id = shops.get(session, domain).id
        return dict(session.execute(select(Order.order_id, Order.points_held).where(Order.shop_id == shop_id)).all())


def posting_count(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(Posting))


def install(settings, domain: str, token: str | None) -> int:
    with transaction(settings.database_url) as session:
        return shops.install(session, domain, token, settings.encryption_keys).id


def test_graphql_order_in_another_currency_becomes_the_snapshot_its_webhook_gives(fake_shop_api):
    lines = [
        builders.line(71, "40.00", 3, discount="5.00", tax="3.50", rate=Decimal("0.9")),
        builders.line(72, "25.00", 1, gift_card=True, rate=Decimal("0.9")),
    ]
    webhook = builders.order(7, 7001, lines, shipping="6.00", shipping_tax="0.60", presentment_currency="EUR")
    webhook["refunds"] = [builders.refund(701, 7, {71: 2}, shipping="6.00")]
    node = graphql_order(webhook, "PARTIALLY_REFUNDED", "2026-11-22T10:00:00Z")
    assert node["lineItems"]["nodes"][0]["originalUnitPriceSet"]["presentmentMoney"]["amount"] == "36.00"

    snapshot = shopify_orders.order_snapshot(node)

    assert snapshot == load_order(webhook)
    assert snapshot.currency == "USD"
    assert [(line.line_id, line.gross, line.discount, line.tax) for line in snapshot.lines] == [
        (71, Decimal("120.00"), Decimal("5.00"), Decimal("3.50")),
        (72, Decimal("25.00"), Decimal(0), Decimal(0)),
    ]
    assert (snapshot.shipping, snapshot.shipping_tax) == (Decimal("6.00"), Decimal("0.60"))
    [refund] = snapshot.refunds
    assert (refund.refund_id, refund.order_id, refund.line_quantities, refund.shipping) == (
        701,
        7,
        {71: 2},
        Decimal("6.00"),
    )
    [paid] = shopify_orders.order_events(node)
    assert paid.paid_at == snapshot.processed_at


def test_unpaid_and_cancelled_orders_give_the_events_their_webhooks_would():
    base = builders.order(8, 7001)
    pending = graphql_order(base, "PENDING", "2026-11-22T10:00Z")
    assert [type(e).__name__ for e in shopify_orders.order_events(pending)] == ["OrderCreated"]
    cancelled = {**base, "cancelled_at": "2026-11-22T09:00:00Z"}
    assert [type(e).__name__ for e in shopify_orders.order_events(graphql_order(cancelled, "REFUNDED", "x"))] == [
        "OrderPaid",
        "OrderCancelled",
    ]


def test_reconcile_after_dropped_webhooks_gives_exactly_the_balances_of_full_delivery(fake_shop_api):
    settings, fake = fake_shop_api
    client = create_app(settings, TESTING=True).test_client()
    install(settings, SHOP, None)
    outage_shop = install(settings, OUTAGE_SHOP, "shpat_test_token")
    deliveries, final_orders = scenario()
    assert len(final_orders) == 30 and len(deliveries) > 40

    # Run A: every webhook arrives.
    for topic, payload, webhook_id in deliveries:
        assert deliver(client, topic, payload, shop=SHOP, webhook_id=webhook_id).status_code == 200
    expected = balances(settings, SHOP)
    assert len(expected) == len(CUSTOMERS) and sum(expected.values()) > 500

    # Run B: an outage drops about 40% of them.
    rng = random.Random(3)
    arrived = [d for d in deliveries if rng.random() < 0.6]
    missing = [d for d in deliveries if d not in arrived]
    for topic, payload, webhook_id in arrived:
        deliver(client, topic, payload, shop=OUTAGE_SHOP, webhook_id=webhook_id)
    assert balances(settings, OUTAGE_SHOP) != expected

    fake.orders = final_orders
    fake.throttle_orders = 1
    report = reconcile.run(settings, outage_shop, page_size=7)
    assert (report.orders, report.pages, report.errors) == (30, 5, [])
    assert fake.throttle_orders == 0 and fake.order_pages == 5
    assert balances(settings, OUTAGE_SHOP) == expected
    assert points_held(settings, OUTAGE_SHOP) == points_held(settings, SHOP)

    # Some of the dropped webhooks arrive late (Shopify's retries), after the reconcile: nothing moves.
    for topic, payload, webhook_id in missing[::2]:
        assert deliver(client, topic, payload, shop=OUTAGE_SHOP, webhook_id=webhook_id).status_code == 200
    assert balances(settings, OUTAGE_SHOP) == expected

    # Reconciling again (from the last sync minus the overlap) changes nothing.
    postings = posting_count(settings)
    again = reconcile.run(settings, outage_shop, page_size=7)
    assert (again.orders, again.errors, again.points) == (30, [], 0)
    assert posting_count(settings) == postings
    assert balances(settings, OUTAGE_SHOP) == expected
    with transaction(settings.database_url) as session:
        assert ledger.verify(session) == []


def test_a_bad_order_is_reported_without_holding_back_the_others_or_the_sync_time(fake_shop_api):
    settings, fake = fake_shop_api
    shop_id = install(settings, OUTAGE_SHOP, "shpat_test_token")
    now = utcnow().isoformat()
    good = graphql_order(builders.order(1, 7001, [builders.line(11, "30.00")]), "PAID", now)
    broken = graphql_order(builders.order(2, 7002, [builders.line(21, "10.00")]), "PAID", now)
    del broken["lineItems"]["nodes"][0]["quantity"]
    fake.orders = [good, broken]

    report = reconcile.run(settings, shop_id)

    assert report.orders == 1
    assert [error["order"] for error in report.errors] == ["gid://shopify/Order/2"]
    assert balances(settings, OUTAGE_SHOP) == {7001: 30}
    with transaction(settings.database_url) as session:
        assert session.get(Shop, shop_id).reconciled_at is None  # the next run fetches order 2 again


def test_cli_reconciles_since_the_given_time_and_prints_a_report(fake_shop_api):
    settings, fake = fake_shop_api
    install(settings, OUTAGE_SHOP, "shpat_test_token")
    fake.orders = [
        graphql_order(builders.order(1, 7001, [builders.line(11, "30.00")]), "PAID", "2026-01-05T10:00:00Z"),
        graphql_order(builders.order(2, 7001, [builders.line(21, "12.00")]), "PAID", "2025-12-01T10:00:00Z"),
    ]
    runner = create_app(settings, TESTING=True).test_cli_runner()

    result = runner.invoke(args=["loyalty", "reconcile", OUTAGE_SHOP, "--since", "2026-01-01T00:00:00"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "orders": 1,
        "pages": 1,
        "since": "2026-01-01T00:00:00+00:00",
        "errors": [],
    }
    assert balances(settings, OUTAGE_SHOP) == {7001: 30}
    bad = runner.invoke(args=["loyalty", "reconcile", OUTAGE_SHOP, "--since", "last tuesday"])
    assert bad.exit_code != 0 and "ISO 8601" in bad.output


def test_the_sweeper_reconciles_shops_not_synced_within_the_interval(fake_shop_api):
    settings, fake = fake_shop_api
    shop_id = install(settings, OUTAGE_SHOP, "shpat_test_token")
    install(settings, SHOP, None)  # no token: nothing to ask the shop with
    fake.orders = [graphql_order(builders.order(1, 7001, [builders.line(11, "30.00")]), "PAID", utcnow().isoformat())]

    jobs.sweep(settings)

    assert balances(settings, OUTAGE_SHOP) == {7001: 30}
    with transaction(settings.database_url) as session:
        synced = session.get(Shop, shop_id).reconciled_at
    assert synced is not None
    jobs.sweep(settings)  # within the interval: not due again
    assert fake.order_pages == 1
    with transaction(settings.database_url) as session:
        session.get(Shop, shop_id).reconciled_at = synced - timedelta(minutes=settings.reconcile_every_minutes + 1)
    jobs.sweep(settings)
    assert fake.order_pages == 2


@pytest.mark.integration
def test_with_redis_a_due_shop_gets_one_queued_reconcile_however_often_the_sweeper_runs(queued):
    shop_id = install(queued, OUTAGE_SHOP, "shpat_test_token")

    jobs.sweep(queued)
    jobs.sweep(queued)

    # The sweeper also queues the other periodic jobs (birthdays, expiry, events): count the reconciles only.
    reconciles = [job for job in queue.queue_for(queued).get_jobs() if job.func_name == jobs.RECONCILE_SHOP.name]
    assert [job.args for job in reconciles] == [(shop_id,)]
