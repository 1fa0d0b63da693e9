"""deliveries: the (status, id) index replaced by a partial index of the parked ones (decision 0056)

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-05 01:40:00

Every delivery the webhook stored entered five indexes, one of them `ix_deliveries_status_id` (status, id). Its
only readers are the two lists of parked deliveries (the support API's per shop, the CLI's for every shop; both
status = 'parked' in id order); the drain's claim and the sweeper's count read the partial `ix_deliveries_waiting`
(status = 'received'). A partial index of the parked deliveries, (shop_domain, id), serves both lists, and a
delivery stored waiting (all but the few stored parked) never enters it: one index fewer to write per stored
delivery, and per status change in the drain.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0034"
down_revision = "0033"
branch_labels = None
depends_on = None

PARKED = sa.text("status = 'parked'")


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_deliveries_parked", ["shop_domain", "id"], unique=False, postgresql_where=PARKED, sqlite_where=PARKED)
        batch_op.drop_index(batch_op.f("ix_deliveries_status_id"))


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_status_id"), ["status", "id"], unique=False)
        batch_op.drop_index("ix_deliveries_parked", postgresql_where=PARKED, sqlite_where=PARKED)
