"""A shop's earning rule set: read it, save a new version (validated, per-field errors), read an old version."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import RuleSetVersion, Shop, utcnow
from plugin.platforms.base import AdminAPIError, AdminClient
from plugin.programme import rules as earning_rules
from plugin.services import products

CHECK_ATTEMPTS = 3
CHECK_SECONDS = 10.0
ClientFactory = Callable[[Settings, Shop], AdminClient]


def current(shop: Shop) -> dict[str, Any]:
    """The shop's rule set as stored, with its version (0 and no rules before the first save)."""
    data = shop.rules or {
        "time_zone": "UTC",
        "campaign_stack_cap": str(earning_rules.ruleset.DEFAULT_STACK_CAP),
        "rules": [],
    }
    return {"version": shop.rules_version, **data}


def _named_collections(data: Any) -> set[str]:
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        return set()
    return {
        str(name)
        for rule in data["rules"][: earning_rules.MAX_RULES]
        if isinstance(rule, dict) and isinstance(rule.get("match"), dict)
        and isinstance(rule["match"].get("collections"), list)
        for name in rule["match"]["collections"][:100]
        if isinstance(name, str | int)
    }  # fmt: skip


def validate(session: Session, shop_id: int, data: Any, confirmed: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Check a proposed rule set against the rules' schemas and the shop's collections: those its cached
    products belong to, plus `confirmed` (the ones the shop's Admin API said it has, see confirm_collections)."""
    names = _named_collections(data)
    known = products.known_collections(session, shop_id) | confirmed if names else None
    return earning_rules.validate_rule_set(data, known)


def confirm_collections(
    settings: Settings, shop_id: int, data: Any, client_factory: ClientFactory = platforms.admin_client
) -> frozenset[str]:
    """The collections the rule set names that the cache does not know yet but the shop's Admin API has.

    Asked before the saving transaction (no lock held while the shop answers). A shop without a token cannot be
    asked: its rule set is then checked against the cache alone. AdminAPIUnavailable passes up (a 503 to retry).
    """
    names = _named_collections(data)
    if not names:
        return frozenset()
    with transaction(settings.database_url) as session:
        unknown = names - products.known_collections(session, shop_id)
        if not unknown:
            return frozenset()
        shop = session.get(Shop, shop_id)
        platform = platforms.for_shop(shop)
        try:
            client = client_factory(settings, shop)
        except AdminAPIError:
            return frozenset()  # no token yet (a shop set up by the CLI before install)
    client.max_attempts = min(client.max_attempts, CHECK_ATTEMPTS)  # staff wait on this answer
    client.deadline = time.monotonic() + CHECK_SECONDS
    return frozenset(platform.existing_collections(client, unknown))


def save(
    session: Session, shop: Shop, data: Any, actor: str, confirmed: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Validate and store the rule set as the shop's next version; orders already paid keep their lots."""
    clean = validate(session, shop.id, data, confirmed)
    locked = session.execute(select(Shop).where(Shop.id == shop.id).with_for_update()).scalar_one()
    version = locked.rules_version + 1
    session.add(RuleSetVersion(shop_id=shop.id, version=version, rules=clean, actor=actor[:120], created_at=utcnow()))
    locked.rules = clean
    locked.rules_version = version
    session.flush()
    return {"version": version, **clean}


def version(session: Session, shop_id: int, number: int) -> earning_rules.RuleSet:
    """An earlier version of the shop's rules (version 0 is the shop's base rate alone)."""
    if number == 0:
        return earning_rules.DEFAULT_RULE_SET
    data = session.execute(
        select(RuleSetVersion.rules).where(RuleSetVersion.shop_id == shop_id, RuleSetVersion.version == number)
    ).scalar_one()
    return earning_rules.rule_set(data, number)


def history(session: Session, shop_id: int, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(RuleSetVersion)
        .where(RuleSetVersion.shop_id == shop_id)
        .order_by(RuleSetVersion.version.desc())
        .limit(limit)
    )
    return [
        {"version": r.version, "actor": r.actor, "created_at": r.created_at.isoformat(), "rules": r.rules} for r in rows
    ]
