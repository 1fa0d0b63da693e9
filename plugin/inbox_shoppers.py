"""A worker's batch leaves to a later batch the deliveries whose shopper another worker's batch is applying."""

from __future__ import annotations

from collections.abc import Set

from sqlalchemy.orm import Session

# Why (decision 0082): with a backlog, three workers' full batches (50 then, 100 now) often name one shopper
# in two batches. The second batch's member upsert then waited on the first's row lock until the first committed,
# most of its run: in a pg_stat_activity sample of the programme's end-to-end run, 0.4 of a worker at any instant.
# Each batch now takes a transaction-scoped advisory lock per shopper it names, without waiting; a shopper whose
# lock another batch holds has its deliveries left waiting (inbox._forget_claims gives their claim back), taken by
# the next claim.
#
# The advisory locks only steer which batch takes a delivery: the member rows' own locks still serialise every
# write, so a batch that does not take them (SQLite, a batch processed one delivery at a time) stays correct.

# The advisory lock's first key: this use's own space (report_rollups uses another; redemption the one-key form).
NAMESPACE = "loyalty.inbox.shopper"

_HELD_ELSEWHERE = """
    SELECT key FROM unnest(CAST(%(keys)s AS text[])) AS key
    WHERE NOT pg_try_advisory_xact_lock(hashtext(%(namespace)s), hashtext(key))
"""


def shopper_key(shop_domain: str, customer_id: int) -> str:
    """The advisory lock's text for one shopper of one shop (hashed by PostgreSQL, the same in every process)."""
    return f"{shop_domain}|{customer_id}"


def left_for_later(session: Session, shoppers: dict[int, str | None], kept: Set[str] = frozenset()) -> set[int]:
    """The batch's deliveries to leave for a later batch, from {delivery id: its shopper key, or None to keep it}.

    Takes this transaction's advisory lock on each shopper no other transaction holds, without waiting (released
    when the transaction ends); a held shopper's deliveries are left, unless that is more than half the batch: it
    would then do little and claim the same deliveries again at once, so it waits on the member rows instead.
    A `kept` shopper's deliveries are never left: the batch applies that shopper anyway (it waits for the holder),
    so leaving their other deliveries would gain nothing; it still takes their lock if it is free."""
    keys = sorted({key for key in shoppers.values() if key is not None})
    if not keys:
        return set()
    rows = session.connection().exec_driver_sql(_HELD_ELSEWHERE, {"keys": keys, "namespace": NAMESPACE})
    held = {key for (key,) in rows} - kept
    left = {delivery_id for delivery_id, key in shoppers.items() if key in held}
    return left if 2 * len(left) <= len(shoppers) else set()
