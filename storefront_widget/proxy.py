"""App Proxy endpoints (Shopify forwards https://SHOP/apps/loyalty/... here): signed, scoped to one shopper."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from sqlalchemy import false, select
from sqlalchemy.orm import Session

from plugin import jobs, ledger
from plugin.config import Settings
from plugin.db import reading, transaction
from plugin.models import Member, Order, Posting, Redemption, Shop, utcnow
from plugin.platforms.shopify import adapter as shopify
from plugin.programme import explanations
from plugin.programme.rewards import catalogue
from plugin.programme.settings import program_settings
from plugin.services import expiry, redemption, shops, tiers
from plugin.services.errors import Invalid
from plugin.services.schemas import RedeemRequest, load
from plugin.web.errors import json_error
from storefront_widget import widget_cache, widget_hits, widget_sql

bp = Blueprint("storefront", __name__, url_prefix="/proxy")
HISTORY_LINES = 10
REDEMPTION_LINES = 10
_UNKNOWN = object()  # widget_payload's member not looked up yet

ERROR_STATUS = {
    "not_enough_points": 409,
    "unknown_reward": 404,
    "not_a_member": 409,
    "redemption_error": 409,
    "bad_points": 422,
}


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, fields: dict | None = None):
        super().__init__(message)
        self.response = json_error(status, code, message, fields=fields)


@bp.errorhandler(_Refused)
def _refused(error: _Refused) -> Response:
    return error.response


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def _caller() -> shopify.ProxyRequest:
    try:
        return shopify.verify_proxy(list(request.args.items(multi=True)), _settings().webhook_secrets, time.time())
    except shopify.ProxyAuthError as error:
        raise _Refused(401, "invalid_signature", str(error)) from None


def _shop(session: Session, domain: str) -> Shop:
    try:
        shop = shops.get(session, domain)
    except shops.ShopNotFound:
        shop = None
    if shop is None or not shop.active:
        raise _Refused(404, "unknown_shop", f"{domain} does not run this programme")
    return shop


# merge_slashes=False: werkzeug would answer `/proxy//widget?...` with a 308 whose Location repeats the signed
# query to the shopper; without merging, such a path is simply not found.
NO_REDIRECT = {"merge_slashes": False, "strict_slashes": True}


@bp.get("/widget", **NO_REDIRECT)
def widget() -> Response:
    """Everything the widget shows, in one call."""
    caller = _caller()
    settings = _settings()

    def computed() -> dict[str, Any]:
        with reading(settings.database_url) as session:
            return read_widget(session, caller.shop_domain, caller.customer_id)

    looked = widget_hits.looked_up(request.environ, caller.shop_domain, caller.customer_id)
    return widget_cache.served(settings, caller.shop_domain, caller.customer_id, computed, looked)


def read_widget(session: Session, domain: str, customer_id: int | None) -> dict[str, Any]:
    """Everything the widget shows this shopper: one statement on PostgreSQL, the ORM's reads elsewhere."""
    if session.get_bind().dialect.name == "postgresql":
        return _widget_payload_in_one_statement(session, domain, customer_id)
    shop, member = _shop_and_member(session, domain, customer_id)
    return widget_payload(session, shop, customer_id, member)


def _widget_payload_in_one_statement(session: Session, domain: str, customer_id: int | None) -> dict[str, Any]:
    """widget_payload's answer from one round trip (PostgreSQL): the storefront's hottest read."""
    row = widget_sql.read(session, domain, customer_id, HISTORY_LINES, REDEMPTION_LINES)
    if row is None or not row.active:
        raise _Refused(404, "unknown_shop", f"{domain} does not run this programme")
    member = row.member_id is not None
    shop = SimpleNamespace(id=row.shop_id, tiers=row.tiers, tiers_version=row.tiers_version, time_zone=row.time_zone)
    payload = _with_tier(
        session,
        shop,
        customer_id,
        row.member_id,
        _assemble(
            domain,
            _limits(session, row.shop_id, row.member_id, row.settings),
            row.currency,
            row.settings,
            row.settings_version,
            customer_id,
            balance=row.balance if member else None,
            pending=[{"points": p["points"], "available_at": widget_sql.iso(p["at"])} for p in row.pending],
            history=[
                _history_line(
                    widget_sql.iso(h["at"]),
                    h["kind"],
                    h["points"],
                    h["order_id"],
                    h["order_name"],
                    h["source_type"],
                    h["title"],
                    explanations.localized(h["note"], h["details"], row.locale),
                )
                for h in row.history
            ],
            redemptions=[
                _redemption_line(
                    r["id"],
                    r["status"],
                    r["code"],
                    r["title"],
                    r["points"],
                    widget_sql.iso(r["ends_at"]),
                    r["reason"],
                    (r["credit_milli"], r["credit_currency"], r["credit_balance_milli"]),
                )
                for r in row.redemptions
            ],
        ),
    )
    return _with_next_expiry(session, row.shop_id, row.member_id, payload)


def _with_tier(session: Session, shop, customer_id: int | None, member_id: int | None, payload: dict) -> dict:
    """The widget's tier section (docs/tiers.md): read only when the shop has tiers, so others pay nothing."""
    if shop.tiers and shop.tiers.get("tiers"):
        payload["tier"] = tiers.widget_section(session, shop, member_id if customer_id is not None else None)
    return payload


def _shop_and_member(session: Session, domain: str, customer_id: int | None) -> tuple[Shop, Member | None]:
    """The shop and the shopper's membership in one query (the widget's hot path)."""
    # A visitor (no customer id) matches no member: never a stand-in value, which an anonymised member
    # (customer_id = -member id) could hold.
    is_member = false() if customer_id is None else (Member.shop_id == Shop.id) & (Member.customer_id == customer_id)
    row = session.execute(select(Shop, Member).outerjoin(Member, is_member).where(Shop.domain == domain)).one_or_none()
    if row is None or not row[0].active:
        raise _Refused(404, "unknown_shop", f"{domain} does not run this programme")
    return row[0], row[1]


@bp.post("/redeem", **NO_REDIRECT)
def redeem() -> Response:
    caller = _caller()
    if caller.customer_id is None:
        raise _Refused(401, "not_signed_in", "sign in to spend your points")
    try:
        wanted = load(RedeemRequest(), request.get_json(silent=True))
    except Invalid as error:
        raise _Refused(error.status, error.code, str(error), error.fields) from None
    # Keys are per shopper, so one shopper's key can never collide with, or reveal, another's.
    key = f"proxy:{caller.customer_id}:{wanted['idempotency_key']}" if wanted["idempotency_key"] else None
    try:
        with transaction(_settings().database_url) as session:
            shop = _shop(session, caller.shop_domain)
            made = redemption.redeem(
                session, shop, caller.customer_id, wanted["reward_id"], key, points=wanted["points"]
            )
            redemption_id, shop_id = made.id, shop.id
            fresh = made.status == redemption.PENDING and made.attempts == 0
    except redemption.BadPoints as error:
        raise _Refused(422, error.code, str(error), {"points": [str(error)]}) from None
    except redemption.RedemptionError as error:
        raise _Refused(ERROR_STATUS.get(error.code, 409), error.code, str(error)) from None
    if fresh:
        jobs.enqueue_issue(_settings(), redemption_id, shop_id)
        jobs.signal_balances(_settings())
    with transaction(_settings().database_url) as session:
        response = jsonify({"redemption": redemption_json(session.get(Redemption, (shop_id, redemption_id)))})
    response.status_code = 201
    return response


@bp.get("/redemptions/<int:redemption_id>", **NO_REDIRECT)
def redemption_status(redemption_id: int) -> Response:
    caller = _caller()
    with transaction(_settings().database_url) as session:
        shop = _shop(session, caller.shop_domain)
        member = shops.member(session, shop, caller.customer_id) if caller.customer_id else None
        found = session.get(Redemption, (shop.id, redemption_id))
        if member is None or found is None or found.member_id != member.id:
            raise _Refused(404, "not_found", f"no redemption {redemption_id} for you")
        return jsonify({"redemption": redemption_json(found)})


def redemption_json(r: Redemption) -> dict[str, Any]:
    ends_at = r.ends_at.isoformat() if r.ends_at else None
    credit = (r.credit_milli, r.credit_currency, r.credit_balance_milli)
    return _redemption_line(r.id, r.status, r.code, r.reward["title"], r.points, ends_at, r.reason, credit)


def _redemption_line(id_, status, code, title, points, ends_at, reason, credit=(None, None, None)) -> dict[str, Any]:
    """One redemption as the shopper sees it: a code, or for store credit the amount and the balance after it."""
    credit_milli, currency, balance_milli = credit
    store_credit = None
    if credit_milli is not None:
        store_credit = {
            "amount": str(redemption.from_milli(credit_milli)),
            "currency": currency,
            # The account's balance right after this credit; known once it is issued.
            "balance": str(redemption.from_milli(balance_milli)) if balance_milli is not None else None,
        }
    return {
        "id": id_,
        "status": status,
        # A store credit's internal reference is not a code the shopper can use: it is never shown.
        "code": code if status in (redemption.ISSUED, redemption.CANCELLED) and store_credit is None else None,
        "store_credit": store_credit,
        "reward": title,
        "points": points,
        "ends_at": ends_at,
        "reason": "points returned" if status == redemption.FAILED else reason,
    }


def widget_payload(session: Session, shop: Shop, customer_id: int | None, member=_UNKNOWN) -> dict[str, Any]:
    """Everything the widget shows, read through the ORM (SQLite, and callers that hold the shop already)."""
    if member is _UNKNOWN:
        member = shops.member(session, shop, customer_id) if customer_id else None
    member_id = member.id if member is not None else None
    payload = _with_tier(
        session,
        shop,
        customer_id,
        member_id,
        _assemble(
            shop.domain,
            _limits(session, shop.id, member.id if member is not None else None, shop.settings),
            shop.currency,
            shop.settings,
            shop.settings_version,
            customer_id,
            balance=member.balance if member is not None else None,
            pending=_pending(session, shop, member) if customer_id is not None else [],
            history=_history(session, shop, member.id) if member is not None else [],
            redemptions=(
                [redemption_json(r) for r in redemption.for_member(session, shop, customer_id, REDEMPTION_LINES)]
                if member is not None
                else []
            ),
        ),
    )
    return _with_next_expiry(session, shop.id, member_id, payload)


def _with_next_expiry(session: Session, shop_id: int, member_id: int | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The member's next expiry ("120 points expire on 31 Jan"): one key look-up when the shop has expiry off."""
    if payload["customer"] is not None:
        payload["customer"]["next_expiry"] = (
            expiry.next_expiry_of(session, shop_id, member_id) if member_id is not None else None
        )
    return payload


def _limits(session: Session, shop_id: int, member_id: int | None, settings: dict[str, Any] | None) -> dict[str, Any]:
    """Which limited rewards this shopper cannot redeem now, and why (no query when no reward is limited)."""
    offered = [reward for reward in catalogue(settings) if reward.limited]
    return redemption.availability(session, shop_id, member_id, offered) if offered else {}


def _assemble(
    domain: str,
    unavailable: dict[str, Any],
    currency: str | None,
    settings: dict[str, Any] | None,
    settings_version: int,
    customer_id: int | None,
    *,
    balance: int | None,
    pending: list[dict[str, Any]],
    history: list[dict[str, Any]],
    redemptions: list[dict[str, Any]],
) -> dict[str, Any]:
    """The widget's JSON from what was read; `balance` is None for a shopper who is not a member yet."""
    program = program_settings(settings, settings_version)
    payload: dict[str, Any] = {
        "shop": {"domain": domain, "currency": currency or "USD"},
        "program": {
            "description": (
                f"Earn {program.earn_points} point{'' if program.earn_points == 1 else 's'} for every "
                f"{program.earn_per_amount} {currency or 'USD'} you spend."
            ),
            "earn": {"points": program.earn_points, "per_amount": str(program.earn_per_amount)},
        },
        "customer": None,
        "history": history,
        "rewards": [],
        "redemptions": redemptions,
        "sign_in_url": "/account/login",
    }
    available = 0
    if customer_id is not None:
        # The same figure as ledger.balance_of, from the rows the widget lists anyway.
        totals = ledger.Balance(balance or 0, sum(p["points"] for p in pending))
        available = totals.available
        payload["customer"] = {"id": customer_id, **totals.to_json(), "pending_until": pending}
    payload["rewards"] = [
        {
            **{k: v for k, v in reward.to_json().items() if k not in ("lifetime_days",)},
            "affordable": available >= reward.points_range()[0],  # cash back: its fewest points
            "available": reward.id not in unavailable,
            "unavailable": unavailable[reward.id].to_json() if reward.id in unavailable else None,
        }
        for reward in catalogue(settings)
    ]
    return payload


def _pending(session: Session, shop: Shop, member) -> list[dict[str, Any]]:
    if member is None:
        return []
    rows = session.execute(
        select(Order.points_held, Order.available_at)
        .where(
            Order.shop_id == shop.id, Order.member_id == member.id, Order.available_at > utcnow(), Order.points_held > 0
        )
        .order_by(Order.available_at)
    )
    return [{"points": points, "available_at": at.isoformat()} for points, at in rows]


def _history(session: Session, shop: Shop, member_id: int) -> list[dict[str, Any]]:
    """The member's latest postings, each with its order's name, in one query."""
    rows = session.execute(
        select(Posting, Order.name)
        .outerjoin(Order, (Order.shop_id == Posting.shop_id) & (Order.order_id == Posting.order_id))
        .where(Posting.shop_id == shop.id, Posting.member_id == member_id)
        .order_by(Posting.id.desc())
        .limit(HISTORY_LINES)
    ).all()
    postings = [posting for posting, _ in rows]
    names = {posting.order_id: name for posting, name in rows if posting.order_id is not None}
    titles = {}
    redemption_ids = [int(p.source_id) for p in postings if p.source_type == "redemption"]
    if redemption_ids:
        rows = session.execute(
            select(Redemption.id, Redemption.reward).where(
                Redemption.shop_id == shop.id, Redemption.id.in_(redemption_ids)
            )
        )
        titles = {str(rid): reward["title"] for rid, reward in rows}
    return [
        _history_line(
            p.created_at.isoformat(),
            p.kind,
            p.points,
            p.order_id,
            names.get(p.order_id),
            p.source_type,
            titles.get(p.source_id),
            explanations.localized(p.note, p.details, shop.locale),
        )
        for p in postings
    ]


def _history_line(at, kind, points, order_id, order_name, source_type, title, note) -> dict[str, Any]:
    if order_id is not None:
        label = f"Order {order_name or order_id}"
    elif source_type == "redemption":
        label = title or "Reward"
    else:
        label = note or kind
    # An order's postings carry the rules' explanation ("74 points: 37.42 eligible x 1 per 1.00, ...").
    explanation = note if order_id is not None else None
    return {"at": at, "kind": kind, "points": points, "label": label, "explanation": explanation}
