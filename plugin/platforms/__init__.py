"""The platform registry: the core finds a shop's platform here by name, and reaches it only through it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from plugin.platforms.base import AdminClient, Platform

if TYPE_CHECKING:
    from plugin.config import Settings
    from plugin.models import Shop

DEFAULT = "shopify"
_PLATFORMS: dict[str, Platform] = {}


class UnknownPlatform(LookupError):
    """A shop or delivery names a platform that no adapter is registered for."""


def register(platform: Platform) -> Platform:
    if not isinstance(platform, Platform):  # checks the members are there, so a half-built adapter fails early
        raise TypeError(f"{platform!r} does not provide the Platform protocol")
    _PLATFORMS[platform.name] = platform
    return platform


def get(name: str) -> Platform:
    try:
        return _PLATFORMS[name]
    except KeyError:
        raise UnknownPlatform(f"no platform {name!r} is registered") from None


def names() -> list[str]:
    return sorted(_PLATFORMS)


def for_shop(shop: Shop) -> Platform:
    return get(shop.platform or DEFAULT)


def admin_client(settings: Settings, shop: Shop) -> AdminClient:
    """The Admin API client factory services and jobs use: the shop's own platform makes it."""
    return for_shop(shop).admin_client(settings, shop)


# The platforms this app ships. A new one: add plugin/platforms/<name>/ and one line here.
from plugin.platforms.shopify.platform import SHOPIFY  # noqa: E402  (its modules import plugin.platforms.base)

register(SHOPIFY)
