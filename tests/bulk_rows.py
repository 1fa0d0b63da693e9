"""Many rows at once for the plan and index tests, written by PostgreSQL's generate_series rather than Python."""

from __future__ import annotations

from sqlalchemy import text


def insert_members(connection, shop: int, count: int) -> None:
    """Enrol `count` members with a zero balance, customers 700001 onwards (clear of the builders' ids)."""
    connection.execute(
        text(
            "INSERT INTO members (shop_id, customer_id, balance, enrolled_at)"
            " SELECT :shop, 700000 + g, 0, now() FROM generate_series(1, :members) g"
        ),
        {"shop": shop, "members": count},
    )
