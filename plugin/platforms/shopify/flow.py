"""Shopify Flow triggers: one trigger extension per event type, fired through the Admin API's flowTriggerReceive.

The extensions live in plugin/platforms/shopify/flow_triggers/<handle>/shopify.extension.toml, written by
`loyalty events flow-extensions` from FIELDS below (a test keeps them current), and shopify.app.toml lists them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plugin.platforms.shopify.admin import AdminAPIError, AdminClient

EXTENSIONS = Path(__file__).resolve().parent / "flow_triggers"
FLOW_TRIGGER_RECEIVE = """mutation LoyaltyFlowTrigger($handle: String, $payload: JSON) {
  flowTriggerReceive(handle: $handle, payload: $payload) {
    userErrors { field message }
  }
}"""

# Each event type's trigger: its merchant-facing name (Flow's "object + past tense verb", sentence case) and the
# fields Flow offers after the customer reference: (key as Flow shows it, field type, the event's data key).
# Checked against Shopify CLI's own validation (docs/events.md, "Shopify Flow"): a trigger field is one of boolean,
# email, single_line_text_field, url, number_decimal (no number_integer, no date: points are number_decimal, dates
# text); a key has only letters and spaces and is the payload's key as written; customer_reference is sent as
# "customer_id".
TRIGGERS: dict[str, tuple[str, str]] = {
    "points.earned": ("Loyalty points earned", "Points were added to a member's balance for an order."),
    "points.reversed": ("Loyalty points reversed", "A refund or cancellation took an order's points back."),
    "points.adjusted": ("Loyalty points adjusted", "Support staff added or took points."),
    "points.expiring": ("Loyalty points expiring", "Some of a member's points expire soon (a reminder)."),
    "points.expired": ("Loyalty points expired", "Some of a member's points expired."),
    "reward.issued": ("Loyalty reward issued", "A member's reward code was created in the shop."),
    "reward.failed": ("Loyalty reward failed", "A reward code could not be created; the points came back."),
    "tier.changed": ("Loyalty tier changed", "A member moved to another tier."),
    "referral.completed": ("Loyalty referral completed", "A referred friend's order completed a referral."),
}
FIELDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "points.expiring": (
        ("Points", "number_decimal", "points"),
        ("Expires on", "single_line_text_field", "expires_on"),
        ("Days before", "number_decimal", "days_before"),
        ("Balance", "number_decimal", "balance"),
    ),
    "reward.issued": (("Points", "number_decimal", "points"), ("Code", "single_line_text_field", "code")),
    "reward.failed": (("Points", "number_decimal", "points"), ("Reason", "single_line_text_field", "reason")),
    # Tier moves and referrals carry no balance: their own facts instead of fields that would always be missing.
    "tier.changed": (
        ("From tier", "single_line_text_field", "from_tier"),
        ("To tier", "single_line_text_field", "to_tier"),
        ("To tier name", "single_line_text_field", "to_tier_name"),
        ("Direction", "single_line_text_field", "direction"),
    ),
    "referral.completed": (
        ("Points", "number_decimal", "points"),
        ("Matched by", "single_line_text_field", "matched_by"),
    ),
}
TEXT = "single_line_text_field"
DEFAULT_FIELDS = (("Points", "number_decimal", "points"), ("Balance", "number_decimal", "balance"))
COMMON_FIELDS = (("Event id", "single_line_text_field", "id"), ("Event type", "single_line_text_field", "type"))


def handle(event_type: str) -> str:
    """The trigger extension's handle: "loyalty-points-expiring" (at most 30 characters, letters and hyphens)."""
    return "loyalty-" + event_type.replace(".", "-").replace("_", "-")


def fields(event_type: str) -> tuple[tuple[str, str, str], ...]:
    return FIELDS.get(event_type, DEFAULT_FIELDS) + COMMON_FIELDS


def payload(envelope: dict[str, Any]) -> dict[str, Any]:
    """The trigger's payload: the customer reference, then every declared field from the event.

    A text field the event leaves empty (a first tier has no "from") is sent as "", so each declared field is
    there; a number field is left out rather than sent as a made-up 0.
    """
    found: dict[str, Any] = {"customer_id": envelope["customer_id"]}
    for key, field_type, source in fields(envelope["type"]):
        value = envelope.get(source) if source in ("id", "type") else (envelope.get("data") or {}).get(source)
        if value is None and field_type == TEXT:
            value = ""
        if value is not None:
            found[key] = value if field_type != TEXT else str(value)
    return found


def extension_toml(event_type: str) -> str:
    name, description = TRIGGERS[event_type]
    lines = [
        "# Written by `loyalty events flow-extensions`; tests/test_flow_triggers.py keeps it current.",
        "[[extensions]]",
        f'name = "{name}"',
        'type = "flow_trigger"',
        f'handle = "{handle(event_type)}"',
        f'description = "{description}"',
        "",
        "[settings]",
        "",
        "[[settings.fields]]",
        'type = "customer_reference"',
    ]
    for key, field_type, _source in fields(event_type):
        lines += ["", "[[settings.fields]]", f'type = "{field_type}"', f'key = "{key}"']
    return "\n".join(lines) + "\n"


def fire(client: AdminClient, envelope: dict[str, Any]) -> None:
    """Start the shop's workflows for this event; AdminAPIError when Flow refuses it (userErrors)."""
    data = client.graphql(FLOW_TRIGGER_RECEIVE, {"handle": handle(envelope["type"]), "payload": payload(envelope)})
    errors = (data.get("flowTriggerReceive") or {}).get("userErrors") or []
    if errors:
        raise AdminAPIError(f"flowTriggerReceive refused: {errors}"[:500])
