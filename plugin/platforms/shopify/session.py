"""Shopify session tokens (App Bridge): the JWT an embedded admin page sends with every API call."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlparse

import jwt

from plugin.platforms.shopify.adapter import is_valid_shop_domain

LEEWAY_SECONDS = 10  # clock skew Shopify's own libraries allow
REQUIRED_CLAIMS = ["iss", "dest", "aud", "sub", "exp", "nbf"]


class SessionTokenError(Exception):
    """The token is missing, expired, for another app, forged, or names two different shops."""


@dataclass(frozen=True)
class StaffSession:
    shop_domain: str
    user_id: str


def verify(token: str, api_key: str, secrets: Iterable[str]) -> StaffSession:
    """Check signature (HS256, app secret), audience, exp/nbf with leeway, and that iss and dest name one shop."""
    if not token:
        raise SessionTokenError("no session token")
    tried = False
    for secret in secrets:
        tried = True
        try:
            claims = jwt.decode(
                token,
                secret,
                algorithms=["HS256"],
                audience=api_key,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidSignatureError:
            continue  # perhaps signed with the other secret during a rotation
        except jwt.PyJWTError as error:
            raise SessionTokenError(f"invalid session token: {error}") from None
        dest, issuer = urlparse(str(claims["dest"])), urlparse(str(claims["iss"]))
        shop = dest.hostname or ""
        if not is_valid_shop_domain(shop) or dest.scheme != "https":
            raise SessionTokenError("the token's dest is not a shop")
        if issuer.hostname != shop or issuer.scheme != "https" or issuer.path.rstrip("/") != "/admin":
            raise SessionTokenError("the token's iss and dest name different shops")
        return StaffSession(shop, str(claims["sub"]))
    raise SessionTokenError("the session token's signature does not match" if tried else "no secret configured")
