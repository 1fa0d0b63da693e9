"""The period-end sweep: members whose tier is kept (or paid) only until a date that has passed are recomputed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from plugin.db import transaction
from plugin.models import Shop, utcnow
from plugin.services import tiers

BATCH = 500  # members per transaction


def any_due(database_url: str, now: datetime | None = None) -> bool:
    with transaction(database_url) as session:
        return bool(tiers.shops_with_expiries(session, now or utcnow()))


def run(database_url: str, now: datetime | None = None) -> int:
    """Recompute every due member of every shop, a batch per transaction; returns how many were recomputed."""
    now = now or utcnow()
    with transaction(database_url) as session:
        shop_ids = tiers.shops_with_expiries(session, now)
    done = 0
    for shop_id in shop_ids:
        while True:
            with transaction(database_url) as session:
                shop = session.execute(select(Shop).where(Shop.id == shop_id)).scalar_one()
                count = tiers.recompute_expired(session, shop, now, limit=BATCH)
            done += count
            if count < BATCH:
                break
    return done
