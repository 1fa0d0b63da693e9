"""Helpers for the referral tests: a programme switched on, signed link visits, friends' orders, outcomes."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import Member, Posting, Referral, ReferralVisit
from plugin.services import referrals, shops
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_storefront_proxy import signed

ADVOCATE = 5001
ADVOCATE_EMAIL = "Ada.Lovelace+shop@gmail.com"
ADVOCATE_ADDRESS = {"address1": "12 Rue de la Paix", "zip": "75002", "country_code": "FR", "phone": "+33 1 23 45 67 89"}
FRIEND_ADDRESS = {"address1": "1 Main Street", "zip": "10001", "country_code": "US", "phone": "+1 212 555 0100"}


def switch_on(settings, shop_domain: str = SHOP, pending_days: int = 0, **changes: Any) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, shop_domain)
        shops.update_settings(session, shop, {"pending_days": pending_days})
        referrals.update_settings(session, shop, {"enabled": True, **changes}, "test")


def change(settings, **changes: Any) -> None:
    with transaction(settings.database_url) as session:
        referrals.update_settings(session, shops.get(session, SHOP), changes, "test")


def advocate_link(client, customer_id: int = ADVOCATE, shop_domain: str = SHOP) -> str:
    """The advocate joins (an order of their own) and reads their link from the widget's share panel."""
    order = with_contact(builders.order(900 + customer_id % 100, customer_id, email=ADVOCATE_EMAIL), ADVOCATE_ADDRESS)
    order["processed_at"] = "2026-11-01T10:00:00Z"
    assert deliver(client, "orders/paid", order, shop=shop_domain).status_code == 200
    answer = client.get(f"/proxy/referral?{urlencode(signed(customer_id, shop=shop_domain))}")
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["link"]["code"]


def visit(client, code: str, params: list[tuple[str, str]] | None = None, customer_id: int | None = None):
    """A friend opens /apps/loyalty/r/CODE (through the signed App Proxy); returns the response."""
    return client.get(f"/proxy/r/{code}?{urlencode(params or signed(customer_id))}")


def token_of(response) -> str | None:
    assert response.status_code == 302
    location = urlparse(response.headers["Location"])
    assert location.path == "/"
    return parse_qs(location.query).get("loyalty_referral", [None])[0]


def with_contact(order: dict[str, Any], address: dict[str, str], phone: str | None = None) -> dict[str, Any]:
    return {**order, "shipping_address": dict(address), "phone": phone}


def friend_order(
    order_id: int,
    customer_id: int,
    *,
    token: str | None = None,
    code: str | None = None,
    email: str | None = None,
    address: dict[str, str] = FRIEND_ADDRESS,
    processed_at: str = "2026-11-20T10:00:00Z",
) -> dict[str, Any]:
    order = with_contact(builders.order(order_id, customer_id, email=email), address)
    order["processed_at"] = processed_at
    if token:
        order["note_attributes"] = [{"name": "_loyalty_referral", "value": token}]
    if code:
        order["discount_codes"] = [{"code": code, "amount": "10.00", "type": "fixed_amount"}]
    return order


def outcome(settings, order_id: int) -> tuple[str, str | None, int] | None:
    with transaction(settings.database_url) as session:
        row = session.execute(select(Referral).where(Referral.order_id == order_id)).scalar_one_or_none()
        return (row.status, row.block_reason, row.points_held) if row else None


def advocate_points(settings, customer_id: int = ADVOCATE) -> int:
    """What referrals gave the advocate, from the ledger."""
    with transaction(settings.database_url) as session:
        return session.scalar(
            select(func.coalesce(func.sum(Posting.points), 0))
            .join(Member, Member.id == Posting.member_id)
            .where(Member.customer_id == customer_id, Posting.source_type == "referral")
        )


def visits(settings) -> int:
    with transaction(settings.database_url) as session:
        return session.scalar(select(func.count()).select_from(ReferralVisit))


def state(settings) -> list[tuple]:
    """Every referral and every referral posting: what shuffled deliveries must reproduce."""
    with transaction(settings.database_url) as session:
        rows = session.execute(
            select(Referral.order_id, Referral.status, Referral.block_reason, Referral.points_held).order_by(
                Referral.order_id
            )
        ).all()
    return [tuple(row) for row in rows] + [("points", advocate_points(settings))]
