"""A shop's earning rule set: read it, save a new version (validated, per-field errors), read an old version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.models import RuleSetVersion, Shop, utcnow
from plugin.programme import rules as earning_rules
from plugin.services import products


def current(shop: Shop) -> dict[str, Any]:
    """The shop's rule set as stored, with its version (0 and no rules before the first save)."""
    data = shop.rules or {
        "time_zone": "UTC",
        "campaign_stack_cap": str(earning_rules.ruleset.DEFAULT_STACK_CAP),
        "rules": [],
    }
    return {"version": shop.rules_version, **data}


def validate(session: Session, shop_id: int, data: Any) -> dict[str, Any]:
    """Check a proposed rule set against the rules' schemas and the shop's known collections."""
    names_collections = isinstance(data, dict) and any(
        isinstance(rule, dict) and isinstance(rule.get("match"), dict) and rule["match"].get("collections")
        for rule in data.get("rules") or () if isinstance(data.get("rules"), list)
    )  # fmt: skip
    known = products.known_collections(session, shop_id) if names_collections else None
    return earning_rules.validate_rule_set(data, known)


def save(session: Session, shop: Shop, data: Any, actor: str) -> dict[str, Any]:
    """Validate and store the rule set as the shop's next version; orders already paid keep their lots."""
    clean = validate(session, shop.id, data)
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
