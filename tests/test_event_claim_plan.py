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
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql

from plugin.db import engine_for
from plugin.models import EventDelivery, OutboxEvent, utcnow
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


def backlogged(settings, shop):
    """The engine of a database holding backlog(), skipping the test elsewhere than on PostgreSQL."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plan and its buffers are PostgreSQL's")
    engine = engine_for(settings.database_url)
    with engine.connect() as connection:
        backlog(connection, shop)
        connection.commit()
    return engine


def never_analyzed(connection, tables: tuple[str, ...]) -> int:
    """How many of these tables were never analyzed, by hand or by autovacuum."""
    return connection.execute(
        text(
            "SELECT count(*) FROM pg_stat_user_tables WHERE relname = ANY(:tables)"
            " AND last_analyze IS NULL AND last_autoanalyze IS NULL"
        ),
        {"tables": list(tables)},
    ).scalar()


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
    engine = backlogged(settings, shop)
    with engine.connect() as connection:
        analyzed = never_analyzed(connection, ("event_deliveries", "outbox_events"))
        now = utcnow()
        heads = connection.execute(event_delivery.claimable(now, event_delivery.BATCH)).all()
        members = {head.member_id for head in heads}
        plans = {
            "choose": plan_of(connection, event_delivery.claimable(now, event_delivery.BATCH)),
            "unfanned": plan_of(connection, event_delivery.first_unfanned(shop, members)),
            "lock": plan_of(connection, event_delivery.due_by_key(shop, {head.id for head in heads}, now)),
            "events": plan_of(
                connection,
                event_delivery.columns_by_key(
                    OutboxEvent, shop, {h.outbox_id for h in heads}, event_delivery.EVENT_COLUMNS
                ),
            ),
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
    # The lock probes each chosen delivery by its key (decision 0099): a few reads each, not a pass over the shop's
    # 9,600 pending deliveries by the pending index's shop_id prefix (about 20,000 here).
    # So are the events' fields it reads for the envelopes (about 32,000 by the outbox's shop_id prefix).
    assert spent["lock"] < 12 * event_delivery.BATCH, json.dumps(spent)
    assert spent["events"] < 12 * event_delivery.BATCH, json.dumps(spent)


def test_settling_a_send_reads_its_own_deliveries_not_every_pending_one_without_statistics(settings, shop):
    """_settle_delivered's statements, as it sends them, explained again with their parameters: what they read
    is bounded by the deliveries settled, not by the pending backlog (decision 0099)."""
    engine = backlogged(settings, shop)
    with engine.connect() as connection:
        pending = connection.execute(
            text("SELECT id, endpoint_id FROM event_deliveries WHERE status = 'pending' ORDER BY id DESC LIMIT 50")
        ).all()
    sent: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "event_deliveries" in statement and not statement.lstrip().upper().startswith("EXPLAIN"):
            sent.append((statement, parameters))

    claimed = [
        event_delivery._Claimed(row.id, shop, row.endpoint_id, "https://example.com/hook", b"", b"{}", f"e{row.id}",
                                "points.earned", "webhook")
        for row in pending
    ]  # fmt: skip
    ok = event_delivery.Outcome(200, None)
    event.listen(engine, "before_cursor_execute", capture)
    try:
        settled = event_delivery._settle_delivered(settings.database_url, [(c, ok) for c in claimed], utcnow())
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert settled == len(pending)
    with engine.connect() as connection:
        analyzed = never_analyzed(connection, ("event_deliveries",))
        connection.execute(text("UPDATE event_deliveries SET status = 'pending' WHERE id = ANY(:ids)"),
                           {"ids": [row.id for row in pending]})  # fmt: skip
        spent = []
        for statement, parameters in sent:
            plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, parameters)
            spent.append(work(plan.scalar()[0]["Plan"]))
        connection.rollback()
    assert analyzed == 1, "the table must be as a fresh server leaves it: never analyzed"
    assert spent, "the settlement sent no statement on event_deliveries"
    # A few reads and rows per delivery settled, each statement; a pass over the 9,600 pending deliveries by the
    # pending index's shop_id prefix read about 30,000.
    assert max(spent) < 40 * len(pending), spent


def test_the_lease_and_the_fan_out_mark_update_their_own_rows_not_the_shops_without_statistics(settings, shop):
    """The claim's lease (next_attempt_at) and fan-out's mark (fanned_out_at) update rows their transaction has
    locked, each found by its key (decision 0100): with `id IN (...)` beside shop_id, a never-analyzed table's
    planner read the shop's every row by shop_id and filtered on the ids, 32,000 and 36,000 here for 200 rows."""
    engine = backlogged(settings, shop)
    with engine.connect() as connection:
        analyzed = never_analyzed(connection, ("event_deliveries", "outbox_events"))
        now = utcnow()
        heads = connection.execute(event_delivery.claimable(now, event_delivery.BATCH)).all()
        lease = event_delivery.update_locked(
            "postgresql", EventDelivery, shop, {head.id for head in heads}, next_attempt_at=now
        )
        unfanned = connection.execute(
            text("SELECT id FROM outbox_events WHERE fanned_out_at IS NULL ORDER BY id LIMIT :n"),
            {"n": event_delivery.BATCH},
        ).scalars()
        mark = event_delivery.update_locked("postgresql", OutboxEvent, shop, set(unfanned), fanned_out_at=now)
        plans = {"lease": plan_of(connection, lease), "mark": plan_of(connection, mark)}
        leased = connection.execute(
            text("SELECT count(*) FROM event_deliveries WHERE next_attempt_at = :now"), {"now": now}
        ).scalar()
        marked = connection.execute(
            text("SELECT count(*) FROM outbox_events WHERE fanned_out_at = :now"), {"now": now}
        ).scalar()
        connection.rollback()
    assert analyzed == 2, "the tables must be as a fresh server leaves them: never analyzed"
    assert len(heads) == event_delivery.BATCH
    assert (leased, marked) == (event_delivery.BATCH, event_delivery.BATCH)  # each named row, no other
    spent = {name: work(plan) for name, plan in plans.items()}
    # A new version of each row and its index entries (both updates name an indexed column), a few reads each.
    assert max(spent.values()) < 40 * event_delivery.BATCH, json.dumps(spent)
