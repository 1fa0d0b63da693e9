"""Shopify Flow: a trigger extension per event type, declared where Shopify CLI looks, fired by flowTriggerReceive."""

from __future__ import annotations

import json
import re
import tomllib

import responses

from plugin.db import transaction
from plugin.models import EventDelivery
from plugin.platforms.shopify import flow
from plugin.programme.events import Customer
from plugin.services import event_delivery, event_endpoints, outbox
from plugin.services.accrual import enrol
from tests.test_shopify_app_files import extension_folders

GRAPHQL = "https://loyal-shop.myshopify.com/admin/api/2026-10/graphql.json"


def test_every_event_type_has_a_current_trigger_extension_shopify_cli_finds():
    folders = {f.name: f for f in extension_folders() if "flow_triggers" in f.parts}
    assert set(folders) == {flow.handle(t) for t in outbox.EVENT_TYPES}
    for event_type in outbox.EVENT_TYPES:
        text = (folders[flow.handle(event_type)] / "shopify.extension.toml").read_text()
        assert text == flow.extension_toml(event_type), "run: flask --app plugin loyalty events flow-extensions"
        (extension,) = tomllib.loads(text)["extensions"]
        assert extension["type"] == "flow_trigger"
        assert re.fullmatch(r"[a-z0-9-]{1,30}", extension["handle"])  # Shopify's rule for a trigger's handle
        assert tomllib.loads(text)["settings"]["fields"][0] == {"type": "customer_reference"}


def test_a_flow_payload_carries_the_customer_and_the_declared_fields():
    envelope = {
        "id": "e1", "type": "points.expiring", "customer_id": 7001,
        "data": {"points": 120, "expires_on": "2027-01-31", "days_before": 7, "balance": 300},
    }  # fmt: skip
    assert flow.payload(envelope) == {
        "customer_id": 7001, "Points": 120, "Expires on": "2027-01-31", "Days before": 7, "Balance": 300,
        "Event id": "e1", "Event type": "points.expiring",
    }  # fmt: skip


def member(settings, shop):
    with transaction(settings.database_url) as session:
        return enrol(session, shop, Customer(7001, "c7001@example.com"))


@responses.activate
def test_events_fire_the_shops_flow_triggers_and_a_refusal_is_retried(settings, shop_with_token):
    member_id = member(settings, shop_with_token)
    with transaction(settings.database_url) as session:
        event_endpoints.enable_flow(session, shop_with_token, settings.encryption_keys)
        outbox.record(
            session, shop_with_token, "points.expiring", dedupe_key="r1", member_id=member_id,
            data={"points": 120, "expires_on": "2027-01-31", "days_before": 7, "balance": 300},
        )  # fmt: skip
    refused = {"data": {"flowTriggerReceive": {"userErrors": [{"field": ["handle"], "message": "unknown"}]}}}
    responses.post(GRAPHQL, json=refused)
    assert event_delivery.deliver(settings) == {"retry": 1}
    responses.replace(responses.POST, GRAPHQL, json={"data": {"flowTriggerReceive": {"userErrors": []}}})
    with transaction(settings.database_url) as session:
        session.query(EventDelivery).update({"next_attempt_at": EventDelivery.created_at})
    assert event_delivery.deliver(settings) == {"delivered": 1}
    sent = json.loads(responses.calls[-1].request.body)
    assert sent["variables"]["handle"] == "loyalty-points-expiring"
    assert sent["variables"]["payload"]["customer_id"] == 7001 and sent["variables"]["payload"]["Points"] == 120
    assert "flowTriggerReceive(handle: $handle, payload: $payload)" in sent["query"]


def test_enabling_flow_twice_keeps_one_flow_endpoint(settings, shop):
    with transaction(settings.database_url) as session:
        first = event_endpoints.enable_flow(session, shop, settings.encryption_keys).id
        event_endpoints.disable(session, event_endpoints.get(session, shop, first), "merchant")
    with transaction(settings.database_url) as session:
        again = event_endpoints.enable_flow(session, shop, settings.encryption_keys)
        assert again.id == first and again.disabled_at is None
        assert [e.kind for e in event_endpoints.endpoints(session, shop)] == ["flow"]


# What Shopify CLI accepts in a trigger's [[settings.fields]] (Shopify/cli, packages/app/src/cli/services/flow/
# constants.ts and models/extensions/specifications/flow_trigger.ts): these types, keys of letters and spaces.
TRIGGER_FIELD_TYPES = {"boolean", "email", "single_line_text_field", "url", "number_decimal"}


def test_every_declared_field_is_a_type_and_key_a_flow_trigger_accepts():
    for event_type in outbox.EVENT_TYPES:
        for key, field_type, _source in flow.fields(event_type):
            assert field_type in TRIGGER_FIELD_TYPES, (event_type, key, field_type)
            assert re.fullmatch(r"[A-Za-z ]+", key), (event_type, key)


def test_the_payload_sends_every_declared_field_under_its_key_with_its_type():
    samples = {
        "tier.changed": {"from_tier": None, "to_tier": "gold", "to_tier_name": "Gold", "direction": "up"},
        "referral.completed": {"points": 500, "matched_by": "code"},
        "reward.issued": {"points": 500, "code": "LOYAL-1", "reason": None},
    }
    for event_type, data in samples.items():
        sent = flow.payload({"id": "e1", "type": event_type, "customer_id": 7001, "data": data})
        declared = flow.fields(event_type)
        assert set(sent) == {"customer_id"} | {key for key, _t, _s in declared}
        for key, field_type, _source in declared:
            expected = str if field_type == "single_line_text_field" else int
            assert isinstance(sent[key], expected), (event_type, key, sent[key])
    assert (
        flow.payload({"id": "e1", "type": "tier.changed", "customer_id": 7001, "data": samples["tier.changed"]})[
            "From tier"
        ]
        == ""
    )


@responses.activate
def test_an_event_of_an_erased_member_is_settled_without_calling_flow(settings, shop_with_token):
    member_id = member(settings, shop_with_token)
    with transaction(settings.database_url) as session:
        event_endpoints.enable_flow(session, shop_with_token, settings.encryption_keys)
        from plugin.models import Member

        # As privacy.redact_customer leaves it: a negative customer id that names nobody in the shop.
        session.query(Member).filter_by(id=member_id).update({"customer_id": -member_id})
        outbox.record(
            session, shop_with_token, "points.earned", dedupe_key="e1", member_id=member_id,
            data={"points": 10, "balance": 10},
        )  # fmt: skip
    assert event_delivery.deliver(settings) == {"delivered": 1}
    assert len(responses.calls) == 0
    with transaction(settings.database_url) as session:
        (row,) = session.query(EventDelivery).all()
        assert row.status == "delivered" and "names no customer" in row.last_error
