"""milestones: member-level grants (thresholds, punch cards, signup, birthday), actions, survey answers

Every table is per shop: its primary key, unique keys and indexes start with shop_id (decision 0021).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Moment = sa.DateTime(timezone=True)


def _shop_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["shop_id"], ["shops.id"], name=f"fk_{table}_shop_id_shops", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "milestone_settings",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("settings", Json, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("updated_at", Moment, nullable=False),
        _shop_fk("milestone_settings"),
        sa.PrimaryKeyConstraint("shop_id", name="pk_milestone_settings"),
    )
    op.create_table(
        "milestone_holdings",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("rule_key", sa.String(length=80), nullable=False),
        sa.Column("grants", Json, nullable=False),
        sa.Column("points_held", sa.BigInteger(), nullable=False),
        sa.Column("unpaid", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", Moment, nullable=False),
        _shop_fk("milestone_holdings"),
        sa.PrimaryKeyConstraint("shop_id", "member_id", "rule_key", name="pk_milestone_holdings"),
    )
    op.create_table(
        "member_birthdays",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("changed_at", Moment, nullable=False),
        _shop_fk("member_birthdays"),
        sa.PrimaryKeyConstraint("shop_id", "member_id", name="pk_member_birthdays"),
        sa.CheckConstraint("month BETWEEN 1 AND 12 AND day BETWEEN 1 AND 31", name="ck_member_birthdays_date"),
    )
    op.create_index("ix_member_birthdays_shop_id_month_day", "member_birthdays", ["shop_id", "month", "day"])
    op.create_table(
        "action_keys",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", Moment, nullable=False),
        sa.Column("revoked_at", Moment, nullable=True),
        _shop_fk("action_keys"),
        sa.PrimaryKeyConstraint("shop_id", "key_id", name="pk_action_keys"),
    )
    op.create_table(
        "action_completions",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("action_id", sa.String(length=40), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("completed_at", Moment, nullable=False),
        _shop_fk("action_completions"),
        sa.PrimaryKeyConstraint("shop_id", "idempotency_key", name="pk_action_completions"),
    )
    op.create_index(
        "ix_action_completions_shop_id_member_id_action_id_completed_at",
        "action_completions",
        ["shop_id", "member_id", "action_id", "completed_at"],
    )
    op.create_table(
        "survey_answers",
        sa.Column("shop_id", sa.BigInteger(), nullable=False),
        sa.Column("completion_key", sa.String(length=200), nullable=False),
        sa.Column("question_key", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.BigInteger(), nullable=False),
        sa.Column("survey_id", sa.String(length=40), nullable=False),
        sa.Column("score", sa.SmallInteger(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("answered_at", Moment, nullable=False),
        _shop_fk("survey_answers"),
        sa.PrimaryKeyConstraint("shop_id", "completion_key", "question_key", name="pk_survey_answers"),
        sa.CheckConstraint("score IS NULL OR score BETWEEN 0 AND 10", name="ck_survey_answers_score"),
    )
    op.create_index(
        "ix_survey_answers_shop_id_survey_id_answered_at", "survey_answers", ["shop_id", "survey_id", "answered_at"]
    )


def downgrade() -> None:
    for table in (
        "survey_answers",
        "action_completions",
        "action_keys",
        "member_birthdays",
        "milestone_holdings",
        "milestone_settings",
    ):
        op.drop_table(table)
