"""Many rows at once for the plan and index tests, written by PostgreSQL's generate_series rather than Python."""

from __future__ import annotations

from sqlalchemy import text


def insert_members(connection, shop: int, count: int, emails: bool = False) -> list[int]:
    """Enrol `count` members with a zero balance, customers 700001 onwards (clear of the builders' ids), each with
    an email if `emails`; returns the shop's member ids in id order."""
    email = "'shopper' || g || '@example.com'" if emails else "NULL"
    connection.execute(
        text(
            "INSERT INTO members (shop_id, customer_id, email, balance, enrolled_at)"
            f" SELECT :shop, 700000 + g, {email}, 0, now() FROM generate_series(1, :members) g"
        ),
        {"shop": shop, "members": count},
    )
    return list(connection.scalars(text("SELECT id FROM members WHERE shop_id = :shop ORDER BY id"), {"shop": shop}))
