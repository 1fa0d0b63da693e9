"""The shop's lifecycle and its customers' privacy: uninstall, data export, customer redaction, shop erasure.

Each privacy request is recorded in `privacy_requests` with what was done, and that record outlives the data.
Redaction keeps the ledger's amounts (so every account still adds up) but unlinks them from the person.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from plugin import ledger, platforms
from plugin.config import Settings
from plugin.models import (
    Delivery,
    LedgerErasure,
    Member,
    Order,
    OrderProductWait,
    Posting,
    PrivacyRequest,
    Product,
    Redemption,
    Refund,
    RuleSetVersion,
    Shop,
    utcnow,
)
from plugin.programme import events
from plugin.services.imports import pending as imported_balances
from plugin.services.milestones import personal as milestone_data

log = logging.getLogger(__name__)
REDACTED_BODY = b'{"redacted": true}'


def apply(
    session: Session, shop: Shop | None, shop_domain: str, topic: str, event: events.Lifecycle, delivery_id: int
) -> dict[str, Any]:
    """Carry out an uninstall or a privacy request, in the caller's transaction; returns what was done."""
    customer_id = getattr(event, "customer_id", None)
    if shop is None:
        outcome: dict[str, Any] = {"note": "no data held for this shop"}
    elif isinstance(event, events.AppUninstalled):
        outcome = uninstall(session, shop)
    elif isinstance(event, events.CustomerDataRequested):
        outcome = {"request_id": event.request_id, "export": export_customer(session, shop, event.customer_id)}
    elif isinstance(event, events.CustomerRedactRequested):
        outcome = redact_customer(session, shop, event.customer_id, event.orders_to_redact)
    else:
        outcome = erase_shop(session, shop, keep_delivery_id=delivery_id)
    if not isinstance(event, events.AppUninstalled):
        session.add(
            PrivacyRequest(
                shop_domain=shop_domain,
                topic=topic,
                customer_id=customer_id,
                received_at=utcnow(),
                completed_at=utcnow(),
                outcome=outcome,
            )
        )
    log.info("%s for %s: %s", topic, shop_domain, {k: v for k, v in outcome.items() if k != "export"})
    return outcome


def uninstall_refusal(settings: Settings, shop: Shop) -> str | None:
    """Why not to act on an app/uninstalled now, or None: the shop's platform must confirm the app is gone."""
    if shop.access_token is None:
        return None  # nothing to ask with, and nothing a replay could delete
    return platforms.for_shop(shop).uninstall_refusal(settings, shop)


def uninstall_check(settings: Settings) -> Callable[[Session, Shop], str | None]:
    """uninstall_refusal as the inbox asks it: the drain and every replay (support, CLI) make the same check."""
    return lambda session, shop: uninstall_refusal(settings, shop)


def uninstall(session: Session, shop: Shop) -> dict[str, Any]:
    """The shop stops: its tokens are deleted, later deliveries are parked; its history stays for a re-install."""
    shop.active = False
    shop.uninstalled_at = utcnow()
    shop.access_token = shop.refresh_token = None
    shop.token_expires_at = shop.refresh_expires_at = None
    return {"uninstalled": True}


def export_customer(session: Session, shop: Shop, customer_id: int) -> dict[str, Any]:
    """Everything we hold about one shopper, for the merchant to hand over."""
    member = session.execute(
        select(Member).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
    ).scalar_one_or_none()
    if member is None:
        return {"customer_id": customer_id, "member": False}
    postings = session.scalars(
        select(Posting).where(Posting.shop_id == shop.id, Posting.member_id == member.id).order_by(Posting.id)
    )
    redemptions = session.scalars(
        select(Redemption).where(Redemption.shop_id == shop.id, Redemption.member_id == member.id)
    )
    orders = session.scalars(select(Order).where(Order.shop_id == shop.id, Order.member_id == member.id))
    return {
        "customer_id": customer_id,
        "member": True,
        "email": member.email,
        "first_name": member.first_name,
        "last_name": member.last_name,
        "tags": member.tags or [],
        "enrolled_at": member.enrolled_at.isoformat(),
        **ledger.balance_of(session, shop.id, member).to_json(),
        "postings": [
            {
                "at": p.created_at.isoformat(),
                "kind": p.kind,
                "points": p.points,
                "source": f"{p.source_type}:{p.source_id}",
                "note": p.note,
            }
            for p in postings
        ],
        "redemptions": [
            {
                "id": r.id,
                "status": r.status,
                "code": r.code,
                "points": r.points,
                "reward": r.reward["title"],
                "created_at": r.created_at.isoformat(),
            }
            for r in redemptions
        ],
        "orders": [
            {
                "order_id": o.order_id,
                "name": o.name,
                "points_held": o.points_held,
                "paid_at": o.paid_at.isoformat() if o.paid_at else None,
            }
            for o in orders
        ],
        "milestones": milestone_data.export(session, shop.id, member.id),
        # The raw webhooks we keep about them hold more (addresses, phone, IP): they are part of what we hold.
        "stored_webhooks": [
            {"topic": d.topic, "received_at": d.received_at.isoformat(), "payload": _parsed(d.body)}
            for d in session.scalars(
                select(Delivery)
                .where(Delivery.shop_domain == shop.domain, Delivery.customer_id == customer_id)
                .order_by(Delivery.id)
            )
        ],
    }


def _parsed(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace")


def redact_customer(session: Session, shop: Shop, customer_id: int, orders: Iterable[int] = ()) -> dict[str, Any]:
    """Remove a shopper's personal data; their postings keep their amounts under an anonymous member.

    `orders` (Shopify's orders_to_redact) also reaches their guest checkouts, which name no customer.
    """
    member = session.execute(
        select(Member).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
    ).scalar_one_or_none()
    if member is not None:
        imported_balances.forget_shopper(session, shop.id, customer_id, member.id, member.email)
        member.email = member.first_name = member.last_name = None
        member.tags = None
        member.customer_id = -member.id  # no longer the shop's customer id; unique within the shop
        milestone_data.redact(session, shop.id, member.id)
    else:
        imported_balances.forget_shopper(session, shop.id, customer_id, None, None)
    scrubbed = session.execute(
        update(Delivery)
        .where(Delivery.shop_domain == shop.domain, Delivery.customer_id == customer_id)
        .values(body=REDACTED_BODY, customer_id=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    scrubbed += _scrub_unlinked_deliveries(session, shop.domain, customer_id, set(orders))
    exports = _forget_exports(session, shop.domain, customer_id)
    return {"member_anonymised": member is not None, "deliveries_scrubbed": scrubbed, "exports_erased": exports}


def _scrub_unlinked_deliveries(session: Session, shop_domain: str, customer_id: int, orders: set[int]) -> int:
    """Payloads that do not know their customer (parked, waiting, guest orders, refunds): look inside them."""
    scrubbed = 0
    rows = session.execute(
        select(Delivery.id, Delivery.topic, Delivery.body).where(
            Delivery.shop_domain == shop_domain,
            Delivery.customer_id.is_(None),
            Delivery.body != REDACTED_BODY,
            Delivery.topic.like("orders/%") | Delivery.topic.like("customers/%") | Delivery.topic.like("refunds/%"),
        )
    )
    for delivery_id, topic, body in rows:
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            continue
        if not isinstance(payload, dict):
            continue
        about = payload.get("customer") if isinstance(payload.get("customer"), dict) else payload  # customers/*
        order_id = payload.get("order_id") if topic.startswith("refunds/") else payload.get("id")
        named_order = not topic.startswith("customers/") and order_id in orders
        if about.get("id") == customer_id or named_order:
            session.execute(update(Delivery).where(Delivery.id == delivery_id).values(body=REDACTED_BODY))
            scrubbed += 1
    return scrubbed


def shop_was_erased(session: Session, shop_domain: str) -> bool:
    """Whether this shop's data was erased (shop/redact): later payloads for it are not kept."""
    requests = session.scalars(
        select(PrivacyRequest).where(PrivacyRequest.shop_domain == shop_domain, PrivacyRequest.topic == "shop/redact")
    )
    return any(r.outcome.get("erased") for r in requests)


def _forget_exports(session: Session, shop_domain: str, customer_id: int | None = None) -> int:
    """Data-request exports hold personal data too: keep the record of the request, drop the export."""
    query = select(PrivacyRequest).where(
        PrivacyRequest.shop_domain == shop_domain, PrivacyRequest.topic == "customers/data_request"
    )
    if customer_id is not None:
        query = query.where(PrivacyRequest.customer_id == customer_id)
    erased = 0
    for request in session.scalars(query):
        if "export" in request.outcome:
            request.outcome = {**{k: v for k, v in request.outcome.items() if k != "export"}, "export_erased": True}
            erased += 1
    return erased


def erase_shop(session: Session, shop: Shop, keep_delivery_id: int) -> dict[str, Any]:
    """Delete everything we hold for an uninstalled shop (the privacy record and this request stay)."""
    if shop.active:
        return {"erased": False, "note": "the shop installed the app again; nothing erased"}
    counts: dict[str, Any] = {"erased": True}
    session.add(LedgerErasure(shop_id=shop.id))  # the permit the postings' delete trigger looks for
    session.flush()
    for name, table in (
        ("postings", Posting),
        ("redemptions", Redemption),
        ("refunds", Refund),
        ("orders", Order),
        ("members", Member),
        ("order_product_waits", OrderProductWait),
        ("products", Product),
        ("rule_sets", RuleSetVersion),
    ):
        counts[name] = session.execute(
            delete(table).where(table.shop_id == shop.id).execution_options(synchronize_session=False)
        ).rowcount
    counts["deliveries"] = session.execute(
        delete(Delivery)
        .where(Delivery.shop_domain == shop.domain, Delivery.id != keep_delivery_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    counts["exports_erased"] = _forget_exports(session, shop.domain)
    session.execute(delete(LedgerErasure).where(LedgerErasure.shop_id == shop.id))
    session.delete(shop)
    session.flush()
    return counts
