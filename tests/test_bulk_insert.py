"""plugin/bulk_insert.py writes the same rows, in the same order, as SQLAlchemy's multi-row INSERT it replaces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import null, select
from sqlalchemy.exc import DBAPIError

from plugin.bulk_insert import insert_rows
from plugin.db import engine_for, insert_for, transaction
from plugin.models import Order
from plugin.services import shops

ORDERS = Order.__table__
WRITTEN = [column for column in ORDERS.c if column.name not in ("id", "shop_id", "order_id")]


@pytest.fixture
def two_shops(settings, shop) -> tuple[int, int]:
    if engine_for(settings.database_url).dialect.name != "postgresql":
        pytest.skip("the unnest form is PostgreSQL's; SQLite keeps SQLAlchemy's multi-row INSERT")
    with transaction(settings.database_url) as session:
        other = shops.install(session, "other-shop.myshopify.com", None, settings.encryption_keys).id
    return shop, other


def orders(shop_id: int) -> list[dict]:
    """Rows as batch_accrual makes them: a JSON lot, SQL NULL (null()) and JSON null (None), times, money."""
    at = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    rows = []
    for n, (lot, facts, sales) in enumerate(
        [({"points": 5, "lines": [1, 2]}, None, Decimal("12.30")), (null(), null(), None), (None, {"a": "é"}, None)]
    ):
        rows.append(
            {"shop_id": shop_id, "order_id": 100 - n, "name": f"#{n}" if n != 1 else None, "member_id": None,
             "created_seen": n == 2, "paid_at": at + timedelta(minutes=n), "cancelled_at": None, "lot": lot,
             "points_held": n, "support_delta": 0, "unpaid_reversal": 0, "expired_points": 0,
             "available_at": None if n else at, "updated_at": at, "facts": facts, "sales": sales,
             "reward_code": None}
        )  # fmt: skip
    return rows


def test_the_same_rows_in_the_same_order_as_sqlalchemys_insert(settings, two_shops):
    ours, theirs = two_shops
    with transaction(settings.database_url) as session:
        returned = insert_rows(session, ORDERS, orders(ours), ("shop_id", "order_id"), ("order_id",))
        statement = insert_for(session)(ORDERS).on_conflict_do_nothing(index_elements=["shop_id", "order_id"])
        session.execute(statement, orders(theirs))
    assert [row.order_id for row in returned] == [100, 99, 98]  # RETURNING in list order
    with transaction(settings.database_url) as session:
        written = {
            shop_id: session.execute(
                select(ORDERS.c.order_id, *WRITTEN, ORDERS.c.lot.is_(None), ORDERS.c.facts.is_(None))
                .where(ORDERS.c.shop_id == shop_id)
                .order_by(ORDERS.c.id)
            ).all()
            for shop_id in two_shops
        }
    assert [row.order_id for row in written[ours]] == [100, 99, 98]  # ids given in list order
    assert written[ours] == written[theirs]
    # null() is SQL NULL, None is JSON null (SQLAlchemy's JSON type), as before
    assert [(row[-2], row[-1]) for row in written[ours]] == [(False, False), (True, True), (False, False)]


def test_a_row_that_exists_is_skipped_and_not_returned(settings, two_shops):
    ours, _ = two_shops
    with transaction(settings.database_url) as session:
        insert_rows(session, ORDERS, orders(ours)[1:2], ("shop_id", "order_id"))
    with transaction(settings.database_url) as session:
        returned = insert_rows(session, ORDERS, orders(ours), ("shop_id", "order_id"), ("order_id",))
    assert [row.order_id for row in returned] == [100, 98]


def test_a_string_too_long_for_its_column_is_refused_not_cut(settings, two_shops):
    ours, _ = two_shops
    rows = orders(ours)
    rows[0]["name"] = "x" * 65  # orders.name is varchar(64)
    with pytest.raises(DBAPIError, match="too long"), transaction(settings.database_url) as session:
        insert_rows(session, ORDERS, rows, ("shop_id", "order_id"))
