"""Rewards' collections, products and variants checked against the shop's Admin API before settings are saved."""

from __future__ import annotations

import time
from typing import Any

from marshmallow import ValidationError

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop
from plugin.platforms.shopify import discounts
from plugin.platforms.shopify.admin import AdminAPIError
from plugin.programme.rewards import ITEM_PATTERNS, validate_catalogue
from plugin.services.redemption import ClientFactory

CHECK_ATTEMPTS = 3
CHECK_SECONDS = 10.0


def check(
    settings: Settings, shop_id: int, changes: Any, client_factory: ClientFactory = platforms.admin_client
) -> None:
    """Raise ValidationError, per reward and field, for ids the shop does not hold; no database lock is held
    while the shop answers. A shop without a token cannot be asked: its ids are checked by form only.
    AdminAPIUnavailable passes up (a 503 to retry): nothing is saved on a guess."""
    rewards = changes.get("rewards") if isinstance(changes, dict) else None
    if not isinstance(rewards, list):
        return
    wanted = _ids_by_place(rewards)
    if not wanted:
        return
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        try:
            client = client_factory(settings, shop)
        except AdminAPIError:
            return  # no token yet (a shop set up by the CLI before install): the form check is all we can do
    # Staff wait on this answer: a few quick tries, then a 503 to try again, not a minute of backing off.
    client.max_attempts = min(client.max_attempts, CHECK_ATTEMPTS)
    client.deadline = time.monotonic() + CHECK_SECONDS
    missing = discounts.missing_items(client, sorted({gid for _, _, gid in wanted}))
    errors: dict[int, dict[str, list[str]]] = {}
    for position, name, gid in wanted:
        if gid in missing:
            errors.setdefault(position, {}).setdefault(name, []).append(f"{gid} does not exist in the shop")
    if errors:
        raise ValidationError({"rewards": errors})


def _ids_by_place(rewards: list[Any]) -> list[tuple[int, str, str]]:
    """(position, field, id) of each id in a catalogue that is otherwise valid: bounded by the schema's limits."""
    try:
        clean = validate_catalogue(rewards)
    except ValidationError:
        return []  # update_settings refuses it, field by field, without asking the shop
    found = [(position, "variant_id", r["variant_id"]) for position, r in enumerate(clean) if r.get("variant_id")]
    return found + [
        (position, name, gid)
        for position, reward in enumerate(clean)
        for name in ITEM_PATTERNS
        for gid in reward.get(name, [])
    ]
