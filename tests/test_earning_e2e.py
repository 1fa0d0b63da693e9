"""Earning rules end to end through signed webhooks: product facts, tags, refunds, shuffled arrival, explanations."""

from __future__ import annotations

import csv
import io
import time
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from plugin import ledger
from plugin.db import transaction
from plugin.models import Member, OrderProductWait, Posting, Product
from plugin.platforms.shopify.adapter import proxy_signature
from plugin.services import rule_sets, shops, support
from tests import builders
from tests.conftest import SECRET, SHOP, deliver
from tests.test_admin_api import call, session_token

ALICE = 7001
OTHER_SHOP = "other-shop.myshopify.com"
TRIGGERED = "2026-11-20"  # conftest's X-Shopify-Triggered-At day (UTC)
OUTERWEAR_X2 = {"type": "multiplier", "id": "coats", "multiplier": "2", "match": {"product_types": ["Outerwear"]}}


def save_rules(settings, *rules, **top) -> int:
    with transaction(settings.database_url) as session:
        return rule_sets.save(session, shops.get(session, SHOP), {"rules": list(rules), **top}, "test")["version"]


def line(line_id: int, price: str, product_id: int, quantity: int = 1) -> dict:
    return {**builders.line(line_id, price, quantity), "product_id": product_id, "variant_id": product_id * 100}


def product(product_id: int, product_type: str = "Outerwear", tags: str = "winter") -> dict:
    return {"id": product_id, "product_type": product_type, "vendor": "Acme", "tags": tags,
            "variants": [{"id": product_id * 100}]}  # fmt: skip


def balance(settings, customer_id: int = ALICE) -> int:
    with transaction(settings.database_url) as session:
        return session.execute(select(Member.balance).where(Member.customer_id == customer_id)).scalar_one()


def waiting(settings) -> list[tuple[int, int, int]]:
    with transaction(settings.database_url) as session:
        rows = session.execute(select(OrderProductWait.shop_id, OrderProductWait.order_id, OrderProductWait.product_id))
        return sorted(tuple(r) for r in rows)


def test_an_order_whose_product_is_not_cached_earns_once_the_product_arrives_and_only_once(client, settings, shop):
    save_rules(settings, OUTERWEAR_X2)
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "100.00", 501), line(12, "20.00", 502)]))
    assert balance(settings) == 0  # never guessed: it waits for both products' facts
    assert waiting(settings) == [(shop, 1, 501), (shop, 1, 502)]
    deliver(client, "products/update", product(501))
    assert balance(settings) == 0  # still one product short
    deliver(client, "products/create", product(502, "Shirts"))
    assert balance(settings) == 220  # 120 base + 100 for the coat
    assert waiting(settings) == []
    deliver(client, "products/update", product(501))
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "100.00", 501), line(12, "20.00", 502)]))
    assert balance(settings) == 220


def test_an_order_paid_after_its_products_are_cached_earns_at_once(client, settings, shop):
    save_rules(settings, OUTERWEAR_X2)
    deliver(client, "products/create", product(501))
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "100.00", 501)]))
    assert balance(settings) == 200


def test_a_product_deleted_before_it_was_ever_cached_settles_its_orders_with_no_product_facts(client, settings, shop):
    save_rules(settings, OUTERWEAR_X2)
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "100.00", 501)]))
    deliver(client, "products/delete", {"id": 501})
    assert balance(settings) == 100 and waiting(settings) == []


def test_a_product_webhook_for_another_shops_product_changes_nothing_here(client, settings, shop):
    with transaction(settings.database_url) as session:
        other = shops.install(session, OTHER_SHOP, None, settings.encryption_keys).id
    save_rules(settings, OUTERWEAR_X2)
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "100.00", 501)]))
    assert deliver(client, "products/update", product(501), shop=OTHER_SHOP).status_code == 200
    assert waiting(settings) == [(shop, 1, 501)]
    assert balance(settings) == 0
    with transaction(settings.database_url) as session:
        assert session.execute(select(Product.shop_id).where(Product.product_id == 501)).scalars().all() == [other]


def test_customers_update_tags_give_the_segment_rate_to_later_orders(client, settings, shop):
    save_rules(
        settings,
        {"type": "base_rate", "points": 2, "per_amount": "100"},
        {"type": "customer_segment", "tag": "card-member", "points": 5, "per_amount": "100"},
    )
    deliver(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "1000.00")]))
    assert balance(settings) == 20
    deliver(client, "customers/update", {"id": ALICE, "email": "c7001@example.com", "tags": "VIP, card-member"})
    deliver(client, "orders/paid", builders.order(2, ALICE, [builders.line(21, "1000.00")]))
    assert balance(settings) == 20 + 50


def test_an_orders_own_customer_tags_count_for_that_order(client, settings, shop):
    save_rules(settings, {"type": "customer_segment", "tag": "card-member", "points": 5, "per_amount": "1"})
    paid = builders.order(1, ALICE, [builders.line(11, "10.00")])
    paid["customer"]["tags"] = "card-member"
    deliver(client, "orders/paid", paid)
    assert balance(settings) == 50


CAMPAIGN = {
    "type": "campaign", "id": "bf", "name": "Black Friday", "multiplier": "2",
    "starts_at": f"{TRIGGERED}T00:00:00", "ends_at": f"{TRIGGERED}T23:59:59",
}  # fmt: skip


def _campaign_deliveries() -> list[tuple[str, dict, str]]:
    paid = builders.order(1, ALICE, [line(11, "10.00", 501, 3), line(12, "10.00", 502)])
    return [
        ("products/create", product(501), "p1"),
        ("products/create", product(502, "Shirts"), "p2"),
        ("orders/paid", paid, "paid"),
        ("refunds/create", builders.refund(91, 1, {11: 1}), "r1"),
        ("refunds/create", builders.refund(92, 1, {12: 1}), "r2"),
    ]


def test_refunds_take_back_each_contributions_share_through_webhooks(client, settings, shop):
    save_rules(settings, OUTERWEAR_X2, CAMPAIGN, {"type": "fixed_points", "points": 90})
    held = []
    for topic, payload, webhook_id in _campaign_deliveries():
        deliver(client, topic, payload, webhook_id=webhook_id)
        held.append(balance(settings) if topic != "products/create" else None)
    # 40 base, +30 coats x2, +40 campaign x2 on everything, +90 fixed = 200;
    # refund one coat (10.00): base 30, coats 20, campaign 30, fixed 3/4 of 90 = 67 -> 147;
    # refund the shirt too (30.00 of 40 gone): base 20, coats 20, campaign 20, fixed 45 -> 105.
    assert held[2:] == [200, 147, 105]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_and_repeated_deliveries_land_where_the_natural_order_does(client, settings, shop, seed):
    import random

    save_rules(settings, OUTERWEAR_X2, CAMPAIGN, {"type": "fixed_points", "points": 90})
    deliveries = _campaign_deliveries()
    chosen = random.Random(seed)
    repeated = [(topic, payload, f"{webhook_id}-again") for topic, payload, webhook_id in chosen.sample(deliveries, 3)]
    shuffled = deliveries + repeated  # the repeats have their own webhook ids: processed twice, not deduplicated
    chosen.shuffle(shuffled)
    for topic, payload, webhook_id in shuffled:
        assert deliver(client, topic, payload, webhook_id=webhook_id).status_code == 200
    assert balance(settings) == 105  # as in the natural order above
    deliver(client, "orders/cancelled", {**deliveries[2][1], "cancelled_at": "2026-11-22T10:00:00Z"})
    assert balance(settings) == 0


def test_an_edited_rule_set_never_changes_what_an_order_already_earned_or_how_it_is_reversed(client, settings, shop):
    save_rules(settings, OUTERWEAR_X2)
    deliver(client, "products/create", product(501))
    deliver(client, "orders/paid", builders.order(1, ALICE, [line(11, "25.00", 501, 2)]))
    assert balance(settings) == 100
    assert save_rules(settings) == 2  # the multiplier is deleted: version 2
    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    assert balance(settings) == 50  # half of the base and half of the old multiplier
    with transaction(settings.database_url) as session:
        versions = session.scalars(select(Posting.rule_version).order_by(Posting.id)).all()
    assert [v.rsplit("+", 1)[-1] for v in versions] == ["rules-1", "rules-1"]


def test_every_posting_explains_itself_in_support_history_its_csv_and_the_widget(client, settings, shop):
    save_rules(settings, CAMPAIGN)
    deliver(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "37.42")]))
    expected = "#1: 74 points: 37.42 eligible \u00d7 1 per 1.00, \u00d7 2 Black Friday campaign (rules v1)"
    with transaction(settings.database_url) as session:
        shop_row = shops.get(session, SHOP)
        member = session.execute(select(Member).where(Member.customer_id == ALICE)).scalar_one()
        lines = support.history(session, shop_row, member)
    assert [line["explanation"] for line in lines] == [expected]
    assert [row["explanation"] for row in csv.DictReader(io.StringIO(support.history_csv(lines)))] == [expected]
    params = [("shop", SHOP), ("logged_in_customer_id", str(ALICE)), ("path_prefix", "/apps/loyalty"),
              ("timestamp", str(int(time.time())))]  # fmt: skip
    params.append(("signature", proxy_signature(params, SECRET)))
    widget = client.get(f"/proxy/widget?{urlencode(params)}").get_json()
    assert [h["explanation"] for h in widget["history"]] == [expected]


def widget_history(client) -> list[str | None]:
    params = [("shop", SHOP), ("logged_in_customer_id", str(ALICE)), ("path_prefix", "/apps/loyalty"),
              ("timestamp", str(int(time.time())))]  # fmt: skip
    params.append(("signature", proxy_signature(params, SECRET)))
    return [h["explanation"] for h in client.get(f"/proxy/widget?{urlencode(params)}").get_json()["history"]]


def support_history(settings) -> list[dict]:
    with transaction(settings.database_url) as session:
        member = session.execute(select(Member).where(Member.customer_id == ALICE)).scalar_one()
        return support.history(session, shops.get(session, SHOP), member)


def test_explanations_read_in_the_shops_language_set_in_settings_old_postings_included(client, settings, shop):
    save_rules(settings, CAMPAIGN)
    deliver(client, "orders/paid", builders.order(1, ALICE, [builders.line(11, "37.42")]))
    with transaction(settings.database_url) as session:  # a posting from before explanations were data
        member_id = session.execute(select(Member.id).where(Member.customer_id == ALICE)).scalar_one()
        ledger.post(session, shop, ledger.Entry(member_id, "adjust", 5, "support", "old", "old-1", "v0",
                                                note="goodwill from the old days"))  # fmt: skip
    token = session_token()
    refused = call(client, "PUT", "locale", token, json={"locale": "fran\u00e7ais"})
    assert refused.status_code == 422 and "locale" in refused.get_json()["error"]["fields"]
    assert call(client, "GET", "locale", token).get_json() == {"locale": "en", "language": "en",
                                                               "languages": ["en", "fr"]}  # fmt: skip
    assert call(client, "PUT", "locale", token, json={"locale": "fr-CA"}).get_json()["language"] == "fr"

    french = "#1 : 74 points : 37,42 \u00e9ligibles \u00d7 1 pour 1,00, \u00d7 2 campagne Black Friday (r\u00e8gles v1)"
    lines = support_history(settings)
    assert [line["explanation"] for line in lines] == ["goodwill from the old days", french]
    assert [row["explanation"] for row in csv.DictReader(io.StringIO(support.history_csv(lines)))] == [
        "goodwill from the old days", french
    ]  # fmt: skip
    assert widget_history(client)[1] == french
    with transaction(settings.database_url) as session:  # the ledger itself keeps the English note and the data
        posting = session.scalars(select(Posting).where(Posting.kind == "earn")).one()
    assert posting.note.startswith("#1: 74 points: 37.42 eligible") and posting.details["key"] == "order_earned"

    deliver(client, "refunds/create", builders.refund(91, 1, {11: 1}))
    assert support_history(settings)[0]["explanation"] == "#1 rembours\u00e9e"
    assert widget_history(client)[0] == "#1 rembours\u00e9e"
