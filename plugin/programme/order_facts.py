"""A paid order's facts as stored on the order row: enough to make its lot later or replay it in a preview."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from plugin.programme import referrals
from plugin.programme.events import OrderLine, OrderSnapshot
from plugin.programme.rules.core import MemberTier


def to_json(
    snapshot: OrderSnapshot,
    paid_at: datetime,
    rules_version: int,
    member_tags: frozenset[str],
    member_tier: MemberTier | None = None,
    tiers_version: int | None = None,
) -> dict[str, Any]:
    tier = {} if member_tier is None else {"member_tier": _tier_json(member_tier)}
    if tiers_version is not None:  # the tier programme the member's tier was worked out under (even no tier)
        tier["tiers_version"] = tiers_version
    return {
        **tier,
        "paid_at": paid_at.isoformat(),
        "rules_version": rules_version,
        "member_tags": sorted(member_tags),
        "name": snapshot.name,
        "currency": snapshot.currency,
        "test": snapshot.test,
        "taxes_included": snapshot.taxes_included,
        "shipping": str(snapshot.shipping),
        "shipping_tax": str(snapshot.shipping_tax),
        "tip": str(snapshot.tip),
        # (line id, quantity, gross, discount, tax, gift card, product id, variant id): compact, as every paid
        # order stores one.
        "lines": [
            [
                ln.line_id,
                ln.quantity,
                str(ln.gross),
                str(ln.discount),
                str(ln.tax),
                ln.gift_card,
                ln.product_id,
                ln.variant_id,
            ]
            for ln in snapshot.lines
        ],
        "processed_at": snapshot.processed_at.isoformat() if snapshot.processed_at else None,
        "discount_codes": list(snapshot.discount_codes),
        "contact": contact_keys(snapshot),
    }


def contact_keys(snapshot: OrderSnapshot) -> dict[str, str | None]:
    """What referral guards compare (hashed, never readable) and the referral cart attribute, if any."""
    address = snapshot.shipping_address
    email = snapshot.email or (snapshot.customer.email if snapshot.customer else None)
    phone = snapshot.phone or (address.phone if address else None)
    token = next((value for name, value in snapshot.attributes if name == referrals.CART_ATTRIBUTE), None)
    return {
        "email": referrals.email_key(email),
        "phone": referrals.phone_key(phone),
        "address": referrals.address_key(address.address1, address.zip, address.country_code) if address else None,
        "referral": token,
    }


def snapshot_from_json(order_id: int, data: dict[str, Any]) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        name=data.get("name"),
        customer=None,
        email=None,
        currency=data["currency"],
        test=bool(data["test"]),
        taxes_included=bool(data["taxes_included"]),
        lines=tuple(
            OrderLine(int(a), int(b), Decimal(c), Decimal(d), Decimal(e), bool(f), g, h)
            for a, b, c, d, e, f, g, h in data["lines"]
        ),
        shipping=Decimal(data["shipping"]),
        shipping_tax=Decimal(data["shipping_tax"]),
        tip=Decimal(data["tip"]),
    )


def paid_at(data: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(data["paid_at"])


def member_tags(data: dict[str, Any]) -> frozenset[str]:
    return frozenset(data.get("member_tags", ()))


def member_tier(data: dict[str, Any]) -> MemberTier | None:
    """The member's tier when the order was paid, as its facts recorded it (None: no tier, or before tiers)."""
    tier = data.get("member_tier")
    if not tier:
        return None
    return MemberTier(tier["id"], tier["name"], Decimal(tier["multiplier"]), int(tier["version"]))


def with_member_tier(data: dict[str, Any], tier: MemberTier | None) -> dict[str, Any]:
    """The facts with the tier corrected (services/tier_corrections.py), counting the corrections: the order's
    later postings are keyed by that count, since a correction can bring its held points back to an earlier value."""
    out = {k: v for k, v in data.items() if k != "member_tier"}
    if tier is not None:
        out["member_tier"] = _tier_json(tier)
    out["tier_corrections"] = tier_corrections(data) + 1
    return out


def tier_corrections(data: dict[str, Any] | None) -> int:
    return int((data or {}).get("tier_corrections", 0))


def _tier_json(tier: MemberTier) -> dict[str, Any]:
    return {"id": tier.tier_id, "name": tier.name, "multiplier": str(tier.multiplier), "version": tier.version}
