"""`flask loyalty ...` commands: shops, settings, balance, history, parked, replay, verify-ledger."""

from __future__ import annotations

import dataclasses
import json

from sqlalchemy import select, text

from plugin import create_app, crypto, inbox
from plugin.db import engine_for, transaction
from plugin.models import Delivery, Shop
from tests import builders
from tests.conftest import SHOP, deliver


def run(app, *args: str):
    return app.test_cli_runner().invoke(args=["loyalty", *args])


def test_shops_add_stores_the_token_encrypted(app, settings):
    result = run(app, "shops", "add", SHOP, "--token", "shpat_secret_token_123")
    assert result.exit_code == 0, result.output
    with transaction(settings.database_url) as session:
        stored = session.execute(select(Shop.access_token)).scalar_one()
    assert b"shpat_secret_token_123" not in stored
    assert crypto.decrypt(stored, settings.encryption_keys) == "shpat_secret_token_123"


def test_shops_add_refuses_a_hostile_domain(app):
    result = run(app, "shops", "add", "shop.myshopify.com.attacker.net", "--token", "t")
    assert result.exit_code != 0
    assert "not a *.myshopify.com domain" in result.output


def test_balance_prints_balance_and_pending_as_json(app, client, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "64.99")]))
    result = run(app, "balance", SHOP, "7001")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "customer_id": 7001,
        "member": True,
        "balance": 64,
        "pending": 0,
        "available": 64,
    }


def test_balance_of_a_stranger_is_zero_and_says_so(app, shop):
    result = run(app, "balance", SHOP, "424242")
    assert json.loads(result.output)["member"] is False


def test_balance_of_an_unknown_shop_is_a_clear_error(app):
    result = run(app, "balance", "nowhere.myshopify.com", "1")
    assert result.exit_code != 0
    assert "no shop nowhere.myshopify.com" in result.output


def test_history_explains_each_posting(app, client, shop):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "50.00", 2)]))
    deliver(client, "refunds/create", builders.refund(77, 1, {10: 1}))
    history = json.loads(run(app, "history", SHOP, "7001").output)
    # The support APIs' history lines (one schema): the cause's id sits in its own field.
    assert [(h["kind"], h["points"], h["balance_after"], h["source"], h.get("refund_id")) for h in history] == [
        ("reverse", -50, 50, "refund", "77"),
        ("earn", 100, 100, "order", None),
    ]
    assert all(h["rule_version"] == "earn-1+settings-1" and h["order_id"] == 1 for h in history)


def test_unknown_shop_delivery_is_listed_then_replayed_after_install(app, client, settings):
    deliver(client, "orders/paid", builders.order(1, 7001), shop=SHOP)
    parked = json.loads(run(app, "parked").output)
    assert [(p["shop"], p["topic"], p["reason"]) for p in parked] == [(SHOP, "orders/paid", f"unknown shop {SHOP}")]
    assert run(app, "shops", "add", SHOP).exit_code == 0
    result = run(app, "replay", str(parked[0]["id"]))
    assert result.exit_code == 0, result.output
    assert "processed" in result.output
    assert json.loads(run(app, "balance", SHOP, "7001").output)["balance"] == 100
    assert json.loads(run(app, "parked").output) == []


def test_replay_refuses_a_delivery_that_is_not_parked(app, client, shop):
    deliver(client, "orders/paid", builders.order(1, 7001))
    with transaction(app.extensions["loyalty"].database_url) as session:
        delivery_id = session.execute(select(Delivery.id)).scalar_one()
    result = run(app, "replay", str(delivery_id))
    assert result.exit_code != 0
    assert "only parked deliveries are replayed" in result.output
    assert json.loads(run(app, "balance", SHOP, "7001").output)["balance"] == 100


def test_replay_that_still_fails_stays_parked_and_exits_non_zero(app, client, shop):
    deliver(client, "orders/paid", b"{not json")
    [parked] = json.loads(run(app, "parked").output)
    result = run(app, "replay", str(parked["id"]))
    assert result.exit_code == 1
    assert json.loads(run(app, "parked").output)[0]["attempts"] == 2


def test_settings_are_validated_and_versioned(app, shop):
    bad = run(app, "settings", SHOP, "--set", '{"pending_days": -1, "colour": "red"}')
    assert bad.exit_code != 0
    assert "pending_days" in bad.output and "colour" in bad.output
    good = run(app, "settings", SHOP, "--set", '{"earn": {"points": 5, "per_amount": "2.00"}, "pending_days": 7}')
    assert good.exit_code == 0, good.output
    shown = json.loads(run(app, "settings", SHOP).output)
    assert shown["version"] == 2
    assert shown["settings"]["earn"] == {"points": 5, "per_amount": "2.00"}
    assert shown["settings"]["pending_days"] == 7


def test_verify_ledger_exits_non_zero_on_a_mismatch(app, client, settings, shop):
    deliver(client, "orders/paid", builders.order(1, 7001))
    clean = run(app, "verify-ledger")
    assert clean.exit_code == 0 and "ledger OK" in clean.output
    with transaction(settings.database_url) as session:
        session.execute(text("UPDATE orders SET points_held = 3"))
    broken = run(app, "verify-ledger")
    assert broken.exit_code == 1
    assert "MISMATCH order" in broken.output


def test_requeue_processes_deliveries_that_waited_too_long(settings, shop):
    waiting = json.dumps(builders.order(1, 7001)).encode()
    inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", "w-1", waiting))
    patient = create_app(dataclasses.replace(settings, sweep_after_seconds=3600), TESTING=True)
    assert "0 waiting deliveries found" in run(patient, "requeue").output
    assert json.loads(run(patient, "balance", SHOP, "7001").output)["member"] is False

    prompt = create_app(dataclasses.replace(settings, sweep_after_seconds=0), TESTING=True)
    assert "1 waiting deliveries processed" in run(prompt, "requeue").output
    assert json.loads(run(prompt, "balance", SHOP, "7001").output)["balance"] == 100
