"""The event claim's work grows with the pending deliveries, not with their square, whatever the statistics say.

A backlog of deliveries written and then leased and settled (as a slow receiver leaves it), with fan-out behind
(later events of every member not fanned out yet), in tables never analyzed (autovacuum off, or within a table's
first minute): the claim once probed the unique index (shop, endpoint, outbox id) for every candidate and read
each member's whole past, 89 s at 25,571 pending (decision 0049). What each statement reads is counted from its
plan (buffers, and rows visited by every node, filtered ones included), not timed, so the check does not depend on
the machine's load.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from plugin.db import engine_for
from plugin.models import OutboxEvent, utcnow
from plugin.services import event_delivery

MEMBERS = 800
EVENTS = 16_000
SETTLED = 2_400  # the earliest events, delivered: their index entries stay, dead, until a vacuum
UNFANNED = 4_000  # the latest events, not fanned out yet: no deliveries made


def backlog(connection, shop: int) -> None:
    """EVENTS events of MEMBERS members to one endpoint; the first SETTLED leased then delivered, the last UNFANNED
    not fanned out."""
    statements = (
        "INSERT INTO event_endpoints (shop_id, url, secret, created_at)"
        " VALUES (:shop, 'https://example.com/hook', '\\x00', now() - interval '1 day')",
        "INSERT INTO outbox_events (id, shop_id, event_id, dedupe_key, event_type, member_id, payload, occurred_at,"
        " created_at, fanned_out_at) SELECT g, :shop, 'claim-plan-' || g, 'claim-plan-' || g, 'points.earned',"
        " g % :members + 1, '{}', now(), now(), CASE WHEN g <= :events - :unfanned THEN now() END"
        " FROM generate_series(1, :events) g",
        "INSERT INTO event_deliveries (shop_id, endpoint_id, outbox_id, member_id, status, attempts,"
        " next_attempt_at, created_at) SELECT :shop, (SELECT max(id) FROM event_endpoints), g, g % :members + 1,"
        " 'pending', 0, now() - interval '1 minute', now() FROM generate_series(1, :events - :unfanned) g",
        "UPDATE event_deliveries SET next_attempt_at = now() + interval '2 minutes' WHERE outbox_id <= :settled",
        "UPDATE event_deliveries SET status = 'delivered' WHERE outbox_id <= :settled",
    )
    values = {"shop": shop, "members": MEMBERS, "events": EVENTS, "settled": SETTLED, "unfanned": UNFANNED}
    for statement in statements:
        connection.execute(text(statement), values)


def plan_of(connection, query) -> dict:
    sql = str(query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    return connection.execute(text("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql)).scalar()[0]["Plan"]


def work(plan: dict) -> int:
    """Buffers read, plus the rows every node produced or filtered out, times its loops."""

    def visits(node: dict) -> int:
        loops = node.get("Actual Loops", 1)
        here = (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
                + node.get("Rows Removed by Join Filter", 0)) * loops  # fmt: skip
        return here + sum(visits(child) for child in node.get("Plans", ()))

    return plan["Shared Hit Blocks"] + plan["Shared Read Blocks"] + visits(plan)


def test_a_claims_statements_read_a_bounded_amount_per_pending_delivery_without_statistics(settings, shop):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plan and its buffers are PostgreSQL's")
    engine = engine_for(settings.database_url)
    with engine.connect() as connection:
        backlog(connection, shop)
        connection.commit()
        analyzed = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_user_tables WHERE relname IN ('event_deliveries', 'outbox_events')"
                " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
            )
        ).scalar()
        now = utcnow()
        heads = connection.execute(event_delivery.claimable(now, event_delivery.BATCH)).all()
        members = {head.member_id for head in heads}
        plans = {
            "choose": plan_of(connection, event_delivery.claimable(now, event_delivery.BATCH)),
            "unfanned": plan_of(connection, event_delivery.first_unfanned(shop, members)),
            "lock": plan_of(connection, event_delivery.still_due(shop, {head.id for head in heads}, now)),
            "events": plan_of(connection, event_delivery.by_key(OutboxEvent, shop, {h.outbox_id for h in heads})),
        }
        connection.rollback()  # EXPLAIN ANALYZE took the locks
    assert analyzed == 2, "the tables must be as a fresh server leaves them: never analyzed"
    assert len(heads) == event_delivery.BATCH and plans["lock"]["Actual Rows"] == event_delivery.BATCH
    assert plans["unfanned"]["Actual Rows"] == len(members)  # every chosen member has later events unfanned
    # A pass over the pending rows, a few reads each (about 120,000 in all here); a probe per candidate that read
    # every earlier delivery of the endpoint, or a join that re-read the unfanned set for each one (820,000), did
    # far more, and grew with the square of the backlog.
    spent = {name: work(plan) for name, plan in plans.items()}
    # Without statistics a lookup by id may still read the shop's rows once (its history): linear, bounded here.
    assert sum(spent.values()) < 12 * EVENTS, json.dumps(spent)
