"""The support desk's operations, one function each, owning its transaction: every door calls these.

A door (the support API, the embedded admin, the CLI) authenticates, loads the request with the operation's schema
(plugin/services/schemas.py), calls one function here and dumps the answer with the same module's schemas. So the
same input gets the same answer, or the same refusal, from every door.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from plugin import inbox
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Delivery, Member, Redemption, Shop, SupportAction, SupportKey
from plugin.services import privacy, redemption, support
from plugin.services.errors import IdempotencyKeyInFlight, NotFound, ServiceError
from plugin.services.schemas import (
    AdjustmentRequest,
    CancelRewardRequest,
    NewKeyRequest,
    ReversalRequest,
    UndoRequest,
    load,
)

T = TypeVar("T")


def lookup_member(settings: Settings, shop_id: int, *, email: str | None = None, customer_id: int | None = None):
    """A member's card by customer id, or by email (exact, any case): dump with MemberCardSchema."""
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        member = support.find_member(session, shop, email=email, customer_id=customer_id)
        return support.member_card(session, shop, member)


def member_history(settings: Settings, shop_id: int, customer_id: int) -> list[dict[str, Any]]:
    """Every posting of the member, explained, newest first: dump each line with HistoryLineSchema."""
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        return support.history(session, shop, support.find_member(session, shop, customer_id=customer_id))


def list_actions(settings: Settings, shop_id: int, customer_id: int | None = None) -> list[SupportAction]:
    """The audit trail, newest first, for the shop or one of its members."""
    with transaction(settings.database_url) as session:
        query = select(SupportAction).where(SupportAction.shop_id == shop_id).order_by(SupportAction.id.desc())
        if customer_id is not None:
            query = query.join(Member, Member.id == SupportAction.member_id).where(
                Member.shop_id == shop_id, Member.customer_id == customer_id
            )
        return list(session.scalars(query.limit(200)))


def adjust(
    settings: Settings, shop_id: int, customer_id: int, body: dict[str, Any], actor: str, key: str | None = None
) -> SupportAction:
    """Add or take away a member's points by hand (AdjustmentRequest)."""
    request = load(AdjustmentRequest(), body)
    return _once(
        settings,
        shop_id,
        key,
        support.fingerprint("adjust", customer_id, request),
        lambda session, shop: support.adjust(session, shop, customer_id, **request, actor=actor, key=key),
    )


def reverse_order(
    settings: Settings, shop_id: int, order_id: int, body: dict[str, Any], actor: str, key: str | None = None
) -> SupportAction:
    """Take back an order's points, all it holds or some (ReversalRequest)."""
    request = load(ReversalRequest(), body)
    return _once(
        settings,
        shop_id,
        key,
        support.fingerprint("reverse", order_id, request),
        lambda session, shop: support.reverse_order(session, shop, order_id, **request, actor=actor, key=key),
    )


def undo(
    settings: Settings, shop_id: int, action_id: int, body: dict[str, Any], actor: str, key: str | None = None
) -> SupportAction:
    """Undo a support action with a further audited one (UndoRequest)."""
    request = load(UndoRequest(), body)
    return _once(
        settings,
        shop_id,
        key,
        support.fingerprint("undo", action_id, request),
        lambda session, shop: support.undo(session, shop, action_id, **request, actor=actor, key=key),
    )


def _once(
    settings: Settings, shop_id: int, key: str | None, asked: str, work: Callable[[Session, Shop], T]
) -> T | SupportAction:
    """Run a keyed write; if a concurrent request with the same key committed first, answer what it made."""
    try:
        with transaction(settings.database_url) as session:
            return work(session, session.get(Shop, shop_id))
    except IntegrityError:
        if not key:
            raise
    # The unique (shop, key) index refused our insert: the other request has committed (PostgreSQL waits for it).
    with transaction(settings.database_url) as session:
        earlier = support.replayed(session, session.get(Shop, shop_id), key, asked)
    if earlier is None:
        raise IdempotencyKeyInFlight(
            "a request with this Idempotency-Key is still in flight; retry it in a moment",
            {"Idempotency-Key": ["in use by a request that has not finished"]},
        )
    return earlier


def cancel_reward(settings: Settings, shop_id: int, redemption_id: int, body: dict[str, Any], actor: str) -> Redemption:
    """Cancel an unused reward: its code is deleted in the shop and the points come back (CancelRewardRequest)."""
    request = load(CancelRewardRequest(), body)
    with transaction(settings.database_url) as session:
        found = session.get(Redemption, (shop_id, redemption_id))
        if found is None:
            raise NotFound(f"no redemption {redemption_id}")
    reason = f"{request['reason_code']}: {request['note'] or 'cancelled by support'}"
    return redemption.cancel(settings, redemption_id, reason, actor, shop_id=shop_id)


def list_parked(settings: Settings, shop_id: int) -> list[Delivery]:
    with transaction(settings.database_url) as session:
        return support.parked(session, session.get(Shop, shop_id))


def show_parked(settings: Settings, shop_id: int, delivery_id: int) -> Delivery:
    with transaction(settings.database_url) as session:
        return support.parked_delivery(session, session.get(Shop, shop_id), delivery_id)


def replay_parked(settings: Settings, shop_id: int, delivery_id: int) -> dict[str, Any]:
    """Process one of the shop's parked deliveries again, now; answers its new status (ReplaySchema)."""
    with transaction(settings.database_url) as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None or delivery.shop_domain != session.get(Shop, shop_id).domain:
            raise NotFound(f"no parked delivery {delivery_id}")
    try:
        status = inbox.replay(settings.database_url, delivery_id, privacy.uninstall_check(settings))
    except ValueError as error:
        raise ServiceError(str(error)) from None
    return {"id": delivery_id, "status": status}


def list_keys(settings: Settings, shop_id: int) -> list[SupportKey]:
    with transaction(settings.database_url) as session:
        return list(session.scalars(select(SupportKey).where(SupportKey.shop_id == shop_id).order_by(SupportKey.id)))


def create_key(settings: Settings, shop_id: int, body: dict[str, Any]) -> tuple[SupportKey, str]:
    """A new support API key (NewKeyRequest); its plaintext is answered once (NewKeySchema) and never stored."""
    request = load(NewKeyRequest(), body)
    with transaction(settings.database_url) as session:
        return support.create_key(session, session.get(Shop, shop_id), request["name"], request["scope"])


def revoke_key(settings: Settings, shop_id: int, key_id: int) -> SupportKey:
    with transaction(settings.database_url) as session:
        return support.revoke_key(session, session.get(Shop, shop_id), key_id)
