"""Many rows at once for the plan and index tests, written by PostgreSQL's generate_series rather than Python, and
the table state those tests rely on."""

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


def never_analysed(executor, *tables: str) -> bool:
    """Whether every one of `tables` is as a fresh server leaves it: never analysed, by hand or by autovacuum."""
    return executor.execute(
        text(
            "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = 'public' AND relname = ANY(:tables)"
            " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
        ),
        {"tables": list(tables)},
    ).scalar() == len(tables)
