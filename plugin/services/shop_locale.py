"""The shop's language for explanations: set by the merchant (Settings, CLI) or read from the shop's primary locale."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError
from sqlalchemy.orm import Session

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable, AdminClient
from plugin.programme import explanations

log = logging.getLogger(__name__)

# A language and an optional region or script, as Shopify writes locales: "fr", "en-GB", "pt-BR", "zh-Hant-TW".
LOCALE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8}){0,2}$")


def describe(shop: Shop) -> dict[str, Any]:
    """The shop's locale, the catalogue language it reads in, and the languages the catalogue has."""
    return {
        "locale": shop.locale,
        "language": explanations.language(shop.locale),
        "languages": list(explanations.LOCALES),
    }


def set_locale(session: Session, shop: Shop, locale: Any) -> dict[str, Any]:
    """Store the shop's locale; a malformed one is refused per field. A language without a catalogue reads in
    English until one is added (the locale is kept, so it then reads in its own language)."""
    if not isinstance(locale, str) or not LOCALE.match(locale.strip()):
        raise ValidationError({"locale": ["must be a locale code such as en, fr or en-GB"]})
    shop.locale = locale.strip()
    session.flush()
    return describe(shop)


SCOPE = "read_locales"


def fetch(
    settings: Settings,
    shop_id: int,
    client_factory: Callable[[Settings, Shop], AdminClient] = platforms.admin_client,
    *,
    asked: bool = False,
) -> str | None:
    """Read the shop's primary locale from its platform and store it; returns it (None: left as it was).

    Called after install, where it asks only a shop that granted `read_locales` (an older install did not: it
    keeps its locale until the merchant sets one or re-authorises), and by `loyalty shops locale DOMAIN --fetch`
    (`asked`), which always asks. A shop that cannot be asked keeps its locale: explanations are still written,
    as data, and read in whichever language the shop has later.
    """
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        if shop is None or not shop.active:
            return None
        if not asked and SCOPE not in (shop.scopes or "").replace(" ", "").split(","):
            log.info("shop %s: no %s scope, locale left as %s", shop_id, SCOPE, shop.locale)
            return None
        platform = platforms.for_shop(shop)
        client = client_factory(settings, shop)
    try:
        locale = platform.primary_locale(client)
    except (AdminAPIError, AdminAPIUnavailable) as error:
        if asked:
            raise  # the person who asked is told why
        log.warning("shop %s: primary locale not read: %s", shop_id, error)
        return None
    if locale is None or not LOCALE.match(locale):
        return None
    with transaction(settings.database_url) as session:
        session.get(Shop, shop_id).locale = locale
    return locale
