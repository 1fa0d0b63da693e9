"""The webhook inbox: store each delivery before acking, then claim and process them in batches."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from marshmallow import ValidationError
from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    bindparam,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified, set_committed_value

from plugin import direct, inbox_shoppers, platforms
from plugin.config import Settings
from plugin.db import dialect_insert, engine_for, insert_for, transaction, unprepared
from plugin.models import Delivery, DeliveryClaim, Shop, utcnow
from plugin.programme import events
from plugin.services import accrual, batch_accrual, privacy

log = logging.getLogger(__name__)

RECEIVED, PROCESSED, IGNORED, PARKED = "received", "processed", "ignored", "parked"


# Why an app/uninstalled must not be acted on (the shop's Admin API still takes our token), or None to go ahead.
UninstallCheck = Callable[[Session, Shop], "str | None"]


class Unprocessable(Exception):
    """An authenticated delivery that cannot be processed as it stands; it is parked with this reason."""


class Discarded(Unprocessable):
    """Parked, and its body not kept: it is for a shop whose data was erased."""


@dataclass(frozen=True)
class IncomingDelivery:
    shop_domain: str
    topic: str
    webhook_id: str
    body: bytes
    event_id: str | None = None
    triggered_at: str | None = None
    api_version: str | None = None
    platform: str = "shopify"
    parked_reason: str | None = None  # stored already parked (headers no shop sends), never processed


def store(engine: Engine, incoming: IncomingDelivery) -> int | None:
    """Insert the delivery in one statement, committed; None when this delivery was already stored.

    On PostgreSQL, in autocommit mode, the INSERT is its own transaction: one round trip instead of BEGIN,
    INSERT, COMMIT, and just as durable (the answer waits for the commit).
    """
    values = {
        "platform": incoming.platform,
        "shop_domain": incoming.shop_domain,
        "topic": incoming.topic,
        "webhook_id": incoming.webhook_id,
        "event_id": incoming.event_id,
        "triggered_at": incoming.triggered_at,
        "api_version": incoming.api_version,
        "body": incoming.body,
        "received_at": utcnow(),
        "status": RECEIVED if incoming.parked_reason is None else PARKED,
        "reason": incoming.parked_reason,
        "attempts": 0,
    }
    if engine.dialect.name == "postgresql":
        row = direct.fetch_one(engine, _STORE_SQL, values)
        return row[0] if row is not None else None
    with engine.begin() as connection:  # SQLite keeps its BEGIN IMMEDIATE recipe (plugin/db.py)
        return connection.execute(_store_statement(engine.dialect.name), values).scalar()


# The ack path's one statement on PostgreSQL, sent on a pooled psycopg connection without SQLAlchemy (its
# per-statement work was a third of the path's Python time); autocommit, so committed before the 200.
_STORE_SQL = """
    INSERT INTO deliveries (platform, shop_domain, topic, webhook_id, event_id, triggered_at, api_version, body,
                            received_at, status, reason, attempts)
    VALUES (%(platform)s, %(shop_domain)s, %(topic)s, %(webhook_id)s, %(event_id)s, %(triggered_at)s,
            %(api_version)s, %(body)s, %(received_at)s, %(status)s, %(reason)s, %(attempts)s)
    ON CONFLICT (shop_domain, webhook_id) DO NOTHING
    RETURNING id
"""


@lru_cache(maxsize=4)
def _store_statement(dialect: str):
    """The inbox INSERT, built once per dialect (building it per request cost more than sending it)."""
    insert = dialect_insert(dialect)
    columns = ("platform", "shop_domain", "topic", "webhook_id", "event_id", "triggered_at", "api_version", "body",
               "received_at", "status", "reason", "attempts")  # fmt: skip
    return (
        insert(Delivery)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["shop_domain", "webhook_id"])
        .returning(Delivery.id)
    )


MAX_ATTEMPTS = 3  # claims that never finished (a timeout, a killed worker) before a delivery is parked unread
# After its second unfinished claim, a delivery waits this long before each further one: a burst of worker kills
# cannot use up its attempts in seconds, and a poison delivery is skipped meanwhile instead of stalling the drain.
# The setting's default (LOYALTY_INBOX_RETRY_WAIT_SECONDS), so a drain called without settings waits the same.
RETRY_WAIT = timedelta(seconds=Settings.inbox_retry_wait_seconds)


def drain(
    database_url: str,
    batch_size: int = 200,
    on_full_batch: Callable[[], None] | None = None,
    max_conflict_retries: int = 5,
    confirm_uninstall: UninstallCheck | None = None,
    stop_on: tuple[type[BaseException], ...] = (),
    set_based: bool = True,
    retry_wait: timedelta = RETRY_WAIT,
    clock: Callable[[], datetime] = utcnow,
    cut_short: Callable[[], bool] | None = None,
) -> Counter[str]:
    """Process waiting deliveries until none is left (or `cut_short` says so); several processes may drain at once.

    Each batch is claimed with FOR UPDATE SKIP LOCKED and processed in one transaction, so a process
    killed mid-batch leaves its rows waiting for the next drain, never half-applied. The claim itself is
    counted apart, committed at once (see _claim): a delivery claimed MAX_ATTEMPTS times without finishing
    (its drain timed out or was killed each time) is parked unread, and one claimed before is retried alone,
    at once after its first unfinished claim, then `retry_wait` after the last one.

    A batch is first tried optimistically, without a savepoint per delivery (two round trips each). If any
    delivery cannot be processed, the batch is rolled back whole and the next stretch goes one delivery per
    transaction, each in its savepoint, where a bad delivery is parked without taking the others with it.
    `stop_on` exceptions (the job's timeout) are never parked: they roll the batch back and end the drain.
    With `set_based`, an optimistic batch first writes its new paid orders with a few multi-row statements
    (services/batch_accrual.py, decision 0037); the rest of it then goes delivery by delivery. A full optimistic
    batch first leaves out the deliveries of shoppers another worker's batch is applying (_leave_busy_shoppers).
    `cut_short` is asked after a committed batch that leaves more to claim, outside a careful stretch: True ends the
    drain there, the rest left waiting.
    """
    outcomes: Counter[str] = Counter()
    conflicts = 0
    careful_rows = 0  # after a deadlock or a failed delivery, this many deliveries go one per transaction
    claimed: list[int] = []
    left_before: set[int] = set()  # deliveries this drain left out of a batch once: never again (no spinning)
    while True:
        careful = careful_rows > 0
        size = 1 if careful else batch_size
        try:
            with transaction(database_url) as session:
                batch = _claim(session, size, clock(), retry_wait)
                claimed[:] = [delivery.id for delivery in batch]
                retried = getattr(batch, "retried", False)
                full = len(batch) == size
                readings = Readings(stop_on)  # each body parsed once for the sort, the set-based path and process()
                lifecycle = any(_is_lifecycle(delivery) for delivery in batch)
                # An uninstall or a redaction must stay where it arrived among the orders; others commute.
                shoppers = {} if lifecycle else {d.id: _shopper_first(d, readings) for d in batch}
                if not lifecycle:
                    batch.sort(key=lambda delivery: shoppers[delivery.id])
                if len(batch) == batch_size and on_full_batch is not None:
                    on_full_batch()  # more work is likely waiting: let another worker join in
                if full and not careful and not retried and not lifecycle:
                    _leave_busy_shoppers(session, database_url, batch, shoppers, left_before)
                    claimed[:] = [delivery.id for delivery in batch]
                shops: dict[str, Shop | None] = {}
                applied: set[int] = set()
                if set_based and not careful and not retried and not lifecycle:
                    applied = _apply_set_based(session, batch, shops, stop_on, readings, shoppers)
                batch_outcomes = Counter({PROCESSED: len(applied)} if applied else {})
                batch_outcomes += Counter(
                    process(
                        session,
                        d,
                        shops,
                        isolated=careful or retried,
                        confirm_uninstall=confirm_uninstall,
                        stop_on=stop_on,
                        readings=readings,
                    )
                    for d in batch
                    if d.id not in applied
                )
        except _RedoCarefully as failure:
            log.info("inbox batch rolled back (%s); continuing one by one", failure)
            _forget_claims(database_url, claimed)
            careful_rows = batch_size
            continue
        except OperationalError as error:
            # A deadlock (two workers' batches locking the same orders and members in opposite orders) or a
            # serialisation failure rolls the batch back whole. One delivery per transaction locks one order
            # and then one member, so it cannot deadlock: do the next stretch that way, then batch again.
            conflicts += 1
            if conflicts > max_conflict_retries:
                raise
            log.warning("inbox batch rolled back (%s); continuing one by one", error.orig.__class__.__name__)
            _forget_claims(database_url, claimed)
            careful_rows = batch_size
            time.sleep(0.05 * conflicts)
            continue
        except DBAPIError as error:
            # The database refused a write (a value too long or out of range) when it was flushed or committed.
            if not careful and claimed:
                log.info("inbox batch rolled back (%s); continuing one by one", error.orig.__class__.__name__)
                _forget_claims(database_url, claimed)
                careful_rows = batch_size
                continue
            if len(claimed) != 1:
                raise
            # Alone in its transaction, it is this delivery's own writes: park it with nothing but a reason.
            _park_alone(database_url, claimed[0], error)
            outcomes[PARKED] += 1
            careful_rows = max(careful_rows - 1, 0)
            continue
        outcomes += batch_outcomes  # counted only once the batch has committed
        careful_rows = max(careful_rows - len(batch), 0)
        if not full and not getattr(batch, "cut_short", False):
            return outcomes
        # Not within a careful stretch: the next drain would begin it optimistically, failing the same batch again.
        if cut_short is not None and careful_rows == 0 and cut_short():
            return outcomes


def _leave_busy_shoppers(
    session: Session, database_url: str, batch: _Batch, shoppers: dict[int, tuple[int, int]], left_before: set[int]
) -> None:
    """Leave out of a full batch the deliveries of shoppers another worker's batch is applying (inbox_shoppers.py),
    their claims given back: they wait for the next claim instead of this batch waiting on those members' locks.

    Only a full batch does this, so a drain near the end of the backlog, or a worker alone, never skips anything; and
    a delivery this drain left once (`left_before`, added to here) is not left again: its next batch waits for it,
    and applies its shopper, holding the shopper's lock where it is free, so that no third batch takes them too."""
    if session.get_bind().dialect.name != "postgresql":
        return  # one writer at a time: no other batch to wait on
    keys: dict[int, str | None] = {}
    kept: set[str] = set()  # shoppers this batch applies whoever holds them: a delivery of theirs it left once
    for delivery in batch:
        known, customer_id = shoppers[delivery.id]
        key = inbox_shoppers.shopper_key(delivery.shop_domain, customer_id) if known == 0 else None
        keys[delivery.id] = key
        if key is not None and delivery.id in left_before:
            kept.add(key)
    left = inbox_shoppers.left_for_later(session, keys, kept)
    if left:
        batch[:] = [delivery for delivery in batch if delivery.id not in left]
        _forget_claims(database_url, sorted(left))  # being left is not an attempt
        left_before.update(left)


def _shopper_first(delivery: Delivery, readings: Readings) -> tuple[int, int]:
    """Process a batch shopper by shopper, so concurrent batches take member row locks in the same order.

    Two workers whose batches lock the same members in opposite orders deadlock, and a deadlock rolls a
    whole batch back: in the end-to-end benchmark (20,000 orders from 2,000 shoppers, three workers) that
    happened 25 times. Deliveries without a customer (refunds, unreadable bodies) come last. `readings` is the
    batch's: the body parsed here for the sort is not parsed again by the set-based path or process().
    """
    try:
        payload = readings.payload(delivery)
    except readings.stop_on:
        raise
    except Exception:  # only an ordering hint: an unreadable body goes last, and process() parks it
        return (1, delivery.id)
    try:
        customer = payload.get("customer") or {}
        return (0, int(customer["id"])) if isinstance(customer, dict) and "id" in customer else (1, delivery.id)
    except Exception:  # whatever the body holds (a list, an id that is no number), it must not fail
        return (1, delivery.id)


_UNREAD = object()


class Readings:
    """Each delivery's body parsed once per batch: the sort, the set-based path and process() all need it, and
    parsing (JSON, then the marshmallow schema) was most of the worker's Python time once the writes were batched.

    A failure is kept like a result and raised again to each reader, so each still reacts to it as it always did
    (process() parks the delivery with the same reason). `stop_on` exceptions (the job's timeout) are never kept.
    """

    def __init__(self, stop_on: tuple[type[BaseException], ...] = ()) -> None:
        self.stop_on = stop_on
        self._payloads: dict[int, tuple[object, BaseException | None]] = {}
        self._events: dict[int, tuple[events.Event | None, BaseException | None]] = {}

    def payload(self, delivery: Delivery):
        """parse_body(delivery.body), or its error raised again."""
        if delivery.id not in self._payloads:
            self._payloads[delivery.id] = self._kept(lambda: parse_body(delivery.body))
        return self._raised(self._payloads[delivery.id])

    def event(self, delivery: Delivery, platform: platforms.Platform) -> events.Event | None:
        """The platform's event for a readable body; the body's error or the schema's, raised again."""
        payload = self.payload(delivery)
        if delivery.id not in self._events:

            def parse() -> events.Event | None:
                triggered_at = platform.triggered_at(delivery.triggered_at, delivery.received_at)
                return platform.parse_event(delivery.topic, payload, triggered_at)

            self._events[delivery.id] = self._kept(parse)
        return self._raised(self._events[delivery.id])

    def _kept(self, read: Callable[[], object]) -> tuple[object, BaseException | None]:
        try:
            return read(), None
        except self.stop_on:
            raise
        except Exception as error:  # RecursionError included: a body nested too deeply
            return None, error

    @staticmethod
    def _raised(kept: tuple[object, BaseException | None]):
        value, error = kept
        if error is not None:
            raise error
        return value


def _apply_set_based(
    session: Session,
    batch: list[Delivery],
    shops: dict[str, Shop | None],
    stop_on: tuple[type[BaseException], ...],
    readings: Readings,
    shoppers: dict[int, tuple[int, int]],
) -> set[int]:
    """Write the batch's new paid orders set-based (services/batch_accrual.py); returns the deliveries done.

    A failure raises _RedoCarefully, as a failed delivery of an optimistic batch does: the batch is rolled back
    and redone one delivery per transaction.
    """
    by_shop: dict[str, list[Delivery]] = {}
    for delivery in batch:
        by_shop.setdefault(delivery.shop_domain, []).append(delivery)
    by_id = {delivery.id: delivery for delivery in batch}
    done: set[int] = set()
    for domain, deliveries in by_shop.items():
        shop = _shop(session, domain, shops)
        if shop is None or not shop.active or not batch_accrual.takes_part(session, shop):
            continue  # read nothing: every delivery of this shop goes one by one, which reads it
        shop_items = []
        for delivery in deliveries:
            shopper = shoppers[delivery.id]  # _shopper_first's, worked out once for the batch
            event = _readable_event(session, delivery, shops, stop_on, readings)
            customer_id = shopper[1] if shopper[0] == 0 else None
            shop_items.append(batch_accrual.Item(delivery.id, customer_id, event))
        if not any(type(item.event) in (events.OrderPaid, events.OrderCreated) for item in shop_items):
            continue
        try:
            session.flush()
            with session.no_autoflush:
                applied = batch_accrual.apply(session, shop, shop_items)
        except stop_on:
            raise
        except OperationalError:
            raise
        except Exception as error:
            raise _RedoCarefully(f"set-based apply for {domain}: {type(error).__name__}: {error}"[:500]) from error
        _finish_applied(session, by_id, applied)
        done.update(applied)
    return done


def _finish_applied(session: Session, by_id: dict[int, Delivery], applied: dict[int, int | None]) -> None:
    """Mark the set-based path's deliveries processed, as _finish does, {delivery id: customer id}.

    On PostgreSQL in one UPDATE of one array per column, the rows' new values then set as loaded on the objects
    (nothing left for the flush): through the ORM's flush each delivery was a parameter set of an executemany, with
    the unit of work's bookkeeping per row, 6% of the drain's profiled Python.
    """
    if session.get_bind().dialect.name != "postgresql":
        for delivery_id, customer_id in applied.items():
            delivery = by_id[delivery_id]
            delivery.reason = None
            _finish(delivery, PROCESSED, {"customer_id": customer_id})
        return
    now = utcnow()
    finished = []
    for delivery_id, customer_id in applied.items():
        delivery = by_id[delivery_id]
        customer_id = _storable_customer_id(customer_id)
        if customer_id is None:
            customer_id = delivery.customer_id
        attempts = getattr(delivery, "_claims", None)
        finished.append((delivery, customer_id, delivery.attempts if attempts is None else attempts))
    params = {
        "ids": [delivery.id for delivery, _, _ in finished],
        "customers": [customer_id for _, customer_id, _ in finished],
        "attempts": [attempts for _, _, attempts in finished],
        "status": PROCESSED,
        "now": now,
    }
    with unprepared(session):  # one text for every batch: a plan kept from a small table would scan it whole
        updated = session.connection().exec_driver_sql(_FINISH_APPLIED, params).rowcount
    if updated != len(finished):
        raise _RedoCarefully(f"{len(finished) - updated} of the batch's claimed deliveries were not found")
    for delivery, customer_id, attempts in finished:
        for name, value in (("status", PROCESSED), ("reason", None), ("processed_at", now),
                            ("customer_id", customer_id), ("attempts", attempts)):  # fmt: skip
            set_committed_value(delivery, name, value)


_FINISH_APPLIED = """
    UPDATE deliveries SET status = %(status)s, reason = NULL, processed_at = %(now)s,
                          customer_id = finished.customer_id, attempts = finished.attempts
    FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(customers)s AS bigint[]), CAST(%(attempts)s AS integer[]))
         AS finished (id, customer_id, attempts)
    WHERE deliveries.id = finished.id
"""


def _readable_event(
    session: Session,
    delivery: Delivery,
    shops: dict[str, Shop | None],
    stop_on: tuple[type[BaseException], ...],
    readings: Readings,
) -> events.Event | None:
    """The delivery's event when it is a readable, non-lifecycle delivery of an active shop; else None."""
    try:
        platform = platforms.get(delivery.platform)
    except platforms.UnknownPlatform:
        return None
    if delivery.topic in platform.lifecycle_topics:
        return None
    shop = _shop(session, delivery.shop_domain, shops)
    if shop is None or not shop.active:
        return None
    try:
        event = readings.event(delivery, platform)
    except stop_on:
        raise
    except Exception:  # whatever is wrong with it, the one-by-one path says so and parks it
        return None
    return event


def _shop(session: Session, domain: str, shops: dict[str, Shop | None]) -> Shop | None:
    """The shop row by domain, read once per batch."""
    if domain not in shops:
        shops[domain] = session.execute(select(Shop).where(Shop.domain == domain)).scalar_one_or_none()
    return shops[domain]


def _park_alone(database_url: str, delivery_id: int, error: DBAPIError) -> None:
    """Park a delivery whose own writes the database refused, writing only its status and the reason."""
    reason = f"database refused the delivery's writes: {type(error.orig).__name__}: {error.orig}"[:2000]
    log.warning("delivery %s parked: %s", delivery_id, reason)
    with transaction(database_url) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == RECEIVED)
            .values(
                status=PARKED,
                reason=reason,
                processed_at=utcnow(),
                # its claims, committed apart from the batch that was rolled back (SQLite: rolled back too)
                attempts=func.coalesce(
                    select(DeliveryClaim.claims).where(DeliveryClaim.delivery_id == delivery_id).scalar_subquery(),
                    Delivery.attempts + 1,
                ),
            )
        )


class _Batch(list):
    """Claimed deliveries; `retried` when claimed before and unfinished, `cut_short` when more were waiting."""

    retried = False
    cut_short = False


def _claim(session: Session, batch_size: int, now: datetime, retry_wait: timedelta) -> list[Delivery]:
    """Lock up to `batch_size` waiting deliveries and count the claim, committed whatever becomes of the batch.

    A delivery claimed before that is still waiting had its drain time out or die: it is claimed alone (and
    processed alone), so only it, never the deliveries that shared its batch, runs up claims until parked.
    Its first retry is at once (a killed worker's batch is redone within seconds); from its second unfinished
    claim on, it is skipped until `retry_wait` has passed since the last claim, so the deaths that park it are
    spread over a minute or more, not one burst of kills, and the deliveries after it go on meanwhile.
    """
    rows = _waiting(session, batch_size, now - retry_wait)
    batch = _Batch(delivery for delivery, _ in rows)
    first_retried = next((i for i, (_, claims) in enumerate(rows) if claims), None)
    if first_retried is not None:
        del batch[max(first_retried, 1) :]  # the retried one alone, or the fresh ones before it
        batch.retried = first_retried == 0
        batch.cut_short = True
    counts = _count_claims(session, [delivery.id for delivery in batch], now)
    for delivery in batch:
        # Not written here: _finish writes it with the status, in the one UPDATE each delivery needs. Set as an
        # ordinary change, it was flushed as an UPDATE of its own, a second row version of every delivery
        # (decision 0059). The count is kept apart too, so a row expired meanwhile (a failed flush) still gets it.
        set_committed_value(delivery, "attempts", counts[delivery.id])
        delivery._claims = counts[delivery.id]
    return batch


def _waiting(session: Session, batch_size: int, cutoff: datetime) -> list:
    """The claim's statement: (delivery, its claims or None) for the first waiting deliveries in id order, locked.

    PostgreSQL's form reads about the batch it takes, whatever the statistics say (decision 0077). With a backlog
    of thousands and statistics taken while few waited (or none, a table never analysed), the planner estimates a
    handful of waiting rows; the plain join was then a bitmap scan of every waiting delivery with its body, a hash
    join to delivery_claims and a sort (on disk for 3,000 bodies), to keep 50. Three things keep it to the batch:
    sorts are off for this one statement, so id order can only come from an ordered scan of ix_deliveries_waiting
    that stops at the LIMIT; delivery_claims is probed per delivery by its key (a LATERAL subquery that OFFSET 0
    keeps apart), as a merge join would read every claim row below the first waiting id, and claims are never
    deleted; and the status is in the text, not a parameter, so the partial index is usable in the generic plan
    psycopg's prepared statement gets after five runs (a parameter gave pk_deliveries, reading every processed row).
    """
    if session.get_bind().dialect.name != "postgresql":
        return session.execute(_WAITING_PLAIN, {"cutoff": cutoff, "batch_size": batch_size}).all()
    connection = session.connection()
    # SET LOCAL would last until the batch commits: its own statements are planned with sorts as usual. No
    # try/finally: a failed claim aborts the transaction, whose rollback undoes the setting anyway.
    was = connection.exec_driver_sql(_SORTS_OFF).scalar_one()
    rows = session.execute(_WAITING, {"cutoff": cutoff, "batch_size": batch_size}).all()
    connection.exec_driver_sql(_SORTS_BACK, {"was": was})
    return rows


_SORTS_OFF = "SELECT current_setting('enable_sort'), set_config('enable_sort', 'off', true)"
_SORTS_BACK = "SELECT set_config('enable_sort', %(was)s, true)"


def status_is(status: str):
    """`Delivery.status = '<status>'` with the status in the statement's text, not a parameter: a prepared statement's
    generic plan can then prove the partial indexes' predicates (ix_deliveries_waiting, ix_deliveries_parked); with a
    parameter it read deliveries in id order through pk_deliveries (decision 0077; tests/test_inbox_indexes.py)."""
    if status not in (RECEIVED, PROCESSED, IGNORED, PARKED):
        raise ValueError(f"unknown delivery status {status!r}")  # never text from elsewhere in the SQL
    return Delivery.status == literal_column(f"'{status}'")


def _waiting_statements():
    """The claim's statement on SQLite (the plain join) and on PostgreSQL (see _waiting)."""
    cutoff = bindparam("cutoff", type_=DeliveryClaim.__table__.c.claimed_at.type)
    limit = bindparam("batch_size", type_=Integer)

    def claimable(claims, claimed_at):
        return or_(func.coalesce(claims, 0) < 2, claimed_at.is_(None), claimed_at <= cutoff)

    plain = (
        select(Delivery, DeliveryClaim.claims)
        .outerjoin(DeliveryClaim, DeliveryClaim.delivery_id == Delivery.id)
        .where(Delivery.status == RECEIVED, claimable(DeliveryClaim.claims, DeliveryClaim.claimed_at))
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    )
    claim = (
        select(DeliveryClaim.claims, DeliveryClaim.claimed_at)
        .where(DeliveryClaim.delivery_id == Delivery.id)
        .offset(literal_column("0"))
        .lateral("claim")
    )
    keyed = (
        select(Delivery, claim.c.claims)
        .outerjoin(claim, true())
        .where(status_is(RECEIVED), claimable(claim.c.claims, claim.c.claimed_at))
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(of=Delivery, skip_locked=True)
    )
    return plain, keyed


_WAITING_PLAIN, _WAITING = _waiting_statements()


def _forget_claims(database_url: str, ids: list[int]) -> None:
    """Take back the claims of deliveries this drain put back itself, not an attempt: a batch it rolled back to redo
    carefully, or deliveries it left to a later batch (_leave_busy_shoppers).

    Only a batch that dies with its drain (a timeout, a kill) keeps its claims. SQLite counted them inside
    the rolled-back transaction, so there they are gone already. One statement, committed at once on a connection of
    its own, as _count_claims counted them.
    """
    if not ids or engine_for(database_url).dialect.name == "sqlite":
        return
    with engine_for(database_url).connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(
            update(DeliveryClaim)
            .where(DeliveryClaim.delivery_id.in_(ids), DeliveryClaim.claims > 0)
            # no wait either: the claim taken back was not a death, and the redo follows at once
            .values(claims=DeliveryClaim.claims - 1, claimed_at=None)
        )


def _count_claims(session: Session, ids: list[int], now: datetime) -> dict[int, int]:
    """Add one claim to each delivery, at `now`, committed on a connection of its own; returns the new counts.

    The caller's transaction locks the rows of `deliveries`, never those of `delivery_claims`, so the second
    connection does not wait on the first. SQLite (one writer at a time, jobs inline, no job timeout) counts
    in the caller's transaction instead.
    """
    if not ids:
        return {}
    engine = session.get_bind()
    if engine.dialect.name == "sqlite":
        statement = insert_for(engine)(DeliveryClaim).values(
            [{"delivery_id": i, "claims": 1, "claimed_at": now} for i in ids]
        )
        statement = statement.on_conflict_do_update(
            index_elements=["delivery_id"], set_={"claims": DeliveryClaim.__table__.c.claims + 1, "claimed_at": now}
        ).returning(DeliveryClaim.delivery_id, DeliveryClaim.claims)
        return dict(session.execute(statement).all())
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return dict(connection.execute(_CLAIM_COUNT, {"ids": ids, "now": now}).all())


def _claim_count_statement():
    """PostgreSQL's claim count: the ids as one array, so the statement is the same for every batch size.

    A multi-row VALUES has no cache key in SQLAlchemy (each row's values are part of the statement): it was
    compiled anew for every batch, 1.5-1.9 ms for 50 rows, 7% of the workers' samples in the end-to-end run.
    """
    ids = func.unnest(bindparam("ids", type_=postgresql.ARRAY(BigInteger)))
    now = bindparam("now", type_=DeliveryClaim.__table__.c.claimed_at.type)
    statement = postgresql.insert(DeliveryClaim).from_select(
        ["delivery_id", "claims", "claimed_at"], select(ids, literal(1, Integer), now)
    )
    return statement.on_conflict_do_update(
        index_elements=["delivery_id"],
        set_={"claims": DeliveryClaim.__table__.c.claims + 1, "claimed_at": statement.excluded.claimed_at},
    ).returning(DeliveryClaim.delivery_id, DeliveryClaim.claims)


_CLAIM_COUNT = _claim_count_statement()


class _RedoCarefully(Exception):
    """A delivery failed in an optimistic batch: roll the batch back and redo it one delivery at a time."""


def process(
    session: Session,
    delivery: Delivery,
    shops: dict[str, Shop | None] | None = None,
    *,
    isolated: bool = True,
    confirm_uninstall: UninstallCheck | None = None,
    stop_on: tuple[type[BaseException], ...] = (),
    max_attempts: int | None = MAX_ATTEMPTS,
    readings: Readings | None = None,
) -> str:
    """Process one claimed delivery, inside a savepoint when `isolated`; returns its new status.

    Not isolated, any failure raises _RedoCarefully instead of parking (the caller rolls back and retries
    isolated). `shops` caches shop rows by domain for the length of one batch transaction. `stop_on`
    exceptions propagate untouched: a job's timeout must end the job, not park the delivery it interrupted.
    `readings`: the batch's parsed bodies (a body the batch read already is not parsed again).
    """
    facts: dict[str, int | None] = {}
    readings = readings if readings is not None else Readings(stop_on)
    if max_attempts is not None and delivery.attempts > max_attempts:
        delivery.reason = (
            f"claimed {delivery.attempts - 1} times without finishing (each attempt timed out or its worker "
            "died); parked unprocessed, replay it once the cause is fixed"
        )
        return _finish(delivery, PARKED, facts)
    if not isolated:
        delivery_id = delivery.id  # a failed flush expires the object: keep its id for the message
        try:
            status = _handle(session, delivery, {} if shops is None else shops, facts, confirm_uninstall, readings)
            session.flush()  # so the database refuses this delivery's writes here, not the next one's or COMMIT's
        except stop_on:
            raise
        except OperationalError:
            raise
        except Exception as error:
            raise _RedoCarefully(f"delivery {delivery_id}: {type(error).__name__}") from error
        delivery.reason = None
        return _finish(delivery, status, facts)
    try:
        with session.begin_nested():
            status = _handle(session, delivery, {} if shops is None else shops, facts, confirm_uninstall, readings)
        delivery.reason = None
    except Unprocessable as reason:
        status, delivery.reason = PARKED, str(reason)
        if isinstance(reason, Discarded):
            delivery.body = privacy.REDACTED_BODY  # after the savepoint, so the rollback keeps it
    except stop_on:
        raise
    except OperationalError:
        raise
    except Exception as error:  # a bug must not block the inbox: park it for replay once fixed
        log.exception("delivery %s failed", delivery.id)
        status, delivery.reason = PARKED, f"internal error: {type(error).__name__}: {error}"[:2000]
    return _finish(delivery, status, facts)


def _finish(delivery: Delivery, status: str, facts: dict[str, int | None]) -> str:
    # The delivery's own row changes only here, after its processing, so the next flush writes them in one
    # UPDATE (changing it earlier cost an UPDATE at every autoflush inside the savepoint).
    customer_id = _storable_customer_id(facts.get("customer_id"))
    if customer_id is not None:
        delivery.customer_id = customer_id
    delivery.status = status
    delivery.processed_at = utcnow()
    claims = getattr(delivery, "_claims", None)
    if claims is not None:  # the claim's count, written with the status (see _claim)
        delivery.attempts = claims
        flag_modified(delivery, "attempts")
    return status


def _storable_customer_id(found: int | None) -> int | None:
    """The customer id processing found, if the column can hold it (a payload's id may not fit BIGINT); else None."""
    return found if found is not None and -(2**63) <= found < 2**63 else None


def _is_lifecycle(delivery: Delivery) -> bool:
    try:
        return delivery.topic in platforms.get(delivery.platform).lifecycle_topics
    except platforms.UnknownPlatform:
        return False  # parked when processed


def _handle(
    session: Session,
    delivery: Delivery,
    shops: dict[str, Shop | None],
    facts: dict,
    confirm_uninstall: UninstallCheck | None,
    readings: Readings,
) -> str:
    try:
        platform = platforms.get(delivery.platform)
    except platforms.UnknownPlatform as error:
        raise Unprocessable(str(error)) from None
    shop = _shop(session, delivery.shop_domain, shops)
    lifecycle = delivery.topic in platform.lifecycle_topics  # handled whatever the shop's state
    if shop is None and not lifecycle:
        if privacy.shop_was_erased(session, delivery.shop_domain):
            raise Discarded(f"shop {delivery.shop_domain} had its data erased; the payload was discarded")
        raise Unprocessable(f"unknown shop {delivery.shop_domain}")
    if shop is not None and not shop.active and not lifecycle:
        raise Unprocessable(f"shop {delivery.shop_domain} is uninstalled")
    try:
        readings.payload(delivery)
    except ValueError as error:
        raise Unprocessable(f"malformed JSON: {error}") from None
    except RecursionError:
        raise Unprocessable("malformed JSON: nested too deeply") from None
    try:
        event = readings.event(delivery, platform)
    except ValidationError as error:
        raise Unprocessable(f"schema error: {json.dumps(error.messages, sort_keys=True)[:1500]}") from None
    if event is None:
        return IGNORED
    if lifecycle:
        named = getattr(event, "shop_domain", None)
        if named != delivery.shop_domain:
            # The HMAC covers the body, not the headers: a body naming another shop (or none) is not acted on.
            raise Unprocessable(f"the body names {named}, the header {delivery.shop_domain}")
        if isinstance(event, events.AppUninstalled) and shop is not None and shop.active and confirm_uninstall:
            # A genuine uninstall body can be replayed later, after a re-install: ask the shop before acting.
            refusal = confirm_uninstall(session, shop)
            if refusal:
                raise Unprocessable(refusal)
        privacy.apply(session, shop, delivery.shop_domain, delivery.topic, event, delivery.id)
        if isinstance(event, events.ShopRedactRequested):
            shops[delivery.shop_domain] = None
        return PROCESSED
    facts["customer_id"] = _customer_of(event)  # kept even if parked, so a customers/redact finds it
    accrual.apply(session, shop, event)
    return PROCESSED


def _customer_of(event: events.Event) -> int | None:
    """Which shopper a payload is about, so a later customers/redact can scrub it."""
    if isinstance(event, events.CustomerCreated):
        return event.customer.customer_id
    order = getattr(event, "order", None)
    return order.customer.customer_id if order is not None and order.customer is not None else None


# A JSON number's text is refused past these: 1e999990 is nine characters, yet Decimal arithmetic on it took
# minutes, and int() of 4,300 digits is refused by Python itself (deeper inside, with a vaguer message).
MAX_NUMBER_CHARACTERS = 40
MAX_EXPONENT = 30  # powers of ten, either way: far beyond any amount a shop sells in (MAX_AMOUNT is 10**12)


def parse_body(body: bytes):
    """The delivery's JSON, with fractional numbers as Decimal; ValueError for absurd numbers or bad JSON."""
    return json.loads(body, parse_float=_bounded_decimal, parse_int=_bounded_int, parse_constant=_refuse_constant)


def _bounded_decimal(text: str) -> Decimal:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise ValueError(f"number {text[:20]}... has more than {MAX_NUMBER_CHARACTERS} characters")
    number = Decimal(text)
    exponent = number.as_tuple().exponent
    if not (-MAX_EXPONENT <= exponent <= MAX_EXPONENT and -MAX_EXPONENT <= number.adjusted() <= MAX_EXPONENT):
        raise ValueError(f"number {text} is beyond 10^±{MAX_EXPONENT}")
    return number


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARACTERS:
        raise ValueError(f"integer {text[:20]}... has more than {MAX_NUMBER_CHARACTERS} digits")
    return int(text)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def replay(database_url: str, delivery_id: int, confirm_uninstall: UninstallCheck | None = None) -> str:
    """Process a parked delivery again, now; returns its new status.

    Pass the drain's `confirm_uninstall`: an app/uninstalled parked because the shop still takes our token must
    be asked about again, not acted on because a person replayed it.
    """
    with transaction(database_url) as session:
        delivery = session.execute(
            select(Delivery).where(Delivery.id == delivery_id).with_for_update()
        ).scalar_one_or_none()
        if delivery is None:
            raise LookupError(f"no delivery {delivery_id}")
        if delivery.status != PARKED:
            raise ValueError(f"delivery {delivery_id} is {delivery.status}, only parked deliveries are replayed")
        delivery.attempts += 1
        # Asked for by a person: always tried, whatever its attempts.
        return process(session, delivery, confirm_uninstall=confirm_uninstall, max_attempts=None)


def parked(database_url: str, limit: int = 100) -> list[Delivery]:
    """Every shop's parked deliveries, oldest first (the CLI's list)."""
    with transaction(database_url) as session:
        statement = select(Delivery).where(status_is(PARKED)).order_by(Delivery.id).limit(limit)
        return list(session.scalars(statement))


def waiting(database_url: str, older_than: timedelta = timedelta(0), now: datetime | None = None) -> int:
    """How many deliveries wait to be processed, counting only those received before `older_than` ago."""
    cutoff = (now or utcnow()) - older_than
    with engine_for(database_url).connect() as connection:
        return connection.execute(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status == RECEIVED, Delivery.received_at <= cutoff)
        ).scalar_one()
