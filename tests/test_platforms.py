"""The platform seam: the inbox, services and jobs reach a shop's platform only through the registry."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime

import pytest
from sqlalchemy import select

from plugin import inbox, platforms
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Member
from plugin.platforms.base import SyncedOrder
from plugin.platforms.shopify.payloads import load_order
from plugin.programme import events
from plugin.services import balance_push, reconcile, shops, subscriptions
from tests import builders

ACME_SHOP = "corner.acme.test"


@dataclasses.dataclass
class AcmeClient:
    shop_domain: str
    deadline: float | None = None


class Acme:
    """A second platform, as a newcomer would add one: nothing in the core knows its name."""

    name = "acme"
    lifecycle_topics = frozenset({"shop/closed"})
    shop_domain_hint = "*.acme.test"
    max_balances_per_call = 2

    def __init__(self) -> None:
        self.pushed: list[list[tuple[int, int]]] = []
        self.pages: list[list[SyncedOrder]] = []
        self.subscribed: list[str] = []

    def verify_webhook(self, body, signature, secrets) -> bool:
        return signature == "acme-ok"

    def is_valid_shop_domain(self, domain) -> bool:
        return bool(domain) and domain.endswith(".acme.test")

    def triggered_at(self, header, fallback: datetime) -> datetime:
        return fallback

    def parse_event(self, topic, payload, triggered_at):
        if topic != "sale":
            return None
        return events.OrderPaid(load_order(payload["order"]), paid_at=triggered_at)

    def admin_client(self, settings, shop) -> AcmeClient:
        return AcmeClient(shop.domain)

    def push_balances(self, client, balances) -> None:
        self.pushed.append(list(balances))

    def orders_updated_since(self, client, since, page_size):
        yield from self.pages

    def ensure_webhooks(self, client, callback_uri, customer_metafield_namespaces=()) -> list[str]:
        self.subscribed.append(callback_uri)
        return ["sale"]


@pytest.fixture
def acme(monkeypatch) -> Acme:
    platform = Acme()
    monkeypatch.setitem(platforms._PLATFORMS, "acme", platform)  # registered for this test only
    return platform


def acme_sale(order_id: int, customer_id: int, amount: str) -> events.OrderPaid:
    snapshot = load_order(builders.order(order_id, customer_id, [builders.line(order_id, amount)]))
    return events.OrderPaid(snapshot, paid_at=snapshot.processed_at)


def store(settings, platform: str, topic: str, body: dict, shop: str = ACME_SHOP) -> None:
    incoming = inbox.IncomingDelivery(
        shop, topic, f"{platform}-{topic}-1", json.dumps(body).encode(), platform=platform
    )
    inbox.store(engine_for(settings.database_url), incoming)


def balances(settings) -> dict[int, int]:
    with transaction(settings.database_url) as session:
        return {
            customer_id: balance for customer_id, balance in session.execute(select(Member.customer_id, Member.balance))
        }


def test_a_registered_platform_is_found_by_the_name_shops_and_deliveries_carry():
    assert platforms.get("shopify").name == "shopify"
    assert "shopify" in platforms.names()
    with pytest.raises(platforms.UnknownPlatform):
        platforms.get("woocommerce")


def test_an_adapter_missing_part_of_the_protocol_is_refused_at_registration():
    class HalfBuilt:
        name = "half"

        def parse_event(self, topic, payload, triggered_at):
            return None

    with pytest.raises(TypeError):
        platforms.register(HalfBuilt())
    assert "half" not in platforms.names()


def test_each_platform_validates_its_own_shop_domains(settings, acme):
    with transaction(settings.database_url) as session:
        with pytest.raises(ValueError, match=r"not a \*\.myshopify\.com domain"):
            shops.install(session, ACME_SHOP, None, settings.encryption_keys)
        with pytest.raises(ValueError, match=r"not a \*\.acme\.test domain"):
            shops.install(session, "loyal-shop.myshopify.com", None, settings.encryption_keys, platform="acme")
        shop = shops.install(session, ACME_SHOP, None, settings.encryption_keys, platform="acme")
        assert shop.platform == "acme"


def test_a_second_platform_earns_pushes_syncs_and_subscribes_through_the_registry_alone(settings, acme):
    settings = dataclasses.replace(settings, shopify_app_url="https://app.test")
    with transaction(settings.database_url) as session:
        shop_id = shops.install(session, ACME_SHOP, "acme-token", settings.encryption_keys, platform="acme").id

    # A delivery: the inbox asks the delivery's platform to parse it; the programme and the ledger do the rest.
    order = builders.order(1, 7001, [builders.line(10, "64.99")])
    store(settings, "acme", "sale", {"order": order})
    assert inbox.drain(settings.database_url)[inbox.PROCESSED] == 1
    assert balances(settings) == {7001: 64}

    # The balance push goes through the shop's platform, in batches of the size it takes.
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert acme.pushed == [[(7001, 64)]]

    # An order sync: the platform reads and maps the orders; one it cannot map is reported, the others applied.
    def unreadable():
        raise ValueError("no line items")

    acme.pages = [
        [SyncedOrder("acme-order-2", lambda: [acme_sale(2, 7002, "20.00")]), SyncedOrder("acme-order-3", unreadable)]
    ]
    report = reconcile.run(settings, shop_id)
    assert (report.pages, report.orders) == (1, 1)
    assert report.errors == [{"order": "acme-order-3", "error": "ValueError: no line items"}]
    assert balances(settings) == {7001: 64, 7002: 20}

    # Webhook subscriptions point at the platform's own intake path.
    assert subscriptions.ensure(settings, shop_id) == ["sale"]
    assert acme.subscribed == ["https://app.test/webhooks/acme"]


def test_a_delivery_for_an_unregistered_platform_is_parked_with_its_reason(settings, shop):
    store(settings, "woocommerce", "orders/paid", builders.order(1, 7001, [builders.line(10, "10.00")]))
    store(
        settings,
        "shopify",
        "orders/paid",
        builders.order(2, 7001, [builders.line(20, "10.00")]),
        shop="loyal-shop.myshopify.com",
    )

    outcomes = inbox.drain(settings.database_url)

    assert (outcomes[inbox.PARKED], outcomes[inbox.PROCESSED]) == (1, 1)  # the other delivery is not held up
    with transaction(settings.database_url) as session:
        parked = session.execute(select(Delivery).where(Delivery.status == inbox.PARKED)).scalar_one()
    assert parked.platform == "woocommerce"
    assert parked.reason == "no platform 'woocommerce' is registered"
