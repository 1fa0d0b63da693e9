"""The product cache fed by batched Admin GraphQL look-ups: waiting orders settle, products the shop lost too."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import responses
from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Member, OrderProductWait, Product, utcnow
from plugin.platforms.shopify.products import BATCH
from plugin.programme import events
from plugin.services import accrual, product_lookup, shops
from tests.conftest import SHOP, deliver
from tests.test_earning_e2e import OUTERWEAR_X2, save_rules

GRAPHQL = re.compile(r"https://loyal-shop\.myshopify\.com/admin/api/[^/]+/graphql\.json")


def shop_answers(known: dict[int, str]):
    """A GraphQL `nodes` answer: the known products' facts, null for the others; records each batch asked."""
    asked: list[list[int]] = []

    def answer(request):
        ids = [int(gid.rsplit("/", 1)[1]) for gid in json.loads(request.body)["variables"]["ids"]]
        asked.append(ids)
        nodes = [
            {"id": f"gid://shopify/Product/{pid}", "productType": known[pid], "vendor": "Acme", "tags": ["Winter"],
             "collections": {"nodes": [{"id": "gid://shopify/Collection/77", "handle": "coats"}]}}
            if pid in known else None
            for pid in ids
        ]  # fmt: skip
        body = {"data": {"nodes": nodes}, "extensions": {"cost": {"throttleStatus": {
            "maximumAvailable": 2000.0, "currentlyAvailable": 1990.0, "restoreRate": 100.0}}}}  # fmt: skip
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    return asked, answer


def pay(settings, order_id: int, customer_id: int, *lines: tuple[int, str, int]) -> None:
    """An orders/paid event straight into accrual: no webhook, so no balance push calls the shop."""
    snapshot = events.OrderSnapshot(
        order_id, f"#{order_id}", events.Customer(customer_id), None, "USD", False, False,
        tuple(events.OrderLine(lid, 1, Decimal(amount), product_id=pid) for lid, amount, pid in lines),
    )  # fmt: skip
    with transaction(settings.database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), events.OrderPaid(snapshot, utcnow()))


def test_waiting_orders_settle_after_a_batched_look_up_and_lost_products_do_not_wait_forever(settings, shop_with_token):
    save_rules(settings, OUTERWEAR_X2)
    many = [(1000 + i, "1.00", 600 + i) for i in range(BATCH + 10)]
    pay(settings, 1, 7001, (11, "100.00", 501), *many)
    pay(settings, 2, 7002, (21, "10.00", 502))
    asked, answer = shop_answers({501: "Outerwear", **{600 + i: "Socks" for i in range(BATCH + 10)}})
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, GRAPHQL, callback=answer)
        posted = product_lookup.look_up(settings, shop_with_token)
    assert [len(batch) for batch in asked] == [BATCH, 12]  # 62 products in batches of 50
    assert posted == 200 + BATCH + 10 + 10
    with transaction(settings.database_url) as session:
        assert session.execute(select(OrderProductWait)).all() == []
        balances = dict(session.execute(select(Member.customer_id, Member.balance)).all())
        coat = session.execute(select(Product).where(Product.product_id == 501)).scalar_one()
        gone = session.execute(select(Product).where(Product.product_id == 502)).scalar_one()
    assert balances == {7001: 200 + BATCH + 10, 7002: 10}
    assert (coat.product_type, coat.tags, sorted(coat.collections)) == ("Outerwear", ["winter"], ["77", "coats"])
    assert gone.deleted is True


def test_a_look_up_with_nothing_waiting_calls_nobody(settings, shop_with_token):
    with responses.RequestsMock() as mock:  # any call would fail: no URL is registered
        assert product_lookup.look_up(settings, shop_with_token) == 0
        assert len(mock.calls) == 0


def test_a_collection_rule_waits_for_collections_a_webhook_does_not_carry(client, settings, shop_with_token):
    with transaction(settings.database_url) as session:  # the shop's known collections, from an earlier look-up
        session.add(Product(shop_id=shop_with_token, product_id=999, tags=[], collections=["coats"]))
    save_rules(settings, {"type": "multiplier", "multiplier": "3", "match": {"collections": ["coats"]}})
    deliver(client, "products/create", {"id": 501, "product_type": "Outerwear", "tags": ""})
    pay(settings, 1, 7001, (11, "10.00", 501))
    with transaction(settings.database_url) as session:
        assert session.execute(select(OrderProductWait.product_id)).scalars().all() == [501]
    asked, answer = shop_answers({501: "Outerwear"})
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, GRAPHQL, callback=answer)
        assert product_lookup.look_up(settings, shop_with_token) == 30  # 10 base + 20 for x3 on "coats"
    assert asked == [[501]]
