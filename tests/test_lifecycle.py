"""Uninstall, re-install and the three privacy webhooks, each checked in the database."""

from __future__ import annotations

import dataclasses
import json

import pytest
import responses
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from plugin import create_app, ledger
from plugin.config import DEFAULT_API_VERSION
from plugin.db import transaction
from plugin.models import Delivery, Member, Order, Posting, PrivacyRequest, Shop
from plugin.services import shops
from tests import builders
from tests.conftest import SHOP, deliver, signed_headers

OTHER = "other-shop.myshopify.com"
UNINSTALLED = {"id": 1, "name": "Test shop", "domain": None, "myshopify_domain": SHOP}


def privacy_payload(customer_id: int | None = None, shop: str = SHOP) -> dict:
    payload = {"shop_id": 954889, "shop_domain": shop}
    if customer_id is not None:
        payload |= {
            "customer": {"id": customer_id, "email": "ada@example.com", "phone": "555-625-1199"},
            "orders_requested": [1],
            "orders_to_redact": [1],
            "data_request": {"id": 9999},
        }
    return payload


def count(settings, model, **where) -> int:
    with transaction(settings.database_url) as session:
        query = select(func.count()).select_from(model)
        for column, value in where.items():
            query = query.where(getattr(model, column) == value)
        return session.execute(query).scalar_one()


def test_uninstall_parks_later_deliveries_and_a_reinstall_restores_the_history(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    client = create_app(settings, TESTING=True).test_client()
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")]))
    state.token = "the-token-after-uninstall"  # Shopify revokes ours: the confirmation call gets 401
    deliver(client, "app/uninstalled", {"id": 1, "myshopify_domain": SHOP})
    with transaction(settings.database_url) as session:
        stored = shops.get(session, SHOP)
        assert (stored.active, stored.access_token, stored.refresh_token) == (False, None, None)
    deliver(client, "orders/paid", builders.order(2, 7001, [builders.line(20, "10.00")]))
    with transaction(settings.database_url) as session:
        parked = session.scalars(select(Delivery).where(Delivery.status == "parked")).one()
        assert parked.reason == f"shop {SHOP} is uninstalled"
        parked_id = parked.id

    with transaction(settings.database_url) as session:
        shops.install(session, SHOP, "shpat_new_token", settings.encryption_keys)
    from plugin import inbox

    assert inbox.replay(settings.database_url, parked_id) == "processed"
    with transaction(settings.database_url) as session:
        assert session.execute(select(Member.balance)).scalar_one() == 50  # 40 before, 10 replayed


def test_privacy_webhook_with_a_bad_signature_is_refused_401(client, settings, shop):
    body = json.dumps(privacy_payload(7001)).encode()
    headers = signed_headers(body, "customers/redact", secret="forged")
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 401
    assert count(settings, PrivacyRequest) == 0


def test_data_request_exports_the_members_data_for_the_merchant(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "customers/data_request", privacy_payload(7001))
    with transaction(settings.database_url) as session:
        request = session.scalars(select(PrivacyRequest)).one()
    export = request.outcome["export"]
    assert (request.topic, request.customer_id, request.outcome["request_id"]) == ("customers/data_request", 7001, 9999)
    assert (export["email"], export["balance"]) == ("ada@example.com", 40)
    assert [(p["kind"], p["points"]) for p in export["postings"]] == [("earn", 40)]
    assert [o["order_id"] for o in export["orders"]] == [1]


def test_customer_redact_removes_personal_data_and_keeps_the_amounts(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "orders/paid", builders.order(2, 7002, [builders.line(20, "15.00")], email="bob@example.com"))
    deliver(client, "customers/redact", privacy_payload(7001))
    with transaction(settings.database_url) as session:
        members = {m.balance: m for m in session.scalars(select(Member))}
        redacted, kept = members[40], members[15]
        assert (redacted.email, redacted.first_name, redacted.last_name) == (None, None, None)
        assert redacted.customer_id < 0  # no longer the shop's customer id
        assert (kept.email, kept.customer_id) == ("bob@example.com", 7002)
        bodies = [d.body for d in session.scalars(select(Delivery).where(Delivery.topic == "orders/paid"))]
        assert b"ada@example.com" not in b"".join(bodies)
        assert any(b"bob@example.com" in body for body in bodies)
        assert ledger.verify(session) == []
        assert session.execute(select(func.sum(Posting.points))).scalar_one() == 55  # the accounts still add up
        request = session.scalars(select(PrivacyRequest)).one()
    # the order about Ada, and the redact request itself (it carries her email and phone too)
    assert request.outcome == {"member_anonymised": True, "deliveries_scrubbed": 2, "exports_erased": 0}


def test_customer_redact_also_reaches_parked_payloads_and_earlier_exports(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "customers/data_request", privacy_payload(7001))
    payload = builders.order(2, 7001, [builders.line(20, "5.00")], email="ada@example.com")
    del payload["line_items"]  # a schema error: parked before anyone learnt whose order it was
    deliver(client, "orders/paid", payload)
    deliver(client, "customers/redact", privacy_payload(7001))
    with transaction(settings.database_url) as session:
        bodies = b"".join(session.scalars(select(Delivery.body)))
        requests = {r.topic: r.outcome for r in session.scalars(select(PrivacyRequest))}
    assert b"ada@example.com" not in bodies
    # the processed order, the parked one, the data request and the redact request: all carried her details
    assert requests["customers/redact"]["deliveries_scrubbed"] == 4
    assert requests["customers/data_request"] == {"request_id": 9999, "export_erased": True}


def test_shop_redact_erases_everything_of_an_uninstalled_shop_only(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.install(session, OTHER, None, settings.encryption_keys)
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")]))
    deliver(client, "refunds/create", builders.refund(5, 1, {10: 1}))
    deliver(client, "orders/paid", builders.order(9, 7009, [builders.line(90, "12.00")]), shop=OTHER)
    deliver(client, "shop/redact", privacy_payload())
    assert count(settings, Member) == 2  # still installed: nothing erased
    deliver(client, "app/uninstalled", UNINSTALLED)
    deliver(client, "shop/redact", privacy_payload())

    with transaction(settings.database_url) as session:
        assert session.scalars(select(Shop.domain)).all() == [OTHER]
        assert session.execute(select(Member.customer_id)).scalars().all() == [7009]
        assert session.execute(select(Order.order_id)).scalars().all() == [9]
        assert session.execute(select(func.count()).select_from(Posting)).scalar_one() == 1
        left = session.execute(select(Delivery.shop_domain, Delivery.topic)).all()
        assert sorted(left) == [(SHOP, "shop/redact"), (OTHER, "orders/paid")]  # the request itself stays
        requests = session.scalars(select(PrivacyRequest).order_by(PrivacyRequest.id)).all()
        assert [r.outcome["erased"] for r in requests] == [False, True]
        assert requests[1].outcome["postings"] == 2 and requests[1].outcome["members"] == 1
        assert session.execute(text("SELECT count(*) FROM ledger_erasures")).scalar_one() == 0  # no permit left
    with pytest.raises(DBAPIError, match="append-only"), transaction(settings.database_url) as session:
        session.execute(text("DELETE FROM postings"))  # the other shop's ledger is still protected


def test_privacy_requests_for_a_shop_we_never_knew_are_acknowledged(client, settings):
    deliver(
        client, "customers/redact", privacy_payload(7001, shop="stranger.myshopify.com"), shop="stranger.myshopify.com"
    )
    with transaction(settings.database_url) as session:
        delivery = session.scalars(select(Delivery)).one()
        request = session.scalars(select(PrivacyRequest)).one()
    assert delivery.status == "processed"
    assert request.outcome == {"note": "no data held for this shop"}


def test_the_export_can_be_read_from_the_cli(app, client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")]))
    deliver(client, "customers/data_request", privacy_payload(7001))
    listed = json.loads(app.test_cli_runner().invoke(args=["loyalty", "privacy", "list"]).output)
    assert [(r["topic"], r["customer_id"]) for r in listed] == [("customers/data_request", 7001)]
    shown = json.loads(app.test_cli_runner().invoke(args=["loyalty", "privacy", "show", str(listed[0]["id"])]).output)
    assert shown["outcome"]["export"]["balance"] == 40


def test_redact_reaches_guest_orders_named_in_orders_to_redact(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    guest = builders.order(2, None, [builders.line(20, "9.00")], email="ada@example.com")
    deliver(client, "orders/paid", guest)
    deliver(client, "refunds/create", builders.refund(3, 2, {20: 1}))
    payload = privacy_payload(7001) | {"orders_to_redact": [1, 2]}
    deliver(client, "customers/redact", payload)
    with transaction(settings.database_url) as session:
        bodies = b"".join(session.scalars(select(Delivery.body)))
    assert b"ada@example.com" not in bodies


def test_payloads_for_an_erased_shop_are_parked_without_their_body(client, settings, shop):
    deliver(client, "app/uninstalled", UNINSTALLED)
    deliver(client, "shop/redact", privacy_payload())
    deliver(client, "orders/paid", builders.order(5, 7005, [builders.line(50, "5.00")], email="late@example.com"))
    with transaction(settings.database_url) as session:
        late = session.scalars(select(Delivery).where(Delivery.topic == "orders/paid")).one()
    assert late.status == "parked" and "erased" in late.reason
    assert b"late@example.com" not in late.body


def test_a_privacy_body_naming_another_shop_is_not_acted_on(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "customers/redact", privacy_payload(7001, shop="other-shop.myshopify.com"))
    with transaction(settings.database_url) as session:
        member = session.scalars(select(Member)).one()
        delivery = session.scalars(select(Delivery).where(Delivery.topic == "customers/redact")).one()
    assert member.email == "ada@example.com"  # untouched
    assert delivery.status == "parked" and "names other-shop.myshopify.com" in delivery.reason


def test_the_export_includes_the_stored_webhooks_about_the_shopper(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "customers/data_request", privacy_payload(7001))
    with transaction(settings.database_url) as session:
        export = session.scalars(select(PrivacyRequest)).one().outcome["export"]
    assert [(w["topic"], w["payload"]["email"]) for w in export["stored_webhooks"]] == [
        ("orders/paid", "ada@example.com")
    ]


def shop_state(settings, domain: str = SHOP) -> tuple[bool, bool]:
    """(active, holds a token) for the shop."""
    with transaction(settings.database_url) as session:
        stored = shops.get(session, domain)
        return stored.active, stored.access_token is not None


def last_delivery(settings) -> Delivery:
    with transaction(settings.database_url) as session:
        return session.scalars(select(Delivery).order_by(Delivery.id.desc()).limit(1)).one()


def test_an_order_body_resent_as_an_uninstall_for_another_shop_deactivates_nothing(client, settings, shop):
    with transaction(settings.database_url) as session:
        shops.install(session, OTHER, "shpat_other", settings.encryption_keys)
    deliver(client, "app/uninstalled", builders.order(1, 7001, [builders.line(10, "40.00")]), shop=OTHER)
    assert shop_state(settings, OTHER) == (True, True)
    parked = last_delivery(settings)
    assert parked.status == "parked" and "myshopify_domain" in parked.reason


def test_an_uninstall_body_naming_another_shop_deactivates_nothing(client, settings, shop):
    deliver(client, "app/uninstalled", UNINSTALLED | {"myshopify_domain": OTHER})
    assert shop_state(settings) == (True, False)
    assert f"the body names {OTHER}" in last_delivery(settings).reason


def test_an_uninstall_is_not_acted_on_while_the_shops_admin_api_still_accepts_our_token(fake_shop_api, shop_with_token):
    settings, _ = fake_shop_api
    client = create_app(settings, TESTING=True).test_client()
    deliver(client, "app/uninstalled", UNINSTALLED)  # a genuine body, replayed while the app is installed
    assert shop_state(settings) == (True, True)
    parked = last_delivery(settings)
    assert parked.status == "parked" and "still accepts our token" in parked.reason


def test_an_uninstall_that_cannot_be_confirmed_is_parked_for_replay(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    state.fail_rate = 1.0  # every Admin API call fails with a 5xx
    client = create_app(settings, TESTING=True).test_client()
    deliver(client, "app/uninstalled", UNINSTALLED)
    assert shop_state(settings) == (True, True)
    assert "could not be reached" in last_delivery(settings).reason


def test_privacy_bodies_must_be_privacy_bodies(client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "40.00")], email="ada@example.com"))
    deliver(client, "customers/redact", builders.order(1, 7001, [builders.line(10, "40.00")]))
    assert "shop_domain" in last_delivery(settings).reason
    deliver(client, "customers/redact", {k: v for k, v in privacy_payload(7001).items() if k != "shop_id"})
    assert "shop_id" in last_delivery(settings).reason
    with transaction(settings.database_url) as session:
        assert session.scalars(select(Member.email)).one() == "ada@example.com"


def test_replaying_a_parked_uninstall_asks_the_shop_again_before_acting(fake_shop_api, shop_with_token):
    from plugin.services import desk

    settings, state = fake_shop_api
    client = create_app(settings, TESTING=True).test_client()
    deliver(client, "app/uninstalled", UNINSTALLED)  # parked: the shop still takes our token
    parked_id = last_delivery(settings).id

    # Support replays its parked deliveries: the replay must not skip the confirmation the drain made.
    assert desk.replay_parked(settings, shop_with_token, parked_id)["status"] == "parked"
    assert shop_state(settings) == (True, True)
    assert "still accepts our token" in last_delivery(settings).reason

    state.token = "the-token-after-uninstall"  # now uninstalled indeed: the shop refuses our token
    assert desk.replay_parked(settings, shop_with_token, parked_id)["status"] == "processed"
    assert shop_state(settings) == (False, False)


@responses.activate
def test_an_uninstall_is_not_acted_on_when_the_shop_refuses_for_a_reason_not_our_token(settings, shop_with_token):
    settings = dataclasses.replace(settings, shopify_api_base_url="https://fake-shop.test")
    graphql = f"https://fake-shop.test/admin/api/{DEFAULT_API_VERSION}/graphql.json"
    responses.post(graphql, status=402, body="Payment Required")  # a frozen shop: its token still works
    deliver(create_app(settings, TESTING=True).test_client(), "app/uninstalled", UNINSTALLED)
    assert shop_state(settings) == (True, True)
    assert "402" in last_delivery(settings).reason
