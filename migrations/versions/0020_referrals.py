"""referrals: settings, personal links, link visits with the friend's code, and referrals with their outcome

Revision ID: 0020
Revises: 0021
Create Date: 2026-12-03 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0020"
down_revision = "0021"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
When = sa.DateTime(timezone=True)


def _shop_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=f"fk_{table}_shop_id_shops", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "referral_settings",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("signing_key", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.Column("updated_at", When, nullable=False),
        _shop_fk("referral_settings"),
        sa.PrimaryKeyConstraint("shop_id", name="pk_referral_settings"),
    )
    op.create_table(
        "referral_links",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("code", sa.String(length=24), nullable=False),
        sa.Column("created_at", When, nullable=False),
        _shop_fk("referral_links"),
        sa.PrimaryKeyConstraint("shop_id", "member_id", name="pk_referral_links"),
        sa.UniqueConstraint("shop_id", "code", name="uq_referral_links_shop_id_code"),
    )
    op.create_table(
        "referral_visits",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("visit_id", sa.String(length=32), nullable=False),
        sa.Column("advocate_member_id", sa.BigInteger(), nullable=False),
        sa.Column("request_key", sa.String(length=128), nullable=False),
        sa.Column("visitor_customer_id", sa.BigInteger(), nullable=True),
        sa.Column("code_status", sa.String(length=16), nullable=False),
        sa.Column("friend_code", sa.String(length=64), nullable=True),
        sa.Column("friend_reward", Json, nullable=True),
        sa.Column("discount_id", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", When, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("ends_at", When, nullable=True),
        _shop_fk("referral_visits"),
        sa.PrimaryKeyConstraint("shop_id", "visit_id", name="pk_referral_visits"),
        sa.UniqueConstraint("shop_id", "request_key", name="uq_referral_visits_shop_id_request_key"),
        sa.UniqueConstraint("shop_id", "friend_code", name="uq_referral_visits_shop_id_friend_code"),
    )
    op.create_index(
        "ix_referral_visits_shop_id_advocate_member_id_created_at",
        "referral_visits",
        ["shop_id", "advocate_member_id", "created_at"],
    )
    op.create_index(
        "ix_referral_visits_unsettled",
        "referral_visits",
        ["code_status", "created_at"],
        postgresql_where=sa.text("code_status = 'pending'"),
        sqlite_where=sa.text("code_status = 'pending'"),
    )
    op.create_table(
        "referrals",
        sa.Column("shop_id", BigId, nullable=False),
        sa.Column("order_id", sa.BigInteger(), nullable=False),
        sa.Column("advocate_member_id", sa.BigInteger(), nullable=False),
        sa.Column("friend_member_id", sa.BigInteger(), nullable=True),
        sa.Column("visit_id", sa.String(length=32), nullable=True),
        sa.Column("matched_by", sa.String(length=16), nullable=False),
        sa.Column("ordered_at", When, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("block_reason", sa.String(length=40), nullable=True),
        sa.Column("reward_points", sa.BigInteger(), nullable=False),
        sa.Column("points_held", sa.BigInteger(), nullable=False),
        sa.Column("points_owed", sa.BigInteger(), nullable=False),
        sa.Column("moves", sa.Integer(), nullable=False),
        sa.Column("available_at", When, nullable=True),
        sa.Column("approved_by", sa.String(length=120), nullable=True),
        sa.Column("approved_reason", sa.Text(), nullable=True),
        sa.Column("approved_at", When, nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        _shop_fk("referrals"),
        sa.PrimaryKeyConstraint("shop_id", "order_id", name="pk_referrals"),
        sa.CheckConstraint(
            "status IN ('qualified', 'blocked', 'void', 'reversed')", name="ck_referrals_status_known"
        ),
    )
    op.create_index(
        "ix_referrals_shop_id_advocate_member_id_ordered_at", "referrals", ["shop_id", "advocate_member_id", "ordered_at"]
    )
    op.create_index("ix_referrals_shop_id_friend_member_id", "referrals", ["shop_id", "friend_member_id"])
    op.create_index("ix_referrals_shop_id_status_ordered_at", "referrals", ["shop_id", "status", "ordered_at"])
    op.create_index(
        "ix_referrals_due",
        "referrals",
        ["available_at"],
        postgresql_where=sa.text("status = 'qualified' AND points_held = 0"),
        sqlite_where=sa.text("status = 'qualified' AND points_held = 0"),
    )


def downgrade() -> None:
    op.drop_table("referrals")
    op.drop_table("referral_visits")
    op.drop_table("referral_links")
    op.drop_table("referral_settings")
