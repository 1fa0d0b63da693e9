"""Shopify OAuth: the query-string HMAC, the authorize URL, and the token endpoint (exchange and refresh)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

import requests

from plugin.models import utcnow

TIMEOUT = (3.05, 10)


class TokenRequestFailed(Exception):
    """The shop refused to issue a token (a reused or expired code, a revoked refresh token...)."""


@dataclass(frozen=True)
class TokenGrant:
    access_token: str
    scope: str
    expires_at: datetime | None
    refresh_token: str | None
    refresh_expires_at: datetime | None


def query_signature(params: Iterable[tuple[str, str]], secret: str) -> str:
    """hex HMAC-SHA256 of the sorted `key=value` pairs joined with `&`, without `hmac` and `signature`."""
    message = "&".join(sorted(f"{k}={v}" for k, v in params if k not in ("hmac", "signature")))
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_query(params: list[tuple[str, str]], secrets: Iterable[str]) -> bool:
    given = [v for k, v in params if k == "hmac"]
    if len(given) != 1:
        return False
    matches = [hmac.compare_digest(query_signature(params, s).encode(), given[0].encode()) for s in secrets]
    return any(matches)


def authorize_url(shop: str, api_key: str, scopes: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"client_id": api_key, "scope": scopes, "redirect_uri": redirect_uri, "state": state})
    return f"https://{shop}/admin/oauth/authorize?{query}"


def token_endpoint(shop: str, base_url: str) -> str:
    return f"{base_url.rstrip('/') if base_url else f'https://{shop}'}/admin/oauth/access_token"


def exchange_code(
    shop: str, code: str, api_key: str, secret: str, base_url: str = "", http: requests.Session | None = None
) -> TokenGrant:
    """Trade the callback's code for an expiring offline token."""
    body = {"client_id": api_key, "client_secret": secret, "code": code, "expiring": 1}
    return _grant((http or requests).post(token_endpoint(shop, base_url), json=body, timeout=TIMEOUT))


def refresh_token(
    shop: str, refresh: str, api_key: str, secret: str, base_url: str = "", http: requests.Session | None = None
) -> TokenGrant:
    body = {"client_id": api_key, "client_secret": secret, "grant_type": "refresh_token", "refresh_token": refresh}
    return _grant((http or requests).post(token_endpoint(shop, base_url), json=body, timeout=TIMEOUT))


def _grant(response: requests.Response) -> TokenGrant:
    if response.status_code != 200:
        raise TokenRequestFailed(f"HTTP {response.status_code}: {response.text[:300]}")
    data = response.json()
    if not data.get("access_token"):
        raise TokenRequestFailed("no access_token in the answer")
    now = utcnow()

    def later(seconds) -> datetime | None:
        return now + timedelta(seconds=int(seconds)) if seconds else None

    return TokenGrant(
        access_token=data["access_token"],
        scope=data.get("scope", ""),
        expires_at=later(data.get("expires_in")),
        refresh_token=data.get("refresh_token"),
        refresh_expires_at=later(data.get("refresh_token_expires_in")),
    )
