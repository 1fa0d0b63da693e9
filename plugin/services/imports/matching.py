"""Pending rows matched to the shop's customers through its Admin API: batched, paced, and scoped to the shop."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from plugin import platforms
from plugin.config import Settings
from plugin.db import transaction
from plugin.models import Shop
from plugin.platforms.base import AdminClient
from plugin.services import accrual
from plugin.services.imports import pending
from plugin.services.imports.tables import MATCHED, PENDING, ImportRow

PER_CALL = 50  # customers asked about in one GraphQL call
PAUSE_SECONDS = 0.5  # between calls, so an import leaves the shop's rate-limit bucket to the rest of the app

ClientFactory = Callable[[Settings, Shop], AdminClient]


@dataclass
class MatchReport:
    asked: int = 0
    matched: int = 0
    points: int = 0
    calls: int = 0

    def to_json(self) -> dict[str, int]:
        return {"asked": self.asked, "matched": self.matched, "points": self.points, "calls": self.calls}


def match(
    settings: Settings,
    shop_id: int,
    batch_id: int | None = None,
    *,
    client_factory: ClientFactory | None = None,
    limit: int = 10_000,
    per_call: int = PER_CALL,
    pause: float = PAUSE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> MatchReport:
    """Ask the shop about up to `limit` pending rows; members found are enrolled and get their opening balance.

    Rows the shop does not know stay pending: they post when the shopper first orders.
    """
    report = MatchReport()
    cursor = 0
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, shop_id)
        platform = platforms.for_shop(shop)
        client = (client_factory or platforms.admin_client)(settings, shop)
    while report.asked < limit:
        with transaction(settings.database_url) as session:
            query = (
                select(ImportRow.id, ImportRow.customer_id, ImportRow.email)
                .where(ImportRow.shop_id == shop_id, ImportRow.status == PENDING, ImportRow.id > cursor)
                .order_by(ImportRow.id)
                .limit(min(per_call, limit - report.asked))
            )
            if batch_id is not None:
                query = query.where(ImportRow.batch_id == batch_id)
            rows = session.execute(query).all()
        if not rows:
            break
        cursor = rows[-1].id
        report.asked += len(rows)
        ids = [r.customer_id for r in rows if r.customer_id is not None]
        emails = [r.email for r in rows if r.customer_id is None and r.email]
        found, calls = platform.find_customers(client, ids, emails, lambda: sleep(pause))
        report.calls += calls
        with transaction(settings.database_url) as session:
            for customer in found:
                # A new member's enrolment claims their rows itself; an existing one's are claimed here.
                member_id = accrual.enrol(session, shop_id, customer)
                pending.claim(session, shop_id, member_id, customer.customer_id, customer.email)
            matched, points = session.execute(
                select(func.count(ImportRow.id), func.coalesce(func.sum(ImportRow.points), 0)).where(
                    ImportRow.shop_id == shop_id,
                    ImportRow.id.in_([r.id for r in rows]),
                    ImportRow.status == MATCHED,
                )
            ).one()
            report.matched += matched
            report.points += int(points)
        sleep(pause)
    return report
