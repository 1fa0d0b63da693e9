"""Database tables: shops, members, orders with their facts, the append-only ledger and the webhook inbox."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite would drop the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; the ledger stores aware UTC timestamps only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Shop(Base):
    __tablename__ = "shops"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(16), default="shopify")
    access_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet ciphertext, never plaintext
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # expiring offline tokens only
    refresh_token: Mapped[bytes | None] = mapped_column(LargeBinary)  # Fernet ciphertext
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str | None] = mapped_column(String(500))
    webhooks_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # start of the last complete order sync
    currency: Mapped[str | None] = mapped_column(String(3))
    # The shop's IANA time zone ("Europe/Paris"): periods, birthdays, expiry days and reports are counted in it.
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    # The shop's primary language ("fr", "en-GB"): explanations are rendered in it (programme/explanations.py).
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    settings: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    settings_version: Mapped[int] = mapped_column(Integer, default=1)
    # The current earning rule set (a copy of rule_sets' latest row) and its version; 0 is "no rules yet".
    rules: Mapped[dict[str, Any] | None] = mapped_column(Json)
    rules_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The current tier programme (a copy of tier_sets' latest row) and its version; None and 0 before tiers.
    tiers: Mapped[dict[str, Any] | None] = mapped_column(Json)
    tiers_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    installed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    uninstalled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


TIER_UNPUSHED = "coalesce(tier, '') <> coalesce(pushed_tier, '')"


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("shop_id", "customer_id"),
        # The side indexes leave out NULLs (PostgreSQL): a never-analysed table's generic plan of a key lookup
        # otherwise takes the smallest index leading with shop_id, and reads the whole shop (decision 0071).
        Index(None, "shop_id", "email", postgresql_where=text("email IS NOT NULL")),
        Index(
            "ix_members_shop_id_lower_email",
            "shop_id",
            text("lower(email)"),
            postgresql_where=text("email IS NOT NULL"),
        ),
        Index(
            "ix_members_tier_unpushed",
            "shop_id",
            "id",
            postgresql_where=text(TIER_UNPUSHED),
            sqlite_where=text(TIER_UNPUSHED),
        ),
        Index(None, "shop_id", "tier", postgresql_where=text("tier IS NOT NULL")),
        Index(None, "shop_id", "tier_until", postgresql_where=text("tier_until IS NOT NULL")),
        PrimaryKeyConstraint("shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(BigInteger)
    email: Mapped[str | None] = mapped_column(String(320))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    # Cached sum of this member's postings: starts at 0 and is moved only by the database's posting trigger
    # (migration 0008), so no code path can make it drift.
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # The balance last written to the shop's customer metafield. A member due a push is a BalancePushDue row, not
    # found by comparing the two: no index may name `balance`, or no balance change is a HOT update (decision 0062).
    pushed_balance: Mapped[int | None] = mapped_column(BigInteger)
    enrolled_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tags: Mapped[list[str] | None] = mapped_column(Json)  # Shopify customer tags, casefolded, for segment rules
    # The member's tier id (None: no tier), recomputed from facts by services/tiers.py; tier_moves explains it.
    tier: Mapped[str | None] = mapped_column(String(40))
    tier_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # kept until (retention and grace); None: for good
    tier_paid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a paid membership's renewal date
    # The tier last written to the shop (customer tag and loyalty.tier metafield); a push is due while it differs.
    pushed_tier: Mapped[str | None] = mapped_column(String(40))


class BalancePushDue(Base):
    """A member whose balance the shop has not been sent: listed by the posting trigger, removed by the push."""

    __tablename__ = "balance_push_due"
    __table_args__ = (
        PrimaryKeyConstraint("shop_id", "member_id"),
        ForeignKeyConstraint(["shop_id", "member_id"], ["members.shop_id", "members.id"], ondelete="CASCADE"),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger)


class Order(Base):
    """One shop order and every fact known about it so far: its lot, refunds (child rows), cancellation."""

    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("shop_id", "order_id"),
        Index(None, "shop_id", "member_id", "available_at"),
        # A member's paid orders of a period, as the member-month triggers recount them: both equalities lead, so
        # the count never reads other members' orders, statistics or not (decision 0061).
        Index("ix_orders_member_paid_at", "shop_id", "member_id", "paid_at", postgresql_include=["sales"]),
        # A shop's orders by payment time (reports, expiry, tiers' periods); no (shop_id, paid_at) beside it, which
        # every order written would maintain for nothing (decision 0089).
        Index(
            "ix_orders_shop_id_paid_at_member_id",
            "shop_id",
            "paid_at",
            "member_id",
            postgresql_include=["sales", "reward_code"],
        ),
        # The orders that used a loyalty reward code (ROI): read without passing every order of the period.
        Index(
            "ix_orders_reward_paid_at",
            "shop_id",
            "paid_at",
            postgresql_include=["sales", "reward_code"],
            postgresql_where=text("reward_code IS NOT NULL"),
            sqlite_where=text("reward_code IS NOT NULL"),
        ),
        PrimaryKeyConstraint("shop_id", "id"),
        ForeignKeyConstraint(["shop_id", "member_id"], ["members.shop_id", "members.id"]),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str | None] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    created_seen: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lot: what the paid order earned, with its rate and eligible lines (see program.Lot).
    lot: Mapped[dict[str, Any] | None] = mapped_column(Json)
    points_held: Mapped[int] = mapped_column(BigInteger, default=0)
    # Points support staff took from (negative) or gave back to this order: a fact like a refund.
    support_delta: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Points a reversal could not take because the member had spent them (stop-at-zero or claw-back policy).
    unpaid_reversal: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Points of this order's lot that expired (docs/expiry.md): a later refund never takes them back twice.
    expired_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The paid order's facts as the rules read them (lines, money, customer tags, rules version): a lot can be
    # made later from them (a product not cached yet), and the rule preview replays them.
    facts: Mapped[dict[str, Any] | None] = mapped_column(Json)
    # Line items after discounts at payment, and the loyalty reward code used (services/order_sales.py): reports.
    sales: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    reward_code: Mapped[str | None] = mapped_column(String(64))
    # The lot's sums as the member rules read them (lot_reads.LotSums), written with the lot by the set-based drain
    # (decision 0094). NULL where a writer did not (the one-by-one path, rows older than migration 0043) and, on
    # PostgreSQL, once the lot is written without them (a trigger): the reads then sum the lot's JSON.
    lot_eligible: Mapped[Decimal | None] = mapped_column(Numeric)
    lot_shipping_tip: Mapped[Decimal | None] = mapped_column(Numeric)
    lot_tier_points: Mapped[int | None] = mapped_column(BigInteger)
    lot_reasoned: Mapped[bool | None] = mapped_column(Boolean)


class RuleSetVersion(Base):
    """One version of a shop's earning rules; never changed, a change is a new version."""

    __tablename__ = "rule_sets"
    __table_args__ = (
        UniqueConstraint("shop_id", "version"),
        PrimaryKeyConstraint("shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[dict[str, Any]] = mapped_column(Json)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Product(Base):
    """The product cache: what earning rules match lines by, fed by products/* webhooks and Admin look-ups."""

    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("shop_id", "product_id"),
        PrimaryKeyConstraint("shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    product_id: Mapped[int] = mapped_column(BigInteger)
    product_type: Mapped[str] = mapped_column(String(255), default="")
    vendor: Mapped[str] = mapped_column(String(255), default="")
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    collections: Mapped[list[str] | None] = mapped_column(Json)  # None until an Admin look-up fills it
    skus: Mapped[list[str] | None] = mapped_column(Json)  # its variants' SKUs, from products/* webhooks
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrderProductWait(Base):
    """A paid order whose points wait for this product's facts; removed once the order's lot is made."""

    __tablename__ = "order_product_waits"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Refund(Base):
    """A refund fact, kept whether or not its order is known yet."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("shop_id", "refund_id"),
        Index(None, "shop_id", "order_id"),
        PrimaryKeyConstraint("shop_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    order_id: Mapped[int] = mapped_column(BigInteger)
    refund_id: Mapped[int] = mapped_column(BigInteger)
    facts: Mapped[dict[str, Any]] = mapped_column(Json)  # line quantities and shipping, money as strings
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Posting(Base):
    """One signed change of points. Rows are never updated or deleted (enforced by database triggers).

    The database also checks `kind` (plugin/ledger/kinds.py) and `points <> 0`, and sets or checks `balance_after`.
    """

    __tablename__ = "postings"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index(None, "shop_id", "member_id", "id"),
        Index(None, "shop_id", "order_id"),
        Index(
            "ix_postings_pending",
            "shop_id",
            "available_at",
            postgresql_where=text("available_at IS NOT NULL"),
            sqlite_where=text("available_at IS NOT NULL"),
        ),
        # The tier rewards a batch's members hold (tiers.held_rewards, every drained batch of a tier programme,
        # probed per member): without it the read visits every posting of the members (decision 0058).
        Index(
            "ix_postings_tier_rewards",
            "shop_id",
            "member_id",
            postgresql_where=text("source_type = 'tier'"),
            sqlite_where=text("source_type = 'tier'"),
        ),
        PrimaryKeyConstraint("shop_id", "id"),
        ForeignKeyConstraint(["shop_id", "member_id"], ["members.shop_id", "members.id"]),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    points: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    source_type: Mapped[str] = mapped_column(String(24))
    source_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    rule_version: Mapped[str] = mapped_column(String(64))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # The explanation as data (a catalogue key and parameters), rendered in the shop's language when read;
    # None on postings written before it, whose English note is shown as it is.
    details: Mapped[dict[str, Any] | None] = mapped_column(Json)
    actor: Mapped[str] = mapped_column(String(120), default="system")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """One webhook request as received: the inbox row written before we answer the shop."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("shop_domain", "webhook_id"),
        Index(None, "shop_domain", "customer_id"),
        Index(
            "ix_deliveries_waiting",
            "id",
            postgresql_where=text("status = 'received'"),
            sqlite_where=text("status = 'received'"),
        ),
        # The parked lists (support API per shop, CLI), in id order: a delivery stored waiting never enters it
        # (decision 0056).
        Index(
            "ix_deliveries_parked",
            "shop_domain",
            "id",
            postgresql_where=text("status = 'parked'"),
            sqlite_where=text("status = 'parked'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), default="shopify")
    shop_domain: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    webhook_id: Mapped[str] = mapped_column(String(128))
    event_id: Mapped[str | None] = mapped_column(String(128))
    triggered_at: Mapped[str | None] = mapped_column(String(64))
    api_version: Mapped[str | None] = mapped_column(String(16))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times claimed (delivery_claims), once finished
    reason: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The shopper the payload is about, once known: what a customers/redact request scrubs.
    customer_id: Mapped[int | None] = mapped_column(BigInteger)


class DeliveryClaim(Base):
    """How many times a drain claimed a delivery, committed apart from the drain's own transaction.

    A drain that times out or is killed rolls its batch back, but not this count: that is how a delivery
    that kills its worker every time is found, and parked.
    """

    __tablename__ = "delivery_claims"

    # No foreign key: checking one would share-lock the delivery row the claiming transaction holds for update.
    delivery_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    claims: Mapped[int] = mapped_column(Integer)
    # The last claim: from the second unfinished one on, the next waits inbox.RETRY_WAIT after it (None: no wait).
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


REVOKE_DUE = "revoke_requested_at IS NOT NULL AND revoked_at IS NULL"  # a grant's take-back still to do
DUE_WHERE = text(REVOKE_DUE)


class Redemption(Base):
    """Points spent on a reward; becomes a discount code in the shop, or fails and gives the points back.

    status: pending (points taken, code being created) -> issued | failed; issued -> cancelled.
    """

    __tablename__ = "redemptions"
    __table_args__ = (
        UniqueConstraint("shop_id", "code"),
        UniqueConstraint("shop_id", "idempotency_key"),
        Index(None, "shop_id", "member_id", "id"),
        Index("ix_redemptions_shop_id_reward_id", "shop_id", "reward_id", "member_id", "created_at"),
        Index("ix_redemptions_unsettled", "status", "id", postgresql_where=text("status = 'pending'")),
        Index("ix_redemptions_revoke_due", "shop_id", "id", postgresql_where=DUE_WHERE, sqlite_where=DUE_WHERE),
        # Redeemers at a date (KPIs): members with an issued reward, in member order, from the index alone.
        Index(
            "ix_redemptions_issued_member",
            "shop_id",
            "member_id",
            "created_at",
            postgresql_where=text("status = 'issued'"),
            sqlite_where=text("status = 'issued'"),
        ),
        PrimaryKeyConstraint("shop_id", "id"),
        ForeignKeyConstraint(["shop_id", "member_id"], ["members.shop_id", "members.id"]),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    reward: Mapped[dict[str, Any]] = mapped_column(Json)  # the catalogue entry as it was when redeemed
    reward_id: Mapped[str | None] = mapped_column(String(40))  # reward["id"], indexed: limits count by it
    points: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    code: Mapped[str] = mapped_column(String(64))
    discount_id: Mapped[str | None] = mapped_column(String(128))  # the shop's gid for the code
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(120), default="shopper")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a job works on it until then
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Store credit (kinds store_credit and cash_back; docs/store-credit.md). Money in integer thousandths of the
    # major unit, exact in every currency. The expiry is also the credit's fingerprint in the shop: unique among
    # the member's store-credit redemptions, so a look-up after a lost reply finds this credit and no other.
    credit_milli: Mapped[int | None] = mapped_column(BigInteger)
    credit_currency: Mapped[str | None] = mapped_column(String(3))
    credit_balance_milli: Mapped[int | None] = mapped_column(BigInteger)  # the account's balance after the credit
    credit_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    debit_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a cancel's debit may be in the shop
    # Reward grants (docs/milestones.md, decision 0030): kind "grant" is a reward earned by a milestone or a
    # referral, issued at no point cost (points 0); granted_by names the grant (source_type, source_id, number,
    # rule_version, label). A take-back the facts ask for is requested in their transaction and done by a job.
    kind: Mapped[str] = mapped_column(String(16), default="redeem", server_default="redeem")
    granted_by: Mapped[dict[str, Any] | None] = mapped_column(Json)
    revoke_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PrivacyRequest(Base):
    """A privacy (compliance) webhook and what we did about it; kept after the shop's data is erased."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index(None, "shop_domain", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)  # counts, or the data export itself


class LedgerErasure(Base):
    """A permit, alive only inside the transaction that erases a shop, to delete that shop's postings."""

    __tablename__ = "ledger_erasures"

    shop_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class SupportKey(Base):
    """A per-shop API key for support tools; only its SHA-256 is stored, and it can be revoked."""

    __tablename__ = "support_keys"
    __table_args__ = (UniqueConstraint("prefix"), Index(None, "shop_id", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    prefix: Mapped[str] = mapped_column(String(24))  # shown in lists; finds the key without a table scan
    key_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))  # "read" or "write"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SupportAction(Base):
    """One support action, with who, when, why and the balance before and after; undone by another action."""

    __tablename__ = "support_actions"
    __table_args__ = (
        UniqueConstraint("shop_id", "idempotency_key"),
        Index(None, "shop_id", "member_id", "id"),
        PrimaryKeyConstraint("shop_id", "id"),
        ForeignKeyConstraint(["shop_id", "member_id"], ["members.shop_id", "members.id"]),
    )

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(24))  # adjust, reverse_order, undo
    actor: Mapped[str] = mapped_column(String(120))
    reason_code: Mapped[str] = mapped_column(String(40))
    note: Mapped[str] = mapped_column(Text)
    points: Mapped[int] = mapped_column(BigInteger)
    balance_before: Mapped[int] = mapped_column(BigInteger)
    balance_after: Mapped[int] = mapped_column(BigInteger)
    order_id: Mapped[int | None] = mapped_column(BigInteger)
    undo_of: Mapped[int | None] = mapped_column(BigInteger)
    undone_by: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    # sha256 of what was asked with the key: the same key with another request is refused, not answered.
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UsedOAuthState(Base):
    """OAuth state nonces already consumed by a callback, so a replayed callback is refused by us too."""

    __tablename__ = "used_oauth_states"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    shop_domain: Mapped[str] = mapped_column(String(255))
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OutboxEvent(Base):
    """An outgoing event, written in the transaction of the change that caused it; a job delivers it later.

    `dedupe_key` names the cause ("points.earned:posting:42"), so a retried transaction records it once;
    `event_id` is what receivers dedupe by. Rows are delivered at least once and never rewritten by their cause.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        UniqueConstraint("shop_id", "dedupe_key"),
        UniqueConstraint("shop_id", "event_id"),
        Index(None, "shop_id", "member_id", "id"),
        Index(None, "shop_id", "event_type", "id"),
        # A member's delivery waits while an earlier event of theirs is not fanned out (event_delivery._claim).
        Index("ix_outbox_events_unfanned_member", "shop_id", "member_id", "id",
              postgresql_where=text("fanned_out_at IS NULL"), sqlite_where=text("fanned_out_at IS NULL")),
        PrimaryKeyConstraint("shop_id", "id"),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, autoincrement=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(36))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the delivery job has made this event's deliveries (one per endpoint); NULL rows are its work list.
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EventEndpoint(Base):
    """A merchant's URL that receives the shop's events, signed with its own secret (docs/events.md).

    The database's primary key is (shop_id, id) on PostgreSQL (migration 0021); `id` stays the mapper's identity.
    """

    __tablename__ = "event_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    # "webhook" (a signed POST to `url`) or "flow" (Shopify Flow's flowTriggerReceive; one per shop, no URL).
    kind: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet ciphertext of the signing secret
    event_types: Mapped[list[str] | None] = mapped_column(Json)  # None: every type
    description: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first failure after the last success
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(500))


class EventDelivery(Base):
    """One event for one endpoint: the delivery log's row, retried with backoff until delivered or given up."""

    __tablename__ = "event_deliveries"
    __table_args__ = (
        UniqueConstraint("shop_id", "endpoint_id", "outbox_id"),
        Index("ix_event_deliveries_due", "next_attempt_at", postgresql_where=text("status = 'pending'"),
              sqlite_where=text("status = 'pending'")),
        Index(None, "shop_id", "outbox_id"),
        # A member's later event waits while an earlier one to the same endpoint is pending (event_delivery._claim).
        Index("ix_event_deliveries_member_pending", "shop_id", "endpoint_id", "member_id", "outbox_id",
              postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"))
    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    outbox_id: Mapped[int] = mapped_column(BigInteger)
    member_id: Mapped[int | None] = mapped_column(BigInteger)  # the event's member, copied for the ordering hold
    status: Mapped[str] = mapped_column(String(16))  # pending, delivered, gave_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)  # the receiver's HTTP status
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ExpiryPolicy(Base):
    """A shop's points expiry: per lot or on inactivity, after `months`, with reminders (docs/expiry.md)."""

    __tablename__ = "expiry_policies"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    policy: Mapped[str] = mapped_column(String(16))  # off, per_lot, inactivity
    months: Mapped[int | None] = mapped_column(Integer)
    reminder_days: Mapped[list[int]] = mapped_column(Json, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ExpiryRun(Base):
    """One shop's expiry run for one local day: a crashed run resumes, a finished one is not run again."""

    __tablename__ = "expiry_runs"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    run_date: Mapped[date] = mapped_column(Date, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    after_member_id: Mapped[int] = mapped_column(BigInteger, default=0)  # the cursor: members up to it are done
    points_expired: Mapped[int] = mapped_column(BigInteger, default=0)
    reminders: Mapped[int] = mapped_column(BigInteger, default=0)


class BirthdayRun(Base):
    """One shop's birthday job, finished for one local day: the next run catches up the days after the last one."""

    __tablename__ = "birthday_runs"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    run_date: Mapped[date] = mapped_column(Date, primary_key=True)
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    awarded: Mapped[int] = mapped_column(BigInteger, default=0)  # members given a birthday posting by the run


class LedgerDay(Base):
    """Postings summed per shop-local day, kind and source: what reports read instead of every posting.

    Rows come from compacting `ledger_day_deltas` (services/report_rollups.py) or from a rebuild out of the
    postings themselves; never edited otherwise.
    """

    __tablename__ = "ledger_days"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    source_type: Mapped[str] = mapped_column(String(24), primary_key=True)
    points_in: Mapped[int] = mapped_column(BigInteger)  # the sum of the positive postings
    points_out: Mapped[int] = mapped_column(BigInteger)  # the sum of the negative postings (<= 0)
    postings: Mapped[int] = mapped_column(BigInteger)


class LedgerDayDelta(Base):
    """One posting's contribution to its day, inserted by a database trigger in the posting's transaction."""

    __tablename__ = "ledger_day_deltas"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    id: Mapped[int] = mapped_column(BigId, Identity(), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(16))
    source_type: Mapped[str] = mapped_column(String(24))
    points: Mapped[int] = mapped_column(BigInteger)


class MemberOrderMonth(Base):
    """One member's paid orders in one shop-local month: what the KPIs read instead of every order.

    Written by a database trigger on `orders` in the order's own transaction (migration 0028: the row is
    recomputed from the member's orders of that month, under the row's lock), or rebuilt from the orders
    (services/order_rollups.py); never edited otherwise. PostgreSQL only: SQLite's reports read the orders.
    """

    __tablename__ = "member_order_months"
    __table_args__ = (
        Index(
            "ix_member_order_months_month",
            "shop_id",
            "month",
            "member_id",
            postgresql_include=["orders", "sales", "first_paid_at", "last_paid_at"],
        ),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)  # the month's first day, in the shop's zone
    orders: Mapped[int] = mapped_column(BigInteger)  # paid orders of the member that month
    sales: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # their sales (orders.sales; none counts 0)
    first_paid_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the first and last of them: whether one
    last_paid_at: Mapped[datetime] = mapped_column(UTCDateTime)  # falls in a window that cuts the month


class ReportSettings(Base):
    """The merchant's choices for the programme's reports: the money value of one point (None: implied)."""

    __tablename__ = "report_settings"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    point_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 6))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TierSetVersion(Base):
    """One version of a shop's tier programme (tiers, metric, period, paid membership); never changed."""

    __tablename__ = "tier_sets"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(Json)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierMove(Base):
    """One change of a member's tier, with its reason; `seq` counts the member's moves (reports read this)."""

    __tablename__ = "tier_moves"
    __table_args__ = (Index(None, "shop_id", "occurred_at"),)

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_tier: Mapped[str | None] = mapped_column(String(40))
    to_tier: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str] = mapped_column(Text)
    tiers_version: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TierPurchase(Base):
    """A paid order that bought a paid tier (its marked lines); whether it still counts is read from the order."""

    __tablename__ = "tier_purchases"
    __table_args__ = (Index(None, "shop_id", "member_id"),)

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    months: Mapped[int] = mapped_column(Integer)
    line_ids: Mapped[list[int]] = mapped_column(Json)


class MilestoneSettings(Base):
    """A shop's milestone programme (thresholds, punch cards, signup, birthday, actions), one version per save."""

    __tablename__ = "milestone_settings"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(Json)
    version: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(120))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MilestoneHolding(Base):
    """What one member-level rule has granted one member: the points of each grant it holds, newest last.

    Locked while the rule's target is recomputed from facts; only the difference is posted.
    """

    __tablename__ = "milestone_holdings"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    rule_key: Mapped[str] = mapped_column(String(80), primary_key=True)  # "threshold:big-spender", "birthday:2026"
    grants: Mapped[list[int]] = mapped_column(Json)  # points of each grant held, so a take-back undoes the newest
    points_held: Mapped[int] = mapped_column(BigInteger)
    # Points a take-back could not collect under claw_back: netted against this rule's next grant.
    unpaid: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # postings made: keys stay unique
    # The reward each held grant issued, newest last: [grant number, redemption id] (a reward grant's take-back).
    rewards: Mapped[list[list[int]]] = mapped_column(Json, default=list, server_default="[]")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MemberBirthday(Base):
    """A member's birthday (month and day, never the year), given in the widget or mapped from a metafield."""

    __tablename__ = "member_birthdays"
    __table_args__ = (Index("ix_member_birthdays_shop_id_month_day", "shop_id", "month", "day"),)

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[int] = mapped_column(SmallInteger)
    day: Mapped[int] = mapped_column(SmallInteger)
    source: Mapped[str] = mapped_column(String(16))  # widget, metafield, admin
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActionKey(Base):
    """A per-shop key that signs the merchant's server-to-server action calls; the secret is encrypted at rest."""

    __tablename__ = "action_keys"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    secret: Mapped[bytes] = mapped_column(LargeBinary)  # Fernet ciphertext: HMAC needs the secret itself
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ActionCompletion(Base):
    """One custom action a member completed and the points it earned, keyed by the caller's idempotency key."""

    __tablename__ = "action_completions"
    __table_args__ = (
        Index(
            "ix_action_completions_shop_id_member_id_action_id_completed_at",
            "shop_id",
            "member_id",
            "action_id",
            "completed_at",
        ),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    action_id: Mapped[str] = mapped_column(String(40))
    points: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))  # server, widget
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request: a reused key with another is refused
    completed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SurveyAnswer(Base):
    """One answer to one survey question; a 0-10 question keeps its score (the NPS the reports read)."""

    __tablename__ = "survey_answers"
    __table_args__ = (Index("ix_survey_answers_shop_id_survey_id_answered_at", "shop_id", "survey_id", "answered_at"),)

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    completion_key: Mapped[str] = mapped_column(String(200), primary_key=True)  # the action completion's key
    question_key: Mapped[str] = mapped_column(String(40), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger)
    survey_id: Mapped[str] = mapped_column(String(40))
    score: Mapped[int | None] = mapped_column(SmallInteger)  # 0-10 questions only
    answer: Mapped[str | None] = mapped_column(Text)  # text and choice questions
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralSettings(Base):
    """A shop's referral programme: its guards, the advocate's points and the friend's reward (docs/referrals.md)."""

    __tablename__ = "referral_settings"

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    settings: Mapped[dict[str, Any]] = mapped_column(Json)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Signs the referral cart attribute (a random key per shop, made with the row): a forged one never matches.
    signing_key: Mapped[str] = mapped_column(String(64))
    updated_by: Mapped[str] = mapped_column(String(120), default="system")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralLink(Base):
    """A member's personal referral code: /apps/loyalty/r/CODE."""

    __tablename__ = "referral_links"
    __table_args__ = (UniqueConstraint("shop_id", "code"),)

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    code: Mapped[str] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralVisit(Base):
    """One opening of a referral link, and the friend's discount code it gave (created by a queued job).

    `request_key` is the signed proxy request's signature: a replayed request finds its visit, never a new one.
    code_status: none (no code given) | pending (job to run) | issued | failed.
    """

    __tablename__ = "referral_visits"
    __table_args__ = (
        UniqueConstraint("shop_id", "request_key"),
        UniqueConstraint("shop_id", "friend_code"),
        Index(None, "shop_id", "advocate_member_id", "created_at"),
        Index(
            "ix_referral_visits_unsettled",
            "code_status",
            "created_at",
            postgresql_where=text("code_status = 'pending'"),
            sqlite_where=text("code_status = 'pending'"),
        ),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    visit_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    advocate_member_id: Mapped[int] = mapped_column(BigInteger)
    request_key: Mapped[str] = mapped_column(String(128))
    visitor_customer_id: Mapped[int | None] = mapped_column(BigInteger)  # a signed-in friend, when known
    code_status: Mapped[str] = mapped_column(String(16), default="none")
    friend_code: Mapped[str | None] = mapped_column(String(64))
    friend_reward: Mapped[dict[str, Any] | None] = mapped_column(Json)  # the reward as it was when given
    discount_id: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Referral(Base):
    """A friend's order tied to an advocate, and its outcome recomputed from the facts (docs/referrals.md).

    status: qualified (the advocate's points are posted once `available_at` has passed) | blocked (block_reason)
    | void (refunded or cancelled before the pending period ended: nothing given) | reversed (after it ended).
    """

    __tablename__ = "referrals"
    __table_args__ = (
        Index(None, "shop_id", "advocate_member_id", "ordered_at"),
        Index(None, "shop_id", "friend_member_id"),
        Index(None, "shop_id", "status", "ordered_at"),
        CheckConstraint("status IN ('qualified', 'blocked', 'void', 'reversed')", name="ck_referrals_status_known"),
        Index(
            "ix_referrals_due",
            "available_at",
            postgresql_where=text("status = 'qualified' AND points_held = 0"),
            sqlite_where=text("status = 'qualified' AND points_held = 0"),
        ),
    )

    shop_id: Mapped[int] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    order_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # the friend's order
    advocate_member_id: Mapped[int] = mapped_column(BigInteger)
    friend_member_id: Mapped[int | None] = mapped_column(BigInteger)
    visit_id: Mapped[str | None] = mapped_column(String(32))
    matched_by: Mapped[str] = mapped_column(String(16))  # friend_code | cookie
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="qualified")
    block_reason: Mapped[str | None] = mapped_column(String(40))
    reward_points: Mapped[int] = mapped_column(BigInteger, default=0)  # what a qualified referral gives
    # The catalogue reward it grants (fixed when first given, like reward_points) and the grant it issued, held
    # while the referral stands (a redemption of kind "grant"; decision 0030).
    reward_id: Mapped[str | None] = mapped_column(String(40))
    reward_redemption_id: Mapped[int | None] = mapped_column(BigInteger)
    points_held: Mapped[int] = mapped_column(BigInteger, default=0)  # what its postings add up to
    # A reversal the advocate could not pay under the claw_back policy (they had spent the points).
    points_owed: Mapped[int] = mapped_column(BigInteger, default=0)
    moves: Mapped[int] = mapped_column(Integer, default=0)  # postings made for it: each one's key counts them
    available_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(120))
    approved_reason: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
