"""The event claim's work grows with the pending deliveries, not with their square, whatever the statistics say.

A backlog of deliveries written and then leased and settled (as a slow receiver leaves it), in a table never
analyzed (autovacuum off, or within its first minute): the claim once probed the unique index
(shop, endpoint, outbox id) for every candidate and read each member's whole past, 89 s at 25,571 pending
(decision 0049). The buffers it reads are counted, not timed, so the check does not depend on the machine's load.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from plugin.db import engine_for
from plugin.models import utcnow
from plugin.services import event_delivery

MEMBERS = 800
EVENTS = 16_000
SETTLED = 2_400  # the earliest events, delivered: their index entries stay, dead, until a vacuum


def backlog(connection, shop: int) -> None:
    """EVENTS fanned-out events of MEMBERS members to one endpoint, the first SETTLED leased then delivered."""
    statements = (
        "INSERT INTO event_endpoints (shop_id, url, secret, created_at)"
        " VALUES (:shop, 'https://example.com/hook', '\\x00', now() - interval '1 day')",
        "INSERT INTO outbox_events (id, shop_id, event_id, dedupe_key, event_type, member_id, payload, occurred_at,"
        " created_at, fanned_out_at) SELECT g, :shop, 'claim-plan-' || g, 'claim-plan-' || g, 'points.earned',"
        " g % :members + 1, '{}', now(), now(), now() FROM generate_series(1, :events) g",
        "INSERT INTO event_deliveries (shop_id, endpoint_id, outbox_id, member_id, status, attempts,"
        " next_attempt_at, created_at) SELECT :shop, (SELECT max(id) FROM event_endpoints), g, g % :members + 1,"
        " 'pending', 0, now() - interval '1 minute', now() FROM generate_series(1, :events) g",
        "UPDATE event_deliveries SET next_attempt_at = now() + interval '2 minutes' WHERE outbox_id <= :settled",
        "UPDATE event_deliveries SET status = 'delivered' WHERE outbox_id <= :settled",
    )
    values = {"shop": shop, "members": MEMBERS, "events": EVENTS, "settled": SETTLED}
    for statement in statements:
        connection.execute(text(statement), values)


def plan_of(connection, query) -> dict:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return connection.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)).scalar()[0]["Plan"]


def buffers(plan: dict) -> int:
    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"]


def test_the_claim_reads_a_bounded_number_of_buffers_per_pending_delivery_without_statistics(settings, shop):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plan and its buffers are PostgreSQL's")
    engine = engine_for(settings.database_url)
    with engine.connect() as connection:
        backlog(connection, shop)
        connection.commit()
        analyzed = connection.execute(
            text("SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'event_deliveries' AND last_analyze IS NULL")
        ).scalar()
        now = utcnow()
        chosen = plan_of(connection, event_delivery.claimable(now, event_delivery.BATCH))
        keys = connection.execute(event_delivery.claimable(now, event_delivery.BATCH)).all()
        locked = plan_of(connection, event_delivery.still_due(keys, now))
        connection.rollback()  # EXPLAIN ANALYZE took the locks
    pending = EVENTS - SETTLED
    assert analyzed == 1, "the table must be as a fresh server leaves it: never analyzed"
    assert (chosen["Actual Rows"], locked["Actual Rows"]) == (event_delivery.BATCH, event_delivery.BATCH)
    assert [key for _, key in keys] == sorted(key for _, key in keys)  # oldest first: ids follow the events here
    # A pass over the pending rows, a few buffers each; a probe per candidate that read every earlier delivery of
    # the endpoint took hundreds per pending row.
    assert buffers(chosen) + buffers(locked) < 5 * pending, json.dumps([chosen, locked])[:3000]
