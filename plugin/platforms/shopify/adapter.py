"""Shopify adapter: webhook HMAC, shop-domain validation, and the topic-to-event parsers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plugin.platforms.shopify import order_reader, payloads
from plugin.programme import events

SHOP_DOMAIN = re.compile(r"[a-z0-9][a-z0-9-]*\.myshopify\.com")


def is_valid_shop_domain(domain: str | None) -> bool:
    """Anchored check: `shop.myshopify.com.attacker.net` and friends are refused."""
    return bool(domain) and SHOP_DOMAIN.fullmatch(domain) is not None


def webhook_signature(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret, raw body)), as Shopify sends in X-Shopify-Hmac-Sha256."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify_webhook(body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
    """Constant-time check against the current secret and, during a rotation, the previous one."""
    if not signature:
        return False
    given = signature.encode()
    matches = [hmac.compare_digest(webhook_signature(body, s).encode(), given) for s in secrets]
    return any(matches)  # every secret is tried, so timing does not reveal which one matched


def _order_paid(payload: Any, triggered_at: datetime) -> events.OrderPaid:
    return events.OrderPaid(order_reader.load_order(payload), paid_at=triggered_at)


PARSERS: dict[str, Callable[[Any, datetime], events.Event]] = {
    "orders/create": lambda p, _t: events.OrderCreated(order_reader.load_order(p)),
    "orders/paid": _order_paid,
    "orders/cancelled": lambda p, _t: events.OrderCancelled(order_reader.load_order(p)),
    "refunds/create": lambda p, _t: events.OrderRefunded(payloads.load_refund(p)),
    "customers/create": lambda p, _t: events.CustomerCreated(payloads.load_customer(p)),
    "customers/update": lambda p, _t: events.CustomerUpdated(payloads.load_customer(p)),
    "products/create": lambda p, _t: events.ProductUpdated(payloads.load_product(p)),
    "products/update": lambda p, _t: events.ProductUpdated(payloads.load_product(p)),
    "products/delete": lambda p, _t: payloads.load_deleted_product(p),
    "app/uninstalled": lambda p, _t: payloads.load_uninstalled(p),
    "customers/data_request": lambda p, _t: payloads.load_data_request(p),
    "customers/redact": lambda p, _t: payloads.load_customer_redact(p),
    "shop/redact": lambda p, _t: payloads.load_shop_redact(p),
}
# Topics handled even for a shop that has uninstalled the app (or that we no longer know).
LIFECYCLE_TOPICS = frozenset({"app/uninstalled", "customers/data_request", "customers/redact", "shop/redact"})


def parse_event(topic: str, payload: Any, triggered_at: datetime) -> events.Event | None:
    """The neutral event for a delivery, or None for a topic the loyalty core does not use.

    Raises marshmallow.ValidationError when the payload does not have the shape the topic promises.
    """
    parser = PARSERS.get(topic)
    return parser(payload, triggered_at) if parser else None


def parse_triggered_at(header: str | None, fallback: datetime) -> datetime:
    """X-Shopify-Triggered-At (nanosecond precision, Z suffix) as an aware datetime."""
    if not header:
        return fallback
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", header.strip())
    if not match:
        return fallback
    fraction = (match.group(2) or ".0")[1:7].ljust(6, "0")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}").astimezone(UTC)
    except ValueError:  # digits in the right places but an impossible date, hour or offset
        return fallback


PROXY_MAX_AGE_SECONDS = 90  # Shopify's own libraries accept App Proxy timestamps within 90 s


class ProxyAuthError(Exception):
    """An App Proxy request whose signature, timestamp or parameters cannot be trusted."""


@dataclass(frozen=True)
class ProxyRequest:
    shop_domain: str
    customer_id: int | None  # Shopify's logged_in_customer_id: the only shopper identity we trust


def proxy_signature(params: Iterable[tuple[str, str]], secret: str) -> str:
    """hex HMAC-SHA256 of the sorted `key=value` pairs joined with no separator (repeated keys' values by ',')."""
    grouped: dict[str, list[str]] = {}
    for key, value in params:
        if key != "signature":
            grouped.setdefault(key, []).append(value)
    message = "".join(f"{key}={','.join(values)}" for key, values in sorted(grouped.items()))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# What Shopify adds to every App Proxy request (shopify.dev, "Authenticate app proxies"). No name here is a
# suffix of another, which (with no `=` in names or values, and no repeats) makes the signed string, the sorted
# pairs joined with nothing between them, split back into pairs in one way only.
MAX_CUSTOMER_ID = 2**63 - 1
SHOPIFY_PROXY_PARAMETERS = frozenset({"shop", "logged_in_customer_id", "path_prefix", "timestamp", "signature"})


def verify_proxy(
    params: list[tuple[str, str]],
    secrets: Iterable[str],
    now: float,
    allowed: frozenset[str] = frozenset(),
    repeatable: frozenset[str] = frozenset(),
) -> ProxyRequest:
    """Check an App Proxy request's query parameters; raises ProxyAuthError, or returns who is asking.

    `allowed` names the endpoint's own parameters, besides Shopify's; `repeatable` those of them that may repeat.
    Anything else is refused before the signature is checked: the signed string has no separators, so an
    unexpected parameter, an `=` inside a name or value, or a repeat could re-split another shopper's signed query.
    """
    counts: dict[str, int] = {}
    for key, value in params:
        if "=" in key or "=" in value:
            raise ProxyAuthError("a parameter's name or value contains '='")
        if key not in SHOPIFY_PROXY_PARAMETERS and key not in allowed:
            raise ProxyAuthError(f"unexpected parameter '{key[:40]}'")
        counts[key] = counts.get(key, 0) + 1
        if counts[key] > 1 and key not in repeatable:
            raise ProxyAuthError(f"'{key}' is repeated")
    for key in ("signature", "shop", "timestamp"):
        if counts.get(key, 0) != 1:
            raise ProxyAuthError(f"exactly one '{key}' parameter is required")
    values = dict(params)
    given = values["signature"].encode()
    matches = [hmac.compare_digest(proxy_signature(params, secret).encode(), given) for secret in secrets]
    if not any(matches):
        raise ProxyAuthError("the signature does not match the parameters")
    try:
        age = abs(now - int(values["timestamp"]))
    except ValueError:
        raise ProxyAuthError("the timestamp is not a number") from None
    if age > PROXY_MAX_AGE_SECONDS:
        raise ProxyAuthError("the request is stale: its timestamp is too far from now")
    if not is_valid_shop_domain(values["shop"]):
        raise ProxyAuthError("the shop is not a *.myshopify.com domain")
    customer = values.get("logged_in_customer_id", "")
    is_id = customer.isascii() and customer.isdigit() and len(customer) <= 19 and 0 < int(customer) <= MAX_CUSTOMER_ID
    if customer and not is_id:
        # Shopify's ids are positive BIGINTs; a larger one cannot name a member, and would fail in SQL.
        raise ProxyAuthError("logged_in_customer_id is not a customer id")
    return ProxyRequest(values["shop"], int(customer) if customer else None)
