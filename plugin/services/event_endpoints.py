"""Merchant event endpoints: register (https only, no private addresses), list, disable, enable (docs/events.md)."""

from __future__ import annotations

import ipaddress
import secrets
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import crypto
from plugin.models import EventEndpoint, utcnow
from plugin.services.errors import Invalid, NotFound
from plugin.services.outbox import EVENT_TYPES

MAX_ENDPOINTS_PER_SHOP = 20
Resolver = Callable[[str], list[str]]


def resolve(host: str) -> list[str]:
    """Every address the host resolves to (an unresolvable host has none)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (socket.gaierror, UnicodeError):
        return []


def _is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def url_problems(url: str, *, allow_loopback: bool, resolver: Resolver | None = None) -> list[str]:
    """Why this URL may not receive events (empty when it may): https only, and never a private address (SSRF).

    `allow_loopback` (development only) admits http:// and https:// on a loopback address, for a local receiver.
    Checked at registration and again before every delivery, since a name can be pointed elsewhere later.
    """
    if not isinstance(url, str) or not url.strip():
        return ["a URL is required"]
    if len(url) > 2048:
        return ["at most 2048 characters"]
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return ["not a valid URL"]
    if parts.scheme not in ("https", "http") or not host:
        return ["must be an https:// URL"]
    if parts.username or parts.password:
        return ["must not carry a user name or password"]
    addresses = (resolver or resolve)(host)
    if not addresses:
        return [f"the host {host} does not resolve"]
    loopback = all(_is_loopback(address) for address in addresses)
    if loopback and allow_loopback:
        return []
    if parts.scheme != "https":
        return ["must be an https:// URL (http:// only for a loopback receiver in development)"]
    if not all(_is_public(address) for address in addresses):
        return [f"the host {host} resolves to a private, loopback or reserved address, which endpoints may not use"]
    return []


def _types(event_types: Any) -> list[str] | None:
    if event_types is None:
        return None
    if not isinstance(event_types, list) or not event_types or not all(isinstance(t, str) for t in event_types):
        raise Invalid("the event types are not valid", {"event_types": ["a non-empty list of event types, or null"]})
    unknown = sorted(set(event_types) - EVENT_TYPES)
    if unknown:
        raise Invalid(
            "the event types are not valid",
            {"event_types": [f"unknown: {', '.join(unknown)}; known: {', '.join(sorted(EVENT_TYPES))}"]},
        )
    return sorted(set(event_types))


def register(
    session: Session,
    shop_id: int,
    url: Any,
    keys: tuple[str, ...],
    *,
    event_types: Any = None,
    description: Any = None,
    allow_loopback: bool = False,
    resolver: Resolver | None = None,
) -> tuple[EventEndpoint, str]:
    """Register an endpoint; returns it and its signing secret, which is shown this once and stored encrypted."""
    fields: dict[str, list[str]] = {}
    problems = (
        url_problems(url, allow_loopback=allow_loopback, resolver=resolver)
        if isinstance(url, str)
        else ["a URL is required"]
    )
    if problems:
        fields["url"] = problems
    if description is not None and (not isinstance(description, str) or len(description) > 200):
        fields["description"] = ["text of at most 200 characters"]
    try:
        types = _types(event_types)
    except Invalid as error:
        fields.update(error.fields or {})
        types = None
    if fields:
        raise Invalid("the endpoint is not valid", fields)
    count = len(session.scalars(select(EventEndpoint.id).where(EventEndpoint.shop_id == shop_id)).all())
    if count >= MAX_ENDPOINTS_PER_SHOP:
        raise Invalid("too many endpoints", {"url": [f"a shop may register at most {MAX_ENDPOINTS_PER_SHOP}"]})
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = EventEndpoint(
        shop_id=shop_id,
        url=url.strip(),
        secret=crypto.encrypt(secret, keys),
        event_types=types,
        description=description,
        created_at=utcnow(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint, secret


FLOW, WEBHOOK = "flow", "webhook"
FLOW_URL = "shopify-flow:flowTriggerReceive"  # shown in the log and the admin; never fetched


def enable_flow(session: Session, shop_id: int, keys: tuple[str, ...]) -> EventEndpoint:
    """Send the shop's events to Shopify Flow too (its trigger extensions); once per shop, enabling it again."""
    found = session.scalars(
        select(EventEndpoint).where(EventEndpoint.shop_id == shop_id, EventEndpoint.kind == FLOW).with_for_update()
    ).first()
    if found is None:
        found = EventEndpoint(
            shop_id=shop_id, kind=FLOW, url=FLOW_URL, secret=crypto.encrypt("", keys), created_at=utcnow(),
            description="Shopify Flow triggers",
        )  # fmt: skip
        session.add(found)
        session.flush()
        return found
    found.disabled_at = found.disabled_reason = found.failing_since = None
    return found


def secret_of(endpoint: EventEndpoint, keys: tuple[str, ...]) -> str:
    return crypto.decrypt(endpoint.secret, keys)


def endpoints(session: Session, shop_id: int) -> list[EventEndpoint]:
    return list(
        session.scalars(select(EventEndpoint).where(EventEndpoint.shop_id == shop_id).order_by(EventEndpoint.id))
    )


def get(session: Session, shop_id: int, endpoint_id: int, *, lock: bool = False) -> EventEndpoint:
    query = select(EventEndpoint).where(EventEndpoint.shop_id == shop_id, EventEndpoint.id == endpoint_id)
    found = session.scalars(query.with_for_update() if lock else query).one_or_none()
    if found is None:
        raise NotFound(f"no endpoint {endpoint_id} in this shop")
    return found


def disable(session: Session, endpoint: EventEndpoint, reason: str) -> None:
    if endpoint.disabled_at is None:
        endpoint.disabled_at = utcnow()
        endpoint.disabled_reason = reason[:500]


def enable(session: Session, shop_id: int, endpoint_id: int) -> EventEndpoint:
    """Turn a disabled endpoint back on; its failure clock starts again."""
    endpoint = get(session, shop_id, endpoint_id, lock=True)
    endpoint.disabled_at = None
    endpoint.disabled_reason = None
    endpoint.failing_since = None
    return endpoint


def delete(session: Session, shop_id: int, endpoint_id: int) -> None:
    session.delete(get(session, shop_id, endpoint_id, lock=True))


def to_json(endpoint: EventEndpoint) -> dict[str, Any]:
    """An endpoint as the admin sees it: never its secret."""
    return {
        "id": endpoint.id,
        "kind": endpoint.kind or WEBHOOK,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "description": endpoint.description,
        "created_at": endpoint.created_at.isoformat(),
        "active": endpoint.disabled_at is None,
        "disabled_at": endpoint.disabled_at.isoformat() if endpoint.disabled_at else None,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": endpoint.failing_since.isoformat() if endpoint.failing_since else None,
        "last_success_at": endpoint.last_success_at.isoformat() if endpoint.last_success_at else None,
    }
