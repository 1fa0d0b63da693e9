"""PostgreSQL's AFTER INSERT triggers on postings and orders run once per statement (decision 0050), and a
multi-row INSERT still moves every balance, writes every day delta and recounts every member-month exactly.

PostgreSQL only: SQLite (the embedded demo) keeps its row triggers, which tests/test_ledger_database.py covers.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from plugin.db import transaction
from plugin.models import Member, Shop
from tests.test_reports_order_rollup import ROLLUP, ROLLUP_FROM_ORDERS

# Calls of each PL/pgSQL function not yet flushed to the shared statistics (track_functions is set for the
# transaction only: a superuser's setting, as the tests connect). Nothing is flushed inside a transaction, so
# the difference across a statement is that statement's calls.
CALLS = text("SELECT funcname, calls FROM pg_stat_xact_user_functions WHERE funcname <> 'widget_touch'")


def calls_of(session, statement, params: dict) -> dict[str, int]:
    """Each PL/pgSQL function's calls (widget_touch's left out) made by one statement."""
    session.execute(text("SET LOCAL track_functions = 'pl'"))
    before = dict(session.execute(CALLS).all())
    session.execute(statement, params)
    after = session.execute(CALLS).all()
    return {name: count - before.get(name, 0) for name, count in after if count != before.get(name, 0)}


POSTINGS = text(
    "INSERT INTO postings (shop_id, member_id, kind, points, balance_after, source_type, source_id, rule_version,"
    " idempotency_key, actor, created_at)"
    " SELECT :shop, m, 'bonus', p, 0, 'support', k, 'raw-sql', k, 'raw-sql', '2025-03-31T23:30Z'"
    " FROM unnest(CAST(:members AS bigint[]), CAST(:points AS bigint[]), CAST(:keys AS text[])) AS r(m, p, k)"
    " ON CONFLICT (shop_id, idempotency_key) DO NOTHING"
)

ORDERS = text(
    "INSERT INTO orders (shop_id, order_id, member_id, created_seen, paid_at, sales, points_held, support_delta,"
    " unpaid_reversal, expired_points, updated_at)"
    " SELECT :shop, o, m, true, p, s, 0, 0, 0, 0, now()"
    " FROM unnest(CAST(:orders AS bigint[]), CAST(:members AS bigint[]), CAST(:paid AS timestamptz[]),"
    " CAST(:sales AS numeric[])) AS r(o, m, p, s)"
)


@pytest.fixture
def members(settings, shop) -> list[int]:
    """Three members of the test shop, in Paris, with nothing posted yet; their ids."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's statement-level triggers; SQLite keeps its row triggers")
    with transaction(settings.database_url) as session:
        session.get(Shop, shop).time_zone = "Europe/Paris"
        rows = [Member(shop_id=shop, customer_id=900 + n) for n in range(3)]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def test_one_statement_of_postings_moves_each_balance_with_one_call(settings, shop, members):
    a, b, c = members
    with transaction(settings.database_url) as session:
        session.execute(POSTINGS, {"shop": shop, "members": [a], "points": [5], "keys": ["before"]})
    with transaction(settings.database_url) as session:
        calls = calls_of(
            session,
            POSTINGS,  # the key "before" exists: that row is skipped and moves nothing
            {"shop": shop, "members": [a, b, c, a], "points": [100, 20, 3, 7], "keys": ["x1", "x2", "x3", "before"]},
        )
    # The BEFORE trigger sets each row's balance_after, so it runs per row (the skipped one too); the rest once.
    assert calls == {
        "postings_set_balance_after": 4,
        "postings_moved": 1,
        "postings_day_deltas": 1,
        "widget_touched_member_rows": 1,
    }
    with transaction(settings.database_url) as session:
        balances = session.execute(
            text("SELECT id, balance FROM members WHERE shop_id = :s ORDER BY id"), {"s": shop}
        ).all()
        assert balances == [(a, 105), (b, 20), (c, 3)]
        after = session.execute(
            text("SELECT idempotency_key, balance_after FROM postings WHERE shop_id = :s ORDER BY id"), {"s": shop}
        ).all()
        assert after == [("before", 5), ("x1", 105), ("x2", 20), ("x3", 3)]
        # One delta per posting really inserted, on the shop's day (23:30 UTC on 31 March is April in Paris).
        deltas = session.execute(
            text("SELECT day::text, points FROM ledger_day_deltas WHERE shop_id = :s ORDER BY points"), {"s": shop}
        ).all()
        assert deltas == [("2025-04-01", 3), ("2025-04-01", 5), ("2025-04-01", 20), ("2025-04-01", 100)]


def test_two_postings_of_one_member_among_others_in_one_statement_are_refused(settings, shop, members):
    a, b, _ = members
    refused = pytest.raises(DBAPIError, match=f"one posting of member {b} per statement")
    with refused, transaction(settings.database_url) as session:
        session.execute(POSTINGS, {"shop": shop, "members": [a, b, b], "points": [1, 2, 3], "keys": list("xyz")})
    with transaction(settings.database_url) as session:
        assert session.execute(text("SELECT sum(balance) FROM members WHERE shop_id = :s"), {"s": shop}).scalar() == 0
        assert session.execute(text("SELECT count(*) FROM ledger_day_deltas")).scalar() == 0


def test_one_statement_of_paid_orders_recounts_each_member_month_with_one_call(settings, shop, members):
    a, b, c = members
    with transaction(settings.database_url) as session:
        session.execute(
            ORDERS, {"shop": shop, "orders": [1], "members": [a], "paid": ["2025-01-05T10:00Z"], "sales": ["1.00"]}
        )
    rows = {
        "orders": [2, 3, 4, 5, 6, 7],
        "members": [a, a, b, b, c, None],  # the last has no member: it joins no month
        # a: January twice (one before this statement); b: March, and April in Paris; c: unpaid
        "paid": ["2025-01-20T10:00Z", "2025-01-31T23:30Z", "2025-03-02T10:00Z", "2025-03-31T23:30Z", None,
                 "2025-01-02T10:00Z"],
        "sales": ["10.00", "2.50", "4.00", "6.00", "9.00", "8.00"],
    }  # fmt: skip
    with transaction(settings.database_url) as session:
        calls = calls_of(session, ORDERS, {"shop": shop, **rows})
    assert calls == {"orders_member_months_inserted": 1}
    with transaction(settings.database_url) as session:
        rollup = session.execute(ROLLUP, {"shop": shop}).all()
        assert rollup == session.execute(ROLLUP_FROM_ORDERS, {"shop": shop}).all()
        # 23:30 UTC on 31 January is February in Paris; 23:30 UTC on 31 March, April.
        assert [(member, month.isoformat(), count, sales) for member, month, count, sales, *_ in rollup] == [
            (a, "2025-01-01", 2, Decimal("11.00")),
            (a, "2025-02-01", 1, Decimal("2.50")),
            (b, "2025-03-01", 1, Decimal("4.00")),
            (b, "2025-04-01", 1, Decimal("6.00")),
        ]
