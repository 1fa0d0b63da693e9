"""Per-shop keys that sign the merchant's server-to-server action calls (HMAC-SHA256), and their verification.

The signature is hex HMAC-SHA256(secret, "<timestamp>.<raw body>"), with the timestamp in Unix seconds; a
timestamp more than five minutes from our clock is refused, so a captured request cannot be replayed later
(and within those minutes the idempotency key makes a replay post nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import select

from plugin import crypto
from plugin.models import ActionKey, utcnow
from plugin.programme.text import has_control
from plugin.services.errors import Invalid, NotFound

TOLERANCE_SECONDS = 300
MAX_KEYS = 20


def create(session, shop_id: int, name: str, encryption_keys: tuple[str, ...]) -> dict[str, Any]:
    """A new key; its secret is shown in this answer only (stored encrypted, never listed again)."""
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 120:
        raise Invalid("name the key", {"name": ["1 to 120 characters"]})
    if has_control(name):  # NUL would reach the text column and fail there (a 500)
        raise Invalid("name the key", {"name": ["must not contain control characters"]})
    live = session.execute(
        select(ActionKey.key_id).where(ActionKey.shop_id == shop_id, ActionKey.revoked_at.is_(None))
    ).all()
    if len(live) >= MAX_KEYS:
        raise Invalid("too many keys", {"name": [f"at most {MAX_KEYS} live keys: revoke one first"]})
    key_id = f"lak_{secrets.token_hex(6)}"
    secret = f"lsec_{secrets.token_urlsafe(32)}"
    row = ActionKey(
        shop_id=shop_id, key_id=key_id, name=name.strip(), secret=crypto.encrypt(secret, encryption_keys),
        created_at=utcnow(),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return {**describe(row), "secret": secret}


def describe(row: ActionKey) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


def listed(session, shop_id: int) -> list[dict[str, Any]]:
    rows = session.scalars(select(ActionKey).where(ActionKey.shop_id == shop_id).order_by(ActionKey.created_at))
    return [describe(row) for row in rows]


def revoke(session, shop_id: int, key_id: str) -> dict[str, Any]:
    # A NUL cannot reach the key_id column's query (a 500), and no key id is longer than 40 characters.
    row = None if has_control(key_id) or len(key_id) > 40 else session.get(ActionKey, (shop_id, key_id))
    if row is None:
        raise NotFound(f"no key {key_id[:40]!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return describe(row)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(
    session,
    shop_id: int,
    key_id: str | None,
    timestamp: str | None,
    given: str | None,
    body: bytes,
    encryption_keys: tuple[str, ...],
    now: datetime | None = None,
) -> bool:
    """Whether the request was signed by a live key of this shop, within the time tolerance (constant time)."""
    if not key_id or not timestamp or not given or not timestamp.isdigit() or len(timestamp) > 12:
        return False
    now = now or utcnow()
    if abs(now.timestamp() - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    row = session.get(ActionKey, (shop_id, key_id[:40]))
    if row is None or row.revoked_at is not None:
        return False
    expected = signature(crypto.decrypt(row.secret, encryption_keys), timestamp, body)
    return hmac.compare_digest(expected.encode(), given.strip().lower().encode())
