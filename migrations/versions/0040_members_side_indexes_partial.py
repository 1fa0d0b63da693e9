"""members: the (shop_id, X) side indexes hold only rows whose X is set, on PostgreSQL (decision 0071)

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-06 05:10:00

On a members table never analysed (a fresh shop: autovacuum has not run yet), the planner's generic plan of a key
lookup, `shop_id = $1 AND id = $2` (the foreign-key checks of postings and orders, the posting trigger's balance
lock), costed every index leading with shop_id alike and took the smallest: (shop_id, tier_until), an index of NULLs,
one level lower than the primary key. It read every member of the shop per lookup. Made partial, `WHERE X IS NOT
NULL`, these indexes cannot serve a query that does not imply their predicate, so the key lookup takes pk_members
with both columns as its Index Cond. Every query of their own implies it (equality, `<=`, `IS NOT NULL`, `= ANY`).

PostgreSQL only: SQLite's planner already takes the primary key for a full-key equality, and it does not prove that
`lower(email) = ?` implies `email IS NOT NULL`. The downgrade restores the full indexes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0040"
down_revision = "0039"
branch_labels = None
depends_on = None

# Index name, its columns, and the column whose NULLs it leaves out.
INDEXES = (
    ("ix_members_shop_id_email", ["shop_id", "email"], "email"),
    ("ix_members_shop_id_lower_email", ["shop_id", sa.text("lower(email)")], "email"),
    ("ix_members_shop_id_tier", ["shop_id", "tier"], "tier"),
    ("ix_members_shop_id_tier_until", ["shop_id", "tier_until"], "tier_until"),
)


def _rebuild(partial: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, columns, column in INDEXES:
        op.drop_index(name, table_name="members")
        where = {"postgresql_where": sa.text(f"{column} IS NOT NULL")} if partial else {}
        op.create_index(name, "members", columns, **where)


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
