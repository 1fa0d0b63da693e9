"""Delivering the outbox: one delivery per event and endpoint, signed, retried with backoff, logged, replayable.

At least once: a delivery is leased before its request is sent and settled after, in separate transactions, so a
crash between the two sends it again (receivers dedupe by event id). Successes are settled a few dozen at a time,
failures one by one at once (decision 0047). Nothing is lost while Redis, the receiver or the shop is down: the
rows wait in the database and the sweeper queues this job again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from sqlalchemy import (
    BigInteger,
    Text,
    bindparam,
    cast,
    exists,
    func,
    literal,
    literal_column,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from plugin import platforms
from plugin.bulk_insert import insert_rows, integer_array_text
from plugin.config import Settings
from plugin.db import insert_for, transaction
from plugin.models import EventDelivery, EventEndpoint, Member, OutboxEvent, Shop, utcnow
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.platforms.shopify import flow
from plugin.services import event_endpoints

log = logging.getLogger(__name__)

PENDING, DELIVERED, GAVE_UP = "pending", "delivered", "gave_up"
YIELDED = "yielded"  # deliver() stopped early for more urgent work (should_yield)
RETRY_FOR = timedelta(hours=24)  # a delivery that failed for this long is given up (replayable from the log)
DISABLE_AFTER = timedelta(days=3)  # an endpoint that failed everything this long is disabled
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=2)
LEASE = timedelta(minutes=2)  # a claimed delivery is sent again after this if its sender died
TIMEOUT_SECONDS = 10.0
BATCH = 200
SETTLE_EVERY = 50  # successes settled together: a crash resends at most this many (receivers dedupe by event id)

SIGNATURE_HEADER = "Loyalty-Signature"
EVENT_ID_HEADER = "Loyalty-Event-Id"
EVENT_TYPE_HEADER = "Loyalty-Event-Type"

Sender = Callable[..., Any]  # requests.post's shape: (url, data=..., headers=..., timeout=..., allow_redirects=...)
Clock = Callable[[], datetime]


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256, hex, of "<timestamp>.<body>": the timestamp is signed so an old request cannot be replayed."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """What a receiver does (docs/receiving-events.md): a valid v1 signature on a timestamp within `tolerance`."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    return hmac.compare_digest(parts.get("v1", ""), signature(secret, timestamp, body))


def envelope(event: OutboxEvent, shop_domain: str, customer_id: int | None) -> dict[str, Any]:
    """The JSON every receiver gets (docs/events/*.schema.json): `sequence` orders one shop's events. `event` is an
    OutboxEvent or a row of its columns (a claim reads only those, EVENT_COLUMNS)."""
    return {
        "id": event.event_id,
        "type": event.event_type,
        "shop": shop_domain,
        "sequence": event.id,
        # A redacted member's customer id is negative (privacy.redact_customer): it names nobody in the shop.
        "customer_id": customer_id if customer_id is not None and customer_id > 0 else None,
        "occurred_at": event.occurred_at.isoformat(),
        "data": event.payload,
    }


def backoff(attempts: int, first: timedelta = FIRST_RETRY) -> timedelta:
    """The wait after the `attempts`-th failure: 30 s, 1 min, 2 min ... doubling, at most 2 hours."""
    return min(first * (2 ** max(min(attempts, 30) - 1, 0)), LONGEST_WAIT)


def _wants(endpoint: EventEndpoint, event: OutboxEvent) -> bool:
    return endpoint.event_types is None or event.event_type in endpoint.event_types


def fan_out(database_url: str, limit: int = 500, clock: Clock = utcnow) -> int:
    """Make each new event's deliveries, one per active endpoint that wants it; returns the events handled.

    Events are claimed with SKIP LOCKED and marked in the same transaction, so two workers never fan one out
    twice, and an event recorded by a transaction that commits late is still found (no cursor to skip it).
    """
    now = clock()
    with transaction(database_url) as session:
        # The columns fan-out reads, not the events: their payloads are read (and decoded) only when sent.
        events = session.execute(
            select(
                OutboxEvent.shop_id,
                OutboxEvent.id,
                OutboxEvent.member_id,
                OutboxEvent.event_type,
                OutboxEvent.created_at,
            )
            .where(OutboxEvent.fanned_out_at.is_(None))
            .order_by(OutboxEvent.shop_id, OutboxEvent.id)
            .limit(limit)
            .with_for_update(of=OutboxEvent, skip_locked=True)
        ).all()
        if not events:
            return 0
        make_deliveries(session, events, now)
        return len(events)


DELIVERY_CONFLICT = ("shop_id", "endpoint_id", "outbox_id")


def make_deliveries(session: Session, events, now: datetime) -> None:
    """Make each event's deliveries to the active endpoints that want it, in the caller's transaction; mark it.

    `events` have shop_id, id, member_id, event_type and created_at (rows or OutboxEvent objects). Set-based
    (decision 0054): one INSERT of every delivery, one UPDATE marking the events per shop, whatever their number.
    """
    shop_ids = sorted({event.shop_id for event in events})
    active: dict[int, list[EventEndpoint]] = {shop_id: [] for shop_id in shop_ids}
    for endpoint in session.scalars(
        select(EventEndpoint).where(EventEndpoint.shop_id.in_(shop_ids), EventEndpoint.disabled_at.is_(None))
    ):
        active[endpoint.shop_id].append(endpoint)
    rows = [
        {
            "shop_id": event.shop_id,
            "endpoint_id": endpoint.id,
            "outbox_id": event.id,
            "member_id": event.member_id,
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for event in events
        for endpoint in active[event.shop_id]
        # An endpoint receives the events recorded after it was registered, not the shop's whole past.
        if _wants(endpoint, event) and event.created_at >= endpoint.created_at
    ]
    if rows and session.get_bind().dialect.name == "postgresql":  # one array per column (plugin/bulk_insert.py)
        insert_rows(session, EventDelivery.__table__, rows, DELIVERY_CONFLICT)
    elif rows:
        session.execute(
            insert_for(session)(EventDelivery).values(rows).on_conflict_do_nothing(index_elements=DELIVERY_CONFLICT)
        )
    _update_per_shop(session, OutboxEvent, ((event.shop_id, event.id) for event in events), fanned_out_at=now)


@dataclass(frozen=True)
class _Claimed:
    delivery_id: int
    shop_id: int
    endpoint_id: int
    url: str
    secret: bytes
    body: bytes
    event_id: str
    event_type: str
    kind: str = event_endpoints.WEBHOOK


# Spelled into the SQL, not bound: a partial index's predicate (status = 'pending') can serve a prepared statement's
# generic plan only when the value is in the text. psycopg prepares a statement after its fifth run on a connection.
PENDING_SQL = literal_column(f"'{PENDING}'")


def claimable(now: datetime, limit: int):
    """The due deliveries to active endpoints that are their member's next, oldest event first.

    A member's events reach each endpoint in the order they happened: a later one goes only once the earlier one
    is delivered or given up (24 hours of retries, or a 410). Read from the database at each claim, so it holds
    across workers and restarts; a pending delivery of a disabled endpoint holds only that endpoint's. Events of no
    member hold nothing. One pass over the pending rows, ranked per member and endpoint (decision 0049): a probe per
    candidate, as a NOT EXISTS was, let a planner without statistics read the whole endpoint's past for each one.
    Rows of (shop_id, id, member_id, outbox_id); _choose then drops those an earlier unfanned event holds.
    """
    place = func.row_number().over(
        partition_by=(EventDelivery.shop_id, EventDelivery.endpoint_id, EventDelivery.member_id),
        order_by=EventDelivery.outbox_id,
    )
    ranked = (
        select(
            EventDelivery.shop_id,
            EventDelivery.id,
            EventDelivery.endpoint_id,
            EventDelivery.member_id,
            EventDelivery.outbox_id,
            EventDelivery.next_attempt_at,
            place.label("place"),
        )
        .where(EventDelivery.status == PENDING_SQL)
        .subquery("ranked")
    )
    return (
        select(ranked.c.shop_id, ranked.c.id, ranked.c.member_id, ranked.c.outbox_id)
        .join(EventEndpoint, (EventEndpoint.shop_id == ranked.c.shop_id) & (EventEndpoint.id == ranked.c.endpoint_id))
        .where(
            (ranked.c.place == 1) | ranked.c.member_id.is_(None),
            ranked.c.next_attempt_at <= now,
            EventEndpoint.disabled_at.is_(None),
        )
        .order_by(ranked.c.outbox_id, ranked.c.id)
        .limit(limit)
    )


def first_unfanned(shop_id: int, member_ids):
    """Per member of one shop, their earliest event with no deliveries made yet (not fanned out).

    Fan-out takes its chunk of events with SKIP LOCKED, so two workers fan out neighbouring chunks at once; the one
    holding a member's later events may commit, and claim, before the one holding their earlier ones. Without
    this, the later event would find no earlier pending delivery and go first (and a killed fan-out leaves its
    chunk unfanned for the next one). Only the chosen members, from a partial index that stays small.
    """
    return (
        select(OutboxEvent.member_id, func.min(OutboxEvent.id))
        .where(
            OutboxEvent.shop_id == shop_id,
            OutboxEvent.member_id.in_(member_ids),
            OutboxEvent.fanned_out_at.is_(None),
        )
        .group_by(OutboxEvent.member_id)
    )


def still_due(shop_id: int, ids, now: datetime):
    """One shop's chosen deliveries locked, those still pending and due, skipping rows another worker holds."""
    return (
        select(EventDelivery)
        .where(
            EventDelivery.shop_id == shop_id,
            EventDelivery.id.in_(ids),
            EventDelivery.status == PENDING_SQL,
            EventDelivery.next_attempt_at <= now,
        )
        .order_by(EventDelivery.outbox_id, EventDelivery.id)
        .with_for_update(skip_locked=True)
    )


# On PostgreSQL a claim's chosen deliveries are locked, and its sent ones settled, each by its key (decision 0099).
# With `id IN (...)` beside shop_id and the pending status, the planner took the pending rows' partial index
# (shop, endpoint, member, outbox id) by shop_id alone and filtered on the ids: every pending delivery of the shop
# read for each claim and each settlement, so a backlog's work grew with its square (in the end-to-end benchmark's
# programme, about 11,000 buffers a statement, 6.7 million for the settlements of one run). Each probe names the
# key alone, so no partial index's predicate matches it, and the status is checked on the row it locked (OFFSET 0
# keeps that check out of the probe); a row locked that is no longer due is released when the claim commits.
_DUE_BY_KEY = (
    "SELECT d.* FROM unnest(CAST(:ids AS BIGINT[])) AS k (id) CROSS JOIN LATERAL ("
    "SELECT * FROM event_deliveries WHERE shop_id = :shop_id AND id = k.id OFFSET 0 FOR UPDATE SKIP LOCKED) AS d"
    " WHERE d.status = 'pending' AND d.next_attempt_at <= :now"
)


def due_by_key(shop_id: int, ids, now: datetime):
    """still_due on PostgreSQL: each chosen delivery probed by its key, in id order (locks never wait here)."""
    statement = text(_DUE_BY_KEY).bindparams(
        bindparam("ids", integer_array_text(sorted(ids)), type_=Text),
        bindparam("shop_id", shop_id, type_=BigInteger),
        bindparam("now", now, type_=EventDelivery.__table__.c.next_attempt_at.type),
    )
    return select(EventDelivery).from_statement(statement)


def by_key(model, shop_id: int, ids, columns=()):
    """Rows of one shop of a (shop_id, id)-keyed table: the mapped objects, or only `columns` (with shop_id and id)."""
    chosen = (model.shop_id, model.id, *columns) if columns else (model,)
    return select(*chosen).where(model.shop_id == shop_id, model.id.in_(ids))


def columns_by_key(model, shop_id: int, ids, columns):
    """by_key's `columns` on PostgreSQL, each row probed by its key (decision 0099): with `id IN (...)` the planner
    of a never-analyzed outbox read the shop's events by shop_id alone, about 160 rows for each one a claim wanted."""
    keys = func.unnest(cast(literal(integer_array_text(sorted(ids)), Text), ARRAY(BigInteger))).table_valued("id")
    keys = keys.render_derived(name="k")  # unnest(...) AS k (id)
    found = (
        select(model.shop_id, model.id, *columns)
        .where(model.shop_id == shop_id, model.id == keys.c.id)
        .offset(0)  # kept a probe per key, not flattened into a join the planner may run by shop_id alone
        .lateral("found")
    )
    return select(*found.c).select_from(keys).join(found, true())


def update_locked(dialect: str, model, shop_id: int, ids, **values):
    """An UPDATE setting `values` on one shop's rows of a (shop_id, id)-keyed table that this transaction has
    locked. On PostgreSQL each row is found by its key (a LATERAL probe, as in columns_by_key) and updated by its
    ctid, which cannot move while the lock is held (decision 0100): with `id IN (...)` a never-analyzed table's
    planner read every row of the shop by shop_id alone for each statement, so a backlog's lease and fan-out grew
    with its square."""
    if dialect != "postgresql":
        return update(model).where(model.shop_id == shop_id, model.id.in_(sorted(ids))).values(**values)
    table = model.__table__
    statement = text(_update_by_key(table.name, ", ".join(f"{name} = :{name}" for name in values), ":ids", ":shop_id"))
    return statement.bindparams(
        bindparam("ids", integer_array_text(sorted(ids)), type_=Text),
        bindparam("shop_id", shop_id, type_=BigInteger),
        *(bindparam(name, value, type_=table.c[name].type) for name, value in values.items()),
    )


def _update_by_key(table: str, changes: str, ids: str, shop: str) -> str:
    """The SQL of an UPDATE of one shop's rows this transaction has locked (update_locked's and the settlement's):
    each row found by its key, OFFSET 0 keeping the planner from flattening the probe into a join that reads the shop
    by shop_id alone, and updated by its ctid. `ids` and `shop` are the placeholders of the ids' array text and the
    shop; the table and the changes are the code's, never input."""
    return (
        f"UPDATE {table} SET {changes} FROM ("
        f"SELECT found.at FROM unnest(CAST({ids} AS BIGINT[])) AS k (id) CROSS JOIN LATERAL ("
        f"SELECT ctid AS at FROM {table} WHERE shop_id = {shop} AND id = k.id OFFSET 0) AS found"
        f") AS located WHERE {table}.ctid = located.at AND {table}.shop_id = {shop}"
    )


def _by_shop(pairs) -> dict[int, set]:
    grouped: dict[int, set] = {}
    for shop_id, key in pairs:
        grouped.setdefault(shop_id, set()).add(key)
    return grouped


def _update_per_shop(session: Session, model, pairs, **values) -> None:
    """Set `values` on the rows named by (shop_id, id) pairs, which this transaction has locked: one UPDATE per shop,
    each naming its shop (Citus), each row by its key (update_locked)."""
    dialect = session.get_bind().dialect.name
    for shop_id, ids in _by_shop(pairs).items():
        statement = update_locked(dialect, model, shop_id, ids, **values)
        session.execute(statement.execution_options(synchronize_session=False))


def _choose(session: Session, now: datetime, limit: int) -> list:
    """The claimable rows no unfanned earlier event of their member holds."""
    heads = session.execute(claimable(now, limit)).all()
    held: dict[tuple[int, int], int] = {}
    for shop_id, member_ids in _by_shop((h.shop_id, h.member_id) for h in heads if h.member_id is not None).items():
        for member_id, first in session.execute(first_unfanned(shop_id, member_ids)):
            held[(shop_id, member_id)] = first
    return [h for h in heads if held.get((h.shop_id, h.member_id), h.outbox_id) >= h.outbox_id]


def _lock(session: Session, chosen: list, now: datetime) -> list[EventDelivery]:
    """The chosen rows still pending and due, locked; shop by shop, each statement naming its shop."""
    locked: list[EventDelivery] = []
    by_key_ = session.get_bind().dialect.name == "postgresql"
    for shop_id, ids in _by_shop((row.shop_id, row.id) for row in chosen).items():
        locked += session.scalars((due_by_key if by_key_ else still_due)(shop_id, ids, now)).all()
    return sorted(locked, key=lambda d: (d.outbox_id, d.id))


def _rows_by_key(session: Session, model, pairs, columns=()) -> dict[tuple[int, int], Any]:
    """By (shop_id, id): mapped objects, or rows of `columns` (a claim's events and members: building 200 mapped
    objects of each per batch was most of the claim's Python)."""
    rows = {}
    for shop_id, ids in _by_shop(pairs).items():
        if columns and session.get_bind().dialect.name == "postgresql":
            found = session.execute(columns_by_key(model, shop_id, ids, columns))
        else:
            query = by_key(model, shop_id, ids, columns)
            found = session.execute(query) if columns else session.scalars(query)
        rows.update({(shop_id, row.id): row for row in found})
    return rows


# What a claim reads of its events (envelope's fields) and of their members.
EVENT_COLUMNS = (
    OutboxEvent.event_id,
    OutboxEvent.event_type,
    OutboxEvent.member_id,
    OutboxEvent.payload,
    OutboxEvent.occurred_at,
)
MEMBER_COLUMNS = (Member.customer_id,)


CHOOSE_TRIES = 3  # another worker may take every chosen row between the choice and the lock: choose again


def _claim(database_url: str, now: datetime, limit: int) -> list[_Claimed] | None:
    """Lease a batch of due deliveries for this worker to send: chosen without locks, then locked if still due.

    Statements over sets, never a lookup per row, so no plan can turn a batch into a scan per delivery. A row
    another worker leased in between is skipped (locked) or no longer due (its lease moved next_attempt_at); if
    that left nothing, the choice is made again. None when nothing can go now (nothing due, or every due one held
    behind a fan-out still running), [] when other workers took it all.
    """
    with transaction(database_url) as session:
        deliveries: list[EventDelivery] = []
        for _ in range(CHOOSE_TRIES):
            chosen = _choose(session, now, limit)
            if not chosen:
                return None
            deliveries = _lock(session, chosen, now)
            if deliveries:
                break
        endpoints = _rows_by_key(session, EventEndpoint, {(d.shop_id, d.endpoint_id) for d in deliveries})
        events = _rows_by_key(session, OutboxEvent, {(d.shop_id, d.outbox_id) for d in deliveries}, EVENT_COLUMNS)
        members = _rows_by_key(
            session, Member, {(e.shop_id, e.member_id) for e in events.values() if e.member_id}, MEMBER_COLUMNS
        )
        domains = dict(
            session.execute(select(Shop.id, Shop.domain).where(Shop.id.in_({d.shop_id for d in deliveries}))).all()
        )
        claimed = []
        for delivery in deliveries:
            endpoint = endpoints.get((delivery.shop_id, delivery.endpoint_id))
            event = events.get((delivery.shop_id, delivery.outbox_id))
            if endpoint is None or endpoint.disabled_at is not None or event is None:
                continue  # disabled since the choice (left pending, as a disabled endpoint's are), or no event
            member = members.get((event.shop_id, event.member_id))
            customer_id = member.customer_id if member is not None else None
            envelope_ = envelope(event, domains[delivery.shop_id], customer_id)
            body = json.dumps(envelope_, separators=(",", ":"), sort_keys=True).encode()
            claimed.append(
                _Claimed(
                    delivery.id, delivery.shop_id, endpoint.id, endpoint.url, endpoint.secret, body,
                    event.event_id, event.event_type, endpoint.kind or event_endpoints.WEBHOOK,
                )
            )  # fmt: skip
        _lease(session, claimed, now + LEASE)
        return claimed


def _lease(session: Session, claimed: list[_Claimed], until: datetime) -> None:
    """Move the claimed deliveries' next attempt past the send: one UPDATE per shop, not one per row (a flush
    of the changed objects sent one UPDATE per delivery)."""
    _update_per_shop(
        session, EventDelivery, ((item.shop_id, item.delivery_id) for item in claimed), next_attempt_at=until
    )


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _fire_flow(settings: Settings, claimed: _Claimed) -> Outcome:
    """Shopify Flow: the event as its trigger's payload, through the shop's Admin API (docs/events.md)."""
    envelope = json.loads(claimed.body)
    if envelope.get("customer_id") is None:
        # Every trigger starts with a customer reference; an erased member names nobody, and retrying for 24 hours
        # would not change that. Settled as done, with the reason in the log.
        return Outcome(204, "not sent to Flow: the event names no customer (erased member)")
    with transaction(settings.database_url) as session:
        shop = session.get(Shop, claimed.shop_id)
        try:
            client = platforms.admin_client(settings, shop)
        except Exception as error:  # no token (uninstalled): retried, then given up like any failure
            return Outcome(None, f"no Admin API client: {error}"[:500])
    try:
        flow.fire(client, envelope)
    except (AdminAPIError, AdminAPIUnavailable) as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(200, None)


def _send(
    settings: Settings, claimed: _Claimed, sender: Sender, now: datetime, resolver, secrets: dict[bytes, str]
) -> Outcome:
    if claimed.kind == event_endpoints.FLOW:
        return _fire_flow(settings, claimed)
    problems = event_endpoints.url_problems(
        claimed.url, allow_loopback=settings.events_allow_loopback, resolver=resolver
    )
    if problems:  # the name now points somewhere it may not (DNS rebinding): refuse to send
        return Outcome(None, f"refused: {problems[0]}")
    # Decrypted once per stored secret in a run, not per event: keyed by the ciphertext, so a secret rotated
    # meanwhile (a new ciphertext) is decrypted anew.
    secret = secrets.get(claimed.secret)
    if secret is None:
        secret = secrets[claimed.secret] = event_endpoints.crypto.decrypt(claimed.secret, settings.encryption_keys)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "loyalty-events/1",
        SIGNATURE_HEADER: signature_header(secret, timestamp, claimed.body),
        EVENT_ID_HEADER: claimed.event_id,
        EVENT_TYPE_HEADER: claimed.event_type,
    }
    try:
        response = sender(
            claimed.url, data=claimed.body, headers=headers, timeout=TIMEOUT_SECONDS, allow_redirects=False
        )
    except requests.RequestException as error:
        return Outcome(None, f"{type(error).__name__}: {error}"[:500])
    return Outcome(response.status_code, None if 200 <= response.status_code < 300 else f"HTTP {response.status_code}")


def _settle(
    database_url: str, claimed: _Claimed, outcome: Outcome, now: datetime, first_retry: timedelta = FIRST_RETRY
) -> str:
    with transaction(database_url) as session:
        delivery = session.get(EventDelivery, claimed.delivery_id, with_for_update=True)
        endpoint = session.scalars(
            select(EventEndpoint)
            .where(EventEndpoint.shop_id == claimed.shop_id, EventEndpoint.id == claimed.endpoint_id)
            .with_for_update()
        ).one_or_none()
        if delivery is None or delivery.status != PENDING:
            return "settled already"
        delivery.attempts += 1
        delivery.last_status = outcome.status
        delivery.last_error = outcome.error
        if outcome.ok:
            delivery.status = DELIVERED
            delivery.delivered_at = now
            if endpoint is not None:
                endpoint.last_success_at = now
                endpoint.failing_since = None
            return DELIVERED
        if endpoint is not None:
            endpoint.failing_since = endpoint.failing_since or now
            if outcome.status == 410:
                event_endpoints.disable(session, endpoint, "the receiver answered 410 Gone")
            elif now - endpoint.failing_since >= DISABLE_AFTER:
                event_endpoints.disable(session, endpoint, f"every delivery failed for 3 days (last: {outcome.error})")
        if now - delivery.created_at >= RETRY_FOR or outcome.status == 410:
            delivery.status = GAVE_UP
            return GAVE_UP
        delivery.next_attempt_at = now + backoff(delivery.attempts, first_retry)
        return "retry"


def _settle_delivered(database_url: str, settled: list[tuple[_Claimed, Outcome]], now: datetime) -> int:
    """Settle successful sends in one transaction, a set-based UPDATE per answer (on PostgreSQL a lock by key, then
    the UPDATE of the rows locked: _delivered_by_key); returns those settled now.

    What `_settle` does for a 2xx, for many at once: a delivery another worker settled meanwhile (its lease lapsed)
    is left alone. Deliveries are written before endpoints, as `_settle` locks them, and endpoints in one order,
    so two workers settling at once never wait on each other in a cycle.
    """
    if not settled:
        return 0
    # Per shop (every query is scoped to one) and answer: nearly always one 200 (or Flow's "names no customer" note).
    by_answer: dict[tuple[int, Outcome], list[int]] = {}
    for claimed, outcome in settled:
        by_answer.setdefault((claimed.shop_id, outcome), []).append(claimed.delivery_id)
    endpoints = sorted({(claimed.shop_id, claimed.endpoint_id) for claimed, _outcome in settled})
    done = 0
    with transaction(database_url) as session:
        for (shop_id, outcome), ids in by_answer.items():
            if session.get_bind().dialect.name == "postgresql":
                done += _delivered_by_key(session, shop_id, sorted(ids), outcome, now)
                continue
            done += session.execute(
                update(EventDelivery)
                .where(EventDelivery.shop_id == shop_id, EventDelivery.id.in_(sorted(ids)))
                .where(EventDelivery.status == PENDING)
                .values(
                    status=DELIVERED, attempts=EventDelivery.attempts + 1, last_status=outcome.status,
                    last_error=outcome.error,
                    delivered_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount  # fmt: skip
        for shop_id, endpoint_id in endpoints:  # the endpoint answered 2xx: it is healthy again
            session.execute(
                update(EventEndpoint)
                .where(EventEndpoint.shop_id == shop_id, EventEndpoint.id == endpoint_id)
                .values(last_success_at=now, failing_since=None)
                .execution_options(synchronize_session=False)
            )
    return done


def _delivered_by_key(session: Session, shop_id: int, ids: list[int], outcome: Outcome, now: datetime) -> int:
    """_settle_delivered's UPDATE on PostgreSQL, each delivery by its key (decision 0099): those still pending
    locked first, in id order (waiting for a worker that holds one, as the UPDATE did), then updated by the row
    each lock found, which cannot move while this transaction holds it. Returns how many were settled."""
    connection = session.connection()
    params = {"shop": shop_id, "ids": integer_array_text(ids)}
    found = [row[0] for row in connection.exec_driver_sql(_PENDING_LOCKED, params)]
    if not found:
        return 0
    stamp = EventDelivery.__table__.c.delivered_at.type.process_bind_param
    values = {
        "shop": shop_id, "ids": integer_array_text(found), "delivered": DELIVERED, "status": outcome.status,
        "error": outcome.error, "at": stamp(now, connection.dialect),
    }  # fmt: skip
    return connection.exec_driver_sql(_DELIVERED, values).rowcount


_PENDING_LOCKED = """
    SELECT d.id FROM unnest(CAST(%(ids)s AS bigint[])) AS k (id)
    CROSS JOIN LATERAL (
        SELECT id, status FROM event_deliveries WHERE shop_id = %(shop)s AND id = k.id OFFSET 0 FOR UPDATE
    ) AS d
    WHERE d.status = 'pending'
"""
# _PENDING_LOCKED locked each row in this transaction, so its ctid cannot move.
_DELIVERED = _update_by_key(
    "event_deliveries",
    "status = %(delivered)s, attempts = event_deliveries.attempts + 1, last_status = %(status)s,"
    " last_error = %(error)s, delivered_at = %(at)s",
    "%(ids)s",
    "%(shop)s",
)


@contextmanager
def _sending(sender: Sender | None) -> Iterator[Sender]:
    """`sender` as given, else one requests.Session's post for the whole run: kept-alive connections per endpoint.

    The session takes no cookies: it sends to many shops' receivers, and one must never see another's. Each send
    still resolves and checks the host name first (`_send`), so a pooled connection never hides a rebinding.
    The environment's proxies and CA bundle are read once per URL in a run, not per request (decision 0060):
    requests reads them from os.environ for every post when `trust_env` is on, a third of its work per event.
    Each URL's request is prepared once in a run too (decision 0076): every post to it differs only in its body and
    its signed headers, and Session.post prepared it whole anew (URL parsing, settings and headers merged, cookies),
    a third of the run's CPU; a copy of the prepared template with those filled in goes to Session.send.
    """
    if sender is not None:
        yield sender
        return
    with requests.Session() as session:
        session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # Off for every send: what it would read is passed in. It also drops the netrc look-up, whose credentials
        # are the machine's, never a merchant receiver's.
        session.trust_env = False
        environment: dict[str, dict[str, Any]] = {}
        templates: dict[str, requests.PreparedRequest] = {}

        def post(url: str, *, data: bytes, headers: dict[str, str], **kwargs: Any) -> requests.Response:
            template = templates.get(url)
            if template is None:
                environment[url] = _environment(url)
                template = templates[url] = session.prepare_request(requests.Request("POST", url, data=b"x"))
            request = template.copy()
            request.headers.update(headers)
            request.prepare_body(data, None)  # the body and its Content-Length, as Session.post sets them
            return session.send(request, **environment[url], **kwargs)

        yield post


def _environment(url: str) -> dict[str, Any]:
    """The proxies, CA bundle and client certificate requests would take from the environment for `url`."""
    with requests.Session() as probe:  # trust_env on, as by default
        found = probe.merge_environment_settings(url, {}, None, None, None)
    return {"proxies": found["proxies"], "verify": found["verify"], "cert": found["cert"]}


def deliver(
    settings: Settings,
    *,
    sender: Sender | None = None,
    clock: Clock = utcnow,
    resolver: event_endpoints.Resolver | None = None,
    batches: int = 50,
    should_yield: Callable[[], bool] | None = None,
) -> dict[str, int]:
    """Fan out new events, then send what is due, batch after batch; returns counts by outcome.

    `should_yield` is asked after each batch: True stops the run early, counted as YIELDED (work may be left due).
    """
    counts: dict[str, int] = {}
    while fan_out(settings.database_url, clock=clock) and batches > 0:
        batches -= 1
    first_retry = timedelta(seconds=settings.events_first_retry_seconds)

    def count(result: str, n: int = 1) -> None:
        if n:
            counts[result] = counts.get(result, 0) + n

    def settle_successes(successes: list[tuple[_Claimed, Outcome]]) -> None:
        done = _settle_delivered(settings.database_url, successes, clock())
        count(DELIVERED, done)
        count("settled already", len(successes) - done)
        successes.clear()

    secrets: dict[bytes, str] = {}  # each endpoint's secret decrypted once per run (by its ciphertext)
    with _sending(sender) as send:
        for _ in range(batches):
            now = clock()
            claimed = _claim(settings.database_url, now, BATCH)
            if claimed is None:
                break  # nothing due; a batch others took whole, or of disabled endpoints only, goes on
            if not claimed:
                continue
            disabled: set[int] = set()
            successes: list[tuple[_Claimed, Outcome]] = []
            for item in claimed:
                if item.endpoint_id in disabled:
                    continue  # disabled by an earlier answer in this batch: its lease lapses, it waits for re-enabling
                outcome = _send(settings, item, send, now, resolver, secrets)
                if outcome.ok:
                    successes.append((item, outcome))
                    if len(successes) >= SETTLE_EVERY:
                        settle_successes(successes)
                    continue
                # A failure is settled at once, after the successes before it (the endpoint's state follows the
                # answers in order): it may disable the endpoint for the rest of this batch.
                settle_successes(successes)
                result = _settle(settings.database_url, item, outcome, clock(), first_retry)
                count(result)
                if outcome.status == 410 or result == GAVE_UP:
                    disabled |= _disabled(settings.database_url, item)
            settle_successes(successes)
            # No stop at a short batch: a member's next event was held behind the one just delivered, and is due now.
            if should_yield is not None and should_yield():
                count(YIELDED)
                break
    return counts


def _disabled(database_url: str, claimed: _Claimed) -> set[int]:
    with transaction(database_url) as session:
        endpoint = session.scalars(
            select(EventEndpoint).where(
                EventEndpoint.shop_id == claimed.shop_id, EventEndpoint.id == claimed.endpoint_id
            )
        ).one_or_none()
        return {claimed.endpoint_id} if endpoint is None or endpoint.disabled_at is not None else set()


def any_due(database_url: str, clock: Clock = utcnow) -> bool:
    """Whether events wait to be fanned out or deliveries are due (the sweeper's cheap check)."""
    with transaction(database_url) as session:
        unfanned = session.execute(select(exists().where(OutboxEvent.fanned_out_at.is_(None)))).scalar()
        due = session.execute(
            select(exists().where(EventDelivery.status == PENDING_SQL, EventDelivery.next_attempt_at <= clock()))
        ).scalar()
        return bool(unfanned or due)


def replay(
    session: Session,
    shop_id: int,
    *,
    event_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    endpoint_id: int | None = None,
    clock: Clock = utcnow,
) -> int:
    """Send again one event, or every event recorded in [since, until), to one endpoint or to all active ones.

    The same event id goes out again (receivers dedupe by it). Deliveries missing for an endpoint (it was
    registered later, or disabled then) are made. Returns the deliveries queued.
    """
    query = select(OutboxEvent).where(OutboxEvent.shop_id == shop_id)
    if event_id is not None:
        query = query.where(OutboxEvent.event_id == event_id)
    if since is not None:
        query = query.where(OutboxEvent.created_at >= since)
    if until is not None:
        query = query.where(OutboxEvent.created_at < until)
    events = list(session.scalars(query.order_by(OutboxEvent.id).limit(100_000)))
    targets = [e for e in event_endpoints.endpoints(session, shop_id) if e.disabled_at is None]
    if endpoint_id is not None:
        targets = [e for e in targets if e.id == endpoint_id]
    now = clock()
    queued = 0
    for endpoint in targets:
        wanted = [event for event in events if _wants(endpoint, event)]
        if not wanted:
            continue
        rows = [
            {"shop_id": shop_id, "endpoint_id": endpoint.id, "outbox_id": event.id, "member_id": event.member_id,
             "status": PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now}
            for event in wanted
        ]  # fmt: skip
        session.execute(
            insert_for(session)(EventDelivery)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["shop_id", "endpoint_id", "outbox_id"])
        )
        # Existing rows start again: pending now, with a fresh 24-hour retry window.
        session.execute(
            update(EventDelivery)
            .where(
                EventDelivery.shop_id == shop_id,
                EventDelivery.endpoint_id == endpoint.id,
                EventDelivery.outbox_id.in_([event.id for event in wanted]),
            )
            .values(status=PENDING, next_attempt_at=now, created_at=now)
            .execution_options(synchronize_session=False)
        )
        queued += len(wanted)
    return queued


def delivery_log(
    session: Session,
    shop_id: int,
    *,
    endpoint_id: int | None = None,
    status: str | None = None,
    event_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest deliveries first: event, endpoint, status, attempts, the receiver's last answer."""
    query = (
        select(EventDelivery, OutboxEvent.event_id, OutboxEvent.event_type, OutboxEvent.occurred_at)
        .join(OutboxEvent, (OutboxEvent.shop_id == EventDelivery.shop_id) & (OutboxEvent.id == EventDelivery.outbox_id))
        .where(EventDelivery.shop_id == shop_id)
    )
    if endpoint_id is not None:
        query = query.where(EventDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(EventDelivery.status == status)
    if event_id is not None:
        query = query.where(OutboxEvent.event_id == event_id)
    rows = session.execute(query.order_by(EventDelivery.id.desc()).limit(limit)).all()
    return [
        {
            "id": delivery.id,
            "endpoint_id": delivery.endpoint_id,
            "event_id": event_id_,
            "event_type": event_type,
            "sequence": delivery.outbox_id,
            "occurred_at": occurred_at.isoformat(),
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_status": delivery.last_status,
            "last_error": delivery.last_error,
            "next_attempt_at": delivery.next_attempt_at.isoformat() if delivery.status == PENDING else None,
            "delivered_at": delivery.delivered_at.isoformat() if delivery.delivered_at else None,
        }
        for delivery, event_id_, event_type, occurred_at in rows
    ]
