"""A shop's tier programme: read it, save a new version (validated, per-field errors), apply it to every member."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from plugin.db import transaction
from plugin.models import Member, Product, Shop, TierSetVersion, utcnow
from plugin.programme.tier_settings import validate_tiers
from plugin.services import tiers
from plugin.services.errors import Invalid

APPLY_BATCH = 500  # members per transaction when a new version is applied: nothing pauses meanwhile


def current(shop: Shop) -> dict[str, Any]:
    """The programme as stored, with its version (0 and no tiers before the first save)."""
    data = shop.tiers or {"metric": "spend", "period": "calendar_year", "grace_days": 0, "tiers": [], "paid": None}
    return {"version": shop.tiers_version, **data}


def validate(session: Session, shop_id: int, data: Any) -> dict[str, Any]:
    """Check a proposed programme; a paid-membership marker must match a product the shop has (in the cache)."""
    try:
        clean = validate_tiers(data)
    except ValidationError as error:
        raise Invalid("the tier programme is not valid", error.normalized_messages()) from error
    paid = clean.get("paid")
    if paid:
        problems = _unmatched_markers(session, shop_id, paid)
        if problems:
            raise Invalid("the tier programme is not valid", {"paid": problems})
    return clean


def _unmatched_markers(session: Session, shop_id: int, paid: dict[str, Any]) -> dict[str, list[str]]:
    rows = session.execute(
        select(Product.tags, Product.skus).where(Product.shop_id == shop_id, Product.deleted.is_(False))
    ).all()
    known_tags = {str(t).casefold() for tags, _ in rows for t in tags or ()}
    known_skus = {s for _, skus in rows for s in skus or ()}
    problems: dict[str, list[str]] = {}
    missing_skus = [s for s in paid["skus"] if s not in known_skus]
    missing_tags = [t for t in paid["product_tags"] if t.casefold() not in known_tags]
    if missing_skus:
        problems["skus"] = [f"no product of the shop has the SKU {s!r}" for s in missing_skus]
    if missing_tags:
        problems["product_tags"] = [f"no product of the shop has the tag {t!r}" for t in missing_tags]
    return problems


def save(session: Session, shop: Shop, data: Any, actor: str) -> dict[str, Any]:
    """Validate and store the programme as the shop's next version; members move when it is applied."""
    clean = validate(session, shop.id, data)
    locked = session.execute(select(Shop).where(Shop.id == shop.id).with_for_update()).scalar_one()
    version = locked.tiers_version + 1
    session.add(TierSetVersion(shop_id=shop.id, version=version, config=clean, actor=actor[:120], created_at=utcnow()))
    locked.tiers = clean
    locked.tiers_version = version
    session.flush()
    return {"version": version, **clean}


def apply(database_url: str, shop_id: int) -> int:
    """Recompute every member of the shop under its current programme, a batch per transaction; returns moves."""
    after = 0
    moved = 0
    while True:
        with transaction(database_url) as session:
            shop = session.execute(select(Shop).where(Shop.id == shop_id)).scalar_one()
            ids = session.scalars(
                select(Member.id)
                .where(Member.shop_id == shop_id, Member.id > after)
                .order_by(Member.id)
                .limit(APPLY_BATCH)
            ).all()
            if not ids:
                return moved
            for member_id in ids:
                before = session.execute(
                    select(Member.tier).where(Member.shop_id == shop_id, Member.id == member_id)
                ).scalar_one()
                state = tiers.recompute(session, shop, member_id, cause=f"tier programme v{shop.tiers_version}")
                moved += state is not None and state.tier_id != before
            after = ids[-1]


def history(session: Session, shop_id: int, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(TierSetVersion)
        .where(TierSetVersion.shop_id == shop_id)
        .order_by(TierSetVersion.version.desc())
        .limit(limit)
    )
    return [
        {"version": r.version, "actor": r.actor, "created_at": r.created_at.isoformat(), "config": r.config}
        for r in rows
    ]


def with_counts(session: Session, shop: Shop) -> dict[str, Any]:
    """The programme as stored, each tier with its member count (what the admin page and the CLI list)."""
    counts = tiers.counts(session, shop.id)
    data = current(shop)
    return {
        **data,
        "tiers": [{**tier, "members": counts.get(tier["id"], 0)} for tier in data["tiers"]],
        "members_without_tier": counts.get(None, 0),
    }
