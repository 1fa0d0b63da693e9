"""Support desk: API keys, member look-up with an explained history, and audited, undoable point changes."""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from plugin import inbox, ledger
from plugin.models import Delivery, Member, Order, Posting, Redemption, Shop, SupportAction, SupportKey, utcnow
from plugin.programme import explanations
from plugin.programme.import_formats import neutralise
from plugin.services import accrual, announcements
from plugin.services.errors import IdempotencyKeyReused, Invalid, NotFound
from plugin.services.errors import ServiceError as SupportError
from plugin.services.schemas import (
    HISTORY_CSV_COLUMNS,
    SCOPES,
    AdjustmentRequest,
    IdempotencyKeyHeader,
    ReversalRequest,
    UndoRequest,
    load,
)


@dataclass(frozen=True)
class KeyHolder:
    shop_id: int
    name: str
    scope: str


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_key(session: Session, shop: Shop, name: str, scope: str) -> tuple[SupportKey, str]:
    """A new key; the plaintext is returned once and never stored."""
    if scope not in SCOPES:
        raise Invalid(f"scope must be one of {SCOPES}")
    prefix = secrets.token_hex(6)
    raw = f"lsk_{prefix}_{secrets.token_urlsafe(24)}"
    key = SupportKey(shop_id=shop.id, name=name, prefix=prefix, key_hash=_digest(raw), scope=scope, created_at=utcnow())
    session.add(key)
    session.flush()
    return key, raw


def authenticate(session: Session, raw: str) -> KeyHolder | None:
    parts = raw.split("_") if raw else []
    if len(parts) < 3 or parts[0] != "lsk":
        return None
    key = session.execute(select(SupportKey).where(SupportKey.prefix == parts[1])).scalar_one_or_none()
    if key is None or key.revoked_at is not None or not hmac.compare_digest(key.key_hash, _digest(raw)):
        return None
    return KeyHolder(key.shop_id, key.name, key.scope)


def revoke_key(session: Session, shop: Shop, key_id: int) -> SupportKey:
    key = session.get(SupportKey, key_id)
    if key is None or key.shop_id != shop.id:
        raise NotFound(f"no key {key_id}")
    key.revoked_at = key.revoked_at or utcnow()
    return key


def find_member(session: Session, shop: Shop, *, email: str | None = None, customer_id: int | None = None) -> Member:
    query = select(Member).where(Member.shop_id == shop.id)
    if customer_id is not None:
        query = query.where(Member.customer_id == customer_id)
    elif email:
        query = query.where(Member.email == email.strip().lower()).order_by(Member.id).limit(1)
    else:
        raise Invalid("give an email or a customer id")
    member = session.execute(query).scalars().first()
    if member is None and email:
        # Emails are stored as the shop sent them: compare in one case. Equality, never LIKE, so "%" and "_" in
        # what was typed match only themselves. No LIMIT: the partial lower(email) index has no statistics of its
        # own, so with one the planner walks the shop's members in id order instead (decision 0071).
        member = (
            session.execute(
                select(Member)
                .where(Member.shop_id == shop.id, func.lower(Member.email) == email.strip().lower())
                .order_by(Member.id)
            )
            .scalars()
            .first()
        )
    if member is None:
        raise NotFound("no such member")
    return member


def member_card(session: Session, shop: Shop, member: Member, history_lines: int = 20) -> dict[str, Any]:
    """What a helpdesk sidebar shows: who, balance, recent explained history, rewards (dump: MemberCardSchema)."""
    balance = ledger.balance_of(session, shop.id, member)
    redemptions = session.scalars(
        select(Redemption)
        .where(Redemption.shop_id == shop.id, Redemption.member_id == member.id)
        .order_by(Redemption.id.desc())
        .limit(10)
    )
    return {
        "customer_id": member.customer_id,
        "email": member.email,
        "name": " ".join(p for p in (member.first_name, member.last_name) if p) or None,
        **balance.to_json(),
        "history": history(session, shop, member)[:history_lines],
        "redemptions": list(redemptions),
    }


def history(session: Session, shop: Shop, member: Member) -> list[dict[str, Any]]:
    """Every posting, newest first, each with what caused it (dump each line with HistoryLineSchema)."""
    postings = session.scalars(
        select(Posting).where(Posting.shop_id == shop.id, Posting.member_id == member.id).order_by(Posting.id.desc())
    ).all()
    names = dict(
        session.execute(
            select(Order.order_id, Order.name).where(
                Order.shop_id == shop.id, Order.order_id.in_({p.order_id for p in postings if p.order_id})
            )
        ).all()
    )
    actions = {
        str(a.id): a
        for a in session.scalars(
            select(SupportAction).where(SupportAction.shop_id == shop.id, SupportAction.member_id == member.id)
        )
    }
    lines = []
    for p in postings:
        cause = {
            "order": names.get(p.order_id) if p.order_id else None,
            "order_id": p.order_id,
            "refund_id": p.source_id if p.source_type == "refund" else None,
            "redemption_id": p.source_id if p.source_type == "redemption" else None,
        }
        action = actions.get(p.source_id) if p.source_type == "support" else None
        if action is not None:
            cause |= {
                "support_action_id": action.id,
                "by": action.actor,
                "reason_code": action.reason_code,
                "note": action.note,
            }
        lines.append(
            {
                "id": p.id,
                "at": p.created_at,
                "kind": p.kind,
                "points": p.points,
                "balance_after": p.balance_after,
                "source": p.source_type,
                "rule_version": p.rule_version,
                "explanation": explanations.localized(p.note, p.details, shop.locale),
                "available_at": p.available_at,
                "actor": p.actor,
                **{k: v for k, v in cause.items() if v is not None},
            }
        )
    return lines


def history_csv(lines: list[dict[str, Any]]) -> str:
    """Dumped history lines (HistoryLineSchema) as a spreadsheet."""
    columns = HISTORY_CSV_COLUMNS
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    # Notes are typed by staff and tier names come from imported files: no cell may run as a formula.
    writer.writerows({key: neutralise(value) for key, value in line.items()} for line in lines)
    return out.getvalue()


def _checked(schema, **values: Any) -> dict[str, Any]:
    """The operation's own schema decides, whichever door called: the same input gets the same refusal."""
    return load(schema, values)


def fingerprint(operation: str, target: int, request: dict[str, Any]) -> str:
    """A hash of what was asked (operation, target and the loaded body, canonical): a reused key is compared by it."""
    canonical = json.dumps([operation, target, request], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _check_key(key: str | None) -> None:
    if key is not None:
        load(IdempotencyKeyHeader(), {"Idempotency-Key": key})


def replayed(session: Session, shop: Shop, key: str | None, request_fingerprint: str) -> SupportAction | None:
    """The action a key already made, if the same request made it; a different request with the key is refused."""
    if not key:
        return None
    found = session.execute(
        select(SupportAction).where(SupportAction.shop_id == shop.id, SupportAction.idempotency_key == key)
    ).scalar_one_or_none()
    if found is not None and found.request_fingerprint not in (None, request_fingerprint):
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request; use a new key for a new request",
            {"Idempotency-Key": ["already used with a different request"]},
        )
    return found


def _record(
    session: Session,
    shop: Shop,
    member: Member,
    action: str,
    points: int,
    reason_code: str,
    note: str,
    actor: str,
    key: str | None,
    order_id: int | None = None,
    undo_of: int | None = None,
    kind: str = "adjust",
    request_fingerprint: str | None = None,
) -> SupportAction:
    locked = session.execute(
        select(Member).where(Member.id == member.id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    record = SupportAction(
        shop_id=shop.id,
        member_id=member.id,
        action=action,
        actor=actor,
        reason_code=reason_code,
        note=note.strip(),
        points=points,
        balance_before=locked.balance,
        balance_after=locked.balance + points,
        order_id=order_id,
        undo_of=undo_of,
        idempotency_key=key or None,  # a blank key (a stripped header) is no key: "" would be unique once only
        request_fingerprint=request_fingerprint if key else None,
        created_at=utcnow(),
    )
    session.add(record)
    session.flush()
    if points:
        entry = ledger.Entry(
            member_id=member.id,
            kind=kind,
            points=points,
            source_type="support",
            source_id=str(record.id),
            idempotency_key=f"support:{record.id}",
            rule_version="support",
            order_id=order_id,
            note=f"{reason_code}: {note.strip()}",
            actor=actor,
        )
        announcements.posting(session, shop.id, ledger.post(session, shop.id, entry), actor=actor)
    return record


def adjust(
    session: Session,
    shop: Shop,
    customer_id: int,
    points: int,
    reason_code: str,
    note: str,
    actor: str,
    key: str | None = None,
) -> SupportAction:
    """Add or take away points by hand (may leave a negative balance: the history says so)."""
    request = _checked(AdjustmentRequest(), points=points, reason_code=reason_code, note=note)
    _check_key(key)
    asked = fingerprint("adjust", customer_id, request)
    if (earlier := replayed(session, shop, key, asked)) is not None:
        return earlier
    member = find_member(session, shop, customer_id=customer_id)
    return _record(
        session,
        shop,
        member,
        "adjust",
        request["points"],
        reason_code,
        request["note"],
        actor,
        key,
        request_fingerprint=asked,
    )


def reverse_order(
    session: Session,
    shop: Shop,
    order_id: int,
    points: int | None,
    reason_code: str,
    note: str,
    actor: str,
    key: str | None = None,
) -> SupportAction:
    """Take back an order's points (all it still holds, or a given amount, never more).

    The reversal becomes one of the order's facts, like a refund, so later deliveries for the order keep it.
    """
    request = _checked(ReversalRequest(), points=points, reason_code=reason_code, note=note)
    _check_key(key)
    asked = fingerprint("reverse", order_id, request)
    if (earlier := replayed(session, shop, key, asked)) is not None:
        return earlier
    note = request["note"]
    order = _locked_order(session, shop, order_id)
    if order.points_held <= 0:
        raise SupportError(f"order {order_id} holds no points to reverse")
    amount = order.points_held if request["points"] is None else request["points"]
    if not 0 < amount <= order.points_held:
        message = f"must be between 1 and {order.points_held}, what the order still holds"
        raise Invalid(f"points: {message}", {"points": [message]})
    record = _record(
        session,
        shop,
        session.get(Member, (shop.id, order.member_id)),
        "reverse_order",
        0,
        reason_code,
        note,
        actor,
        key,
        order_id=order_id,
        request_fingerprint=asked,
    )
    order.support_delta -= amount
    _settle_for(session, shop, order, record, reason_code, note, actor)
    return record


def undo(
    session: Session, shop: Shop, action_id: int, reason_code: str, note: str, actor: str, key: str | None = None
) -> SupportAction:
    """Undo a support action with a further audited action; an order gets back no more than its facts allow."""
    request = _checked(UndoRequest(), reason_code=reason_code, note=note)
    _check_key(key)
    asked = fingerprint("undo", action_id, request)
    if (earlier := replayed(session, shop, key, asked)) is not None:
        return earlier
    note = request["note"]
    original = session.execute(
        select(SupportAction).where(SupportAction.shop_id == shop.id, SupportAction.id == action_id).with_for_update()
    ).scalar_one_or_none()
    if original is None:
        raise NotFound(f"no support action {action_id}")
    if original.undone_by is not None:
        raise SupportError(f"action {action_id} was already undone by action {original.undone_by}")
    member = session.get(Member, (shop.id, original.member_id))
    if original.order_id is None:
        record = _record(
            session,
            shop,
            member,
            "undo",
            -original.points,
            reason_code,
            note,
            actor,
            key,
            undo_of=original.id,
            request_fingerprint=asked,
        )
    else:
        order = _locked_order(session, shop, original.order_id)
        record = _record(
            session,
            shop,
            member,
            "undo",
            0,
            reason_code,
            note,
            actor,
            key,
            order_id=original.order_id,
            undo_of=original.id,
            request_fingerprint=asked,
        )
        order.support_delta -= original.points  # the original's points were negative for a reversal
        _settle_for(session, shop, order, record, reason_code, note, actor)
    original.undone_by = record.id
    return record


def _locked_order(session: Session, shop: Shop, order_id: int) -> Order:
    order = session.execute(
        select(Order)
        .where(Order.shop_id == shop.id, Order.order_id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None or order.member_id is None or order.lot is None:
        raise NotFound(f"no order {order_id} that earned points")
    return order


def _settle_for(
    session: Session, shop: Shop, order: Order, record: SupportAction, reason_code: str, note: str, actor: str
) -> None:
    """Post what the order's facts now say, under the action's own key, and write the amount on the action."""
    before = record.balance_before
    posted = accrual.settle(
        session,
        shop,
        order,
        ("support", str(record.id)),
        idempotency_key=f"support:{record.id}",
        actor=actor,
        note=f"{reason_code}: {note.strip()}",
    )
    record.points = posted
    record.balance_after = before + posted


def parked(session: Session, shop: Shop, limit: int = 200) -> list[Delivery]:
    """The shop's parked deliveries, oldest first, with the reason each could not be processed (ParkedSchema)."""
    return list(
        session.scalars(
            select(Delivery)
            .where(Delivery.shop_domain == shop.domain, inbox.status_is(inbox.PARKED))  # a web process prepares it
            .order_by(Delivery.id)
            .limit(limit)
        )
    )


def parked_delivery(session: Session, shop: Shop, delivery_id: int) -> Delivery:
    """One delivery of the shop in full, to inspect before a replay (ParkedDeliverySchema)."""
    delivery = session.get(Delivery, delivery_id)
    if delivery is None or delivery.shop_domain != shop.domain:
        raise NotFound(f"no delivery {delivery_id}")
    return delivery
