"""The import's own tables: one batch per file per shop, one row per data line of the file."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from plugin.models import Base, BigId, Json, UTCDateTime, utcnow

# Batch statuses: running (rows being read, resumable) -> done -> undone (real imports only).
RUNNING, DONE, UNDONE = "running", "done", "undone"
# Row statuses. matched: the member is known (and, unless a dry run, holds the opening balance);
# pending: no member yet, posts when one appears; invalid: reported in the error file, never posts;
# cancelled: a pending row of an undone batch; undone: a matched row whose opening balance was reversed.
# A dry run's rows are matched, unmatched (what would be pending) or invalid, and never post.
MATCHED, PENDING, INVALID, CANCELLED, UNDONE_ROW = "matched", "pending", "invalid", "cancelled", "undone"
UNMATCHED = "unmatched"


class ImportBatch(Base):
    """One CSV file imported (or checked, for a dry run) into one shop, with its progress and counts."""

    __tablename__ = "import_batches"
    __table_args__ = (
        # A shop's batches in order, on SQLite, whose primary key is `id` alone (decision 0004); PostgreSQL's primary
        # key (shop_id, id) is this index already (migration 0041 dropped its copy there).
        Index(None, "shop_id", "id").ddl_if(dialect="sqlite"),
        # The same file imported twice for real is the same batch, resumed: a retry never doubles.
        Index(
            "uq_import_batches_live_file",
            "shop_id",
            "file_sha256",
            unique=True,
            postgresql_where=text("NOT dry_run AND status <> 'undone'"),
            sqlite_where=text("dry_run = 0 AND status <> 'undone'"),
        ),
        PrimaryKeyConstraint("shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(24))
    filename: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    encoding: Mapped[str] = mapped_column(String(16))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(12), default=RUNNING)
    lines_total: Mapped[int] = mapped_column(Integer)  # physical lines, header included: the progress bar's end
    last_line: Mapped[int] = mapped_column(Integer, default=1)  # resume after this line (1: the header)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    points_matched: Mapped[int] = mapped_column(BigInteger, default=0)
    points_pending: Mapped[int] = mapped_column(BigInteger, default=0)
    unknown_columns: Mapped[list[Any]] = mapped_column(Json, default=list)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[str | None] = mapped_column(String(120))
    undo_reason: Mapped[str | None] = mapped_column(Text)


class ImportRow(Base):
    """One data line of an imported file: the shopper, what the old app said, and what became of it.

    Columns no capability reads yet (lifetime points and spend, birthday, tier, expiry) are kept here so
    tiers, birthday bonuses and expiry can read them when they land.
    """

    __tablename__ = "import_rows"
    __table_args__ = (
        Index("uq_import_rows_line", "shop_id", "batch_id", "line", unique=True),
        Index(
            "uq_import_rows_shopper",
            "shop_id",
            "batch_id",
            "shopper_key",
            unique=True,
            postgresql_where=text("shopper_key IS NOT NULL"),
            sqlite_where=text("shopper_key IS NOT NULL"),
        ),
        Index(
            "ix_import_rows_pending_customer",
            "shop_id",
            "customer_id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        Index(
            "ix_import_rows_pending_email",
            "shop_id",
            "email",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
        # One member, one opening balance per file: rows reaching the same member by id and by email are caught.
        Index(
            "uq_import_rows_member",
            "shop_id",
            "batch_id",
            "member_id",
            unique=True,
            postgresql_where=text("member_id IS NOT NULL"),
            sqlite_where=text("member_id IS NOT NULL"),
        ),
        PrimaryKeyConstraint("shop_id", "id"),
        ForeignKeyConstraint(
            ["shop_id", "batch_id"], ["import_batches.shop_id", "import_batches.id"], ondelete="CASCADE"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    batch_id: Mapped[int] = mapped_column(BigInteger)
    line: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))
    shopper_key: Mapped[str | None] = mapped_column(String(330))  # c:<customer id> or e:<email>; NULL if invalid
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    email: Mapped[str | None] = mapped_column(String(320))
    # Not a foreign key: erasing a shop deletes its members before its batches, and this row goes with them.
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    points: Mapped[int | None] = mapped_column(BigInteger)
    lifetime_points: Mapped[int | None] = mapped_column(BigInteger)
    lifetime_spend_minor: Mapped[int | None] = mapped_column(BigInteger)  # shop currency's minor units
    birthday: Mapped[str | None] = mapped_column(String(10))  # YYYY-MM-DD or --MM-DD
    tier: Mapped[str | None] = mapped_column(String(120))
    expires_on: Mapped[date | None] = mapped_column(Date)
    error: Mapped[str | None] = mapped_column(Text)
    matched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
