"""plugin/bulk_insert.py writes the same rows, in the same order, as SQLAlchemy's multi-row INSERT it replaces."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    cast,
    insert,
    null,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError

from plugin.bulk_insert import insert_rows
from plugin.db import engine_for, insert_for, transaction
from plugin.models import BigId, Json, Order, UTCDateTime
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


# Every column type the app's tables use, on a table of its own: the plain ones go as the array's text, the others
# binary; each must store what SQLAlchemy's own executemany stores.
EVERY_TYPE = Table(
    "bulk_every_type",
    MetaData(),
    Column("id", BigId, primary_key=True),
    Column("side", String(8)),
    Column("n", Integer),
    Column("big", BigInteger),
    Column("whole", Integer),
    Column("small", SmallInteger),
    Column("flag", Boolean),
    Column("at", UTCDateTime),
    Column("day", Date),
    Column("money", Numeric(18, 2)),
    Column("rate", Numeric(18, 6)),
    Column("label", String(16)),
    Column("body", Text),
    Column("data", Json),
    Column("blob", LargeBinary),
    UniqueConstraint("side", "n"),
)
PARIS, INDIA, MARQUESAS = (
    ZoneInfo("Europe/Paris"),
    timezone(timedelta(hours=5, minutes=30)),
    ZoneInfo("Pacific/Marquesas"),
)
VALUES = [  # (big, whole, small, flag, at, day, money, rate, label, body, data, blob)
    (2**63 - 1, 2**31 - 1, 2**15 - 1, True, datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=PARIS), date(9999, 12, 31),
     Decimal("9999999999999999.99"), Decimal("0.000001"), 'a "b", {c}', "NULL", {"k": 'q"{,}'}, b"\x00\xff"),
    (-(2**63), -(2**31), -(2**15), False, datetime(1, 1, 1, tzinfo=UTC), date(1, 1, 1), Decimal("-0.01"),
     Decimal("-123456789012.123456"), "", "x\\y", [], b""),
    (0, -1, 0, False, datetime(9999, 12, 31, 10, 14, 59, 999999, tzinfo=UTC), date(2024, 2, 29), Decimal("-0"),
     Decimal("1E-6"), "NULL", " a ", None, None),
    (1, 0, 1, True, datetime(2026, 12, 6, 11, 0, 0, 1, tzinfo=MARQUESAS), date(2026, 12, 6), Decimal("1E+3"), 7,
     "é", "\n", null(), b"{1}"),
    (-1, 42, -1, True, datetime(2026, 10, 25, 2, 30, tzinfo=INDIA), date(2026, 10, 25), 5, Decimal("1.0000005"),
     "x", "", {"n": None}, b"NULL"),
    (None, None, None, None, None, None, None, None, None, None, null(), None),
]  # fmt: skip


def every_type_rows(side: str) -> list[dict]:
    names = [column.name for column in EVERY_TYPE.c][3:]
    return [{"side": side, "n": n, **dict(zip(names, values, strict=True))} for n, values in enumerate(VALUES)]


@pytest.fixture
def every_type(settings, two_shops) -> Iterator[Connection]:
    """A connection in a transaction with EVERY_TYPE created, rolled back afterwards (the run's database is shared)."""
    with engine_for(settings.database_url).connect() as connection, connection.begin() as outer:
        EVERY_TYPE.create(connection)
        yield connection
        outer.rollback()


def test_every_column_type_is_stored_as_sqlalchemys_executemany_stores_it(every_type):
    columns = [column for column in EVERY_TYPE.c][3:]
    # A zone of the session far from UTC: a timestamp sent without its offset would be read in it.
    every_type.execute(text("SET LOCAL TIME ZONE 'Pacific/Chatham'"))
    returned = insert_rows(every_type, EVERY_TYPE, every_type_rows("ours"), ("side", "n"), ("n", "at"))
    every_type.execute(insert(EVERY_TYPE), every_type_rows("theirs"))  # SQLAlchemy's executemany
    stored = {
        side: every_type.execute(
            select(*(cast(column, Text) for column in columns), EVERY_TYPE.c.data.is_(None))
            .where(EVERY_TYPE.c.side == side)
            .order_by(EVERY_TYPE.c.n)
        ).all()
        for side in ("ours", "theirs")
    }
    read = every_type.execute(
        select(EVERY_TYPE.c.at, EVERY_TYPE.c.money).where(EVERY_TYPE.c.side == "ours").order_by(EVERY_TYPE.c.n)
    ).all()
    assert len(stored["ours"]) == len(VALUES)
    for ours, theirs, values in zip(stored["ours"], stored["theirs"], VALUES, strict=True):
        assert ours == theirs, values
    # and the stored instants and amounts are the ones given (the text above is in the session's zone)
    assert [row.at for row in read] == [values[4] for values in VALUES]
    assert [row.money for row in read][:2] == [Decimal("9999999999999999.99"), Decimal("-0.01")]
    assert [row.at for row in returned] == [row.at for row in read] and [row.n for row in returned] == [*range(6)]
    assert [row[-1] for row in stored["ours"]] == [False, False, False, True, False, True]  # SQL NULL for null()


@pytest.mark.parametrize("column, value", [("big", "1,2"), ("whole", 1.5), ("money", "1},{2"), ("day", "2026-12-06"),
                                           ("flag", "t")])  # fmt: skip
def test_a_plain_columns_value_of_another_type_is_refused_not_spliced_into_the_array(every_type, column, value):
    rows = every_type_rows("ours")
    rows[1][column] = value
    with pytest.raises((TypeError, ValueError, AttributeError, ArithmeticError)):
        insert_rows(every_type, EVERY_TYPE, rows, ("side", "n"))
