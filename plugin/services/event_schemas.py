"""The JSON Schema of every outgoing event; `loyalty events schemas` writes them to docs/events/."""

from __future__ import annotations

from typing import Any

from plugin.services.outbox import EVENT_TYPES

_INT = {"type": "integer"}
_TEXT_OR_NULL = {"type": ["string", "null"]}
_INT_OR_NULL = {"type": ["integer", "null"]}

_POSTING = {
    "type": "object",
    # Postings announced by announcements.py carry every field; other features' grants (milestones, tiers) at
    # least the points and what caused them.
    "required": ["points"],
    "properties": {
        "points": {**_INT, "description": "signed: positive adds to the balance"},
        "balance": {**_INT, "description": "the member's balance after this change"},
        "kind": {"type": "string", "description": "the ledger posting's kind (earn, reverse, adjust, forgive, expire)"},
        "reason": {**_TEXT_OR_NULL, "description": "the posting's explanation, as the member's history shows it"},
        "order_id": {**_INT_OR_NULL, "description": "the shop's order id, when an order caused it"},
        "order_name": _TEXT_OR_NULL,
        "posting_id": _INT,
        "available_at": {"type": "string", "format": "date-time", "description": "earned points: spendable from"},
        "actor": {"type": "string", "description": "support adjustments: who made it"},
        "source_type": {"type": "string", "description": "what caused it (threshold, tier, referral ...)"},
        "source_id": {"type": "string"},
        "expires_on": {"type": "string", "format": "date", "description": "points.expired: the lot's expiry day"},
        "lot_posting_id": {**_INT, "description": "points.expired: the lot (earning posting) that expired"},
    },
    "additionalProperties": True,
}

_REWARD = {
    "type": "object",
    "required": ["redemption_id", "reward_id", "reward", "points", "code", "reason"],
    "properties": {
        "redemption_id": _INT,
        "reward_id": _TEXT_OR_NULL,
        "reward": {"type": "object", "description": "the catalogue entry as it was when redeemed"},
        "points": {**_INT, "description": "the points the reward cost"},
        "code": {**_TEXT_OR_NULL, "description": "reward.issued: the discount code; null on reward.failed"},
        "reason": {**_TEXT_OR_NULL, "description": "reward.failed: why the code could not be created"},
    },
    "additionalProperties": True,
}

_EXPIRING = {
    "type": "object",
    "required": ["points", "expires_on", "days_before", "balance"],
    "properties": {
        "points": {**_INT, "description": "the points that expire on expires_on unless spent first"},
        "expires_on": {"type": "string", "format": "date", "description": "the shop's local date"},
        "days_before": {**_INT, "description": "which reminder this is (the shop's reminder_days)"},
        "balance": _INT,
        "policy": {"type": "string", "enum": ["per_lot", "inactivity"]},
    },
    "additionalProperties": True,
}

_OTHERS = {
    "type": "object",
    "description": "recorded by the tiers (#16) and referrals (#17) features; see their docs for the fields",
    "additionalProperties": True,
}

DATA: dict[str, dict[str, Any]] = {
    "points.earned": _POSTING,
    "points.reversed": _POSTING,
    "points.adjusted": _POSTING,
    "points.expired": _POSTING,
    "points.expiring": _EXPIRING,
    "reward.issued": _REWARD,
    "reward.failed": _REWARD,
    "tier.changed": _OTHERS,
    "referral.completed": _OTHERS,
}


def schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type's envelope, as receivers get it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://loyalty.example/events/{event_type}.schema.json",
        "title": event_type,
        "type": "object",
        "required": ["id", "type", "shop", "sequence", "customer_id", "occurred_at", "data"],
        "properties": {
            "id": {"type": "string", "format": "uuid", "description": "the event id: dedupe by it"},
            "type": {"const": event_type},
            "shop": {"type": "string", "description": "the shop's myshopify domain"},
            "sequence": {**_INT, "description": "increases with each event of the shop: reorder a member's by it"},
            "customer_id": {**_INT_OR_NULL, "description": "the shop's customer id of the member"},
            "occurred_at": {"type": "string", "format": "date-time"},
            "data": DATA[event_type],
        },
        "additionalProperties": False,
    }


def all_schemas() -> dict[str, dict[str, Any]]:
    assert set(DATA) == EVENT_TYPES, "every event type has a schema"
    return {event_type: schema(event_type) for event_type in sorted(EVENT_TYPES)}
