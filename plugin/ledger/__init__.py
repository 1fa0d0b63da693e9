"""The append-only points ledger: postings, balances and the invariant that ties them (held by the database)."""

from plugin.ledger.postings import (
    KINDS,
    Balance,
    Entry,
    LedgerError,
    Mismatch,
    balance_of,
    history,
    post,
    verify,
)

__all__ = ["KINDS", "Balance", "Entry", "LedgerError", "Mismatch", "balance_of", "history", "post", "verify"]
