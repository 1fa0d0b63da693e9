"""The end-to-end benchmark's realistic programme: seeded through the services, every rule fires on its orders."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bench import programme
from bench.common import order_payload
from plugin import platforms
from plugin.db import transaction
from plugin.models import Order, OutboxEvent, Posting
from plugin.services import accrual, event_endpoints, products, shops
from tests.conftest import SHOP

RECEIVER = "http://127.0.0.1:9/loyalty-events"


def _pay(database_url: str, n: int, customer_id: int, paid_at: datetime) -> None:
    """Delivery n of the bench, paid by `customer_id`, applied as the inbox applies an orders/paid."""
    payload = order_payload(order_id=9_000_000 + n, customer_id=customer_id, product_ids=programme.line_products(n))
    event = platforms.get("shopify").parse_event("orders/paid", payload, paid_at)
    with transaction(database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), event)


def test_line_products_give_both_multiplied_types_alone_together_and_neither():
    pairs = {programme.line_products(n) for n in range(9)}
    types = [{programme.PRODUCTS[p] for p in pair} for pair in pairs]
    assert len(pairs) == 9
    assert {"Shoes"} in types and {"Outerwear"} in types and {"Shoes", "Outerwear"} in types
    assert {"Accessories"} in types  # an order no multiplier matches


def test_the_seeded_programme_fires_every_rule_on_the_bench_orders(settings, shop):
    now = datetime.now(UTC)
    secret = programme.seed(settings.database_url, SHOP, RECEIVER, settings.encryption_keys, now)
    for n in range(8):  # 8 orders of 388.00: Silver, then Gold, a threshold and two punches
        _pay(settings.database_url, n, 5001, now)
    with transaction(settings.database_url) as session:
        lots = session.scalars(select(Order.lot).where(Order.shop_id == shop)).all()
        fired = Counter(c["rule_id"] for lot in lots for c in lot["contributions"])
        sources = Counter(session.scalars(select(Posting.source_type).where(Posting.shop_id == shop)))
        events = Counter(session.scalars(select(OutboxEvent.event_type).where(OutboxEvent.shop_id == shop)))
        waiting = products.waiting_count(session, shop)
        endpoints = [e.url for e in event_endpoints.endpoints(session, shop)]
    assert secret.startswith("whsec_") and endpoints == [RECEIVER]
    assert waiting == 0 and len(lots) == 8  # every product was known: no order waited for a look-up
    assert fired["base"] == 8 and fired["winter"] == 8
    assert fired["shoes"] > 0 and fired["outerwear"] > 0
    assert fired["tier:silver"] > 0 and fired["tier:gold"] > 0
    assert sources["order"] == 8 and sources["threshold"] == 1 and sources["punch_card"] == 2
    assert sources["tier"] == 1  # Gold's entry reward
    assert events["points.earned"] >= 8 and events["tier.changed"] == 2


def test_the_campaign_runs_a_day_either_side_of_the_seeding_only(settings, shop):
    now = datetime.now(UTC)
    programme.seed(settings.database_url, SHOP, RECEIVER, settings.encryption_keys, now)
    _pay(settings.database_url, 0, 5001, now + timedelta(hours=23))
    _pay(settings.database_url, 1, 5002, now + timedelta(hours=25))
    with transaction(settings.database_url) as session:
        lots = dict(session.execute(select(Order.order_id, Order.lot).where(Order.shop_id == shop)).all())
    assert "winter" in {c["rule_id"] for c in lots[9_000_000]["contributions"]}
    assert "winter" not in {c["rule_id"] for c in lots[9_000_001]["contributions"]}
