"""The kinds of posting the ledger accepts: one list, read by ledger.post and by the database's CHECK."""

from __future__ import annotations

# Add a kind here and in a new migration that rebuilds the CHECK from this list (0008 shows how).
KINDS: tuple[str, ...] = (
    "earn",
    "reverse",
    "redeem",
    "return",
    "adjust",
    "expire",
    "bonus",
    "forgive",
    "import",
)


def kind_check(kinds: tuple[str, ...] = KINDS) -> str:
    """The SQL condition `kind IN (...)` for a CHECK constraint (the kinds are plain words: no quoting needed)."""
    if not all(kind.isidentifier() for kind in kinds):
        raise ValueError(f"posting kinds are plain words: {kinds!r}")
    return "kind IN (" + ", ".join(f"'{kind}'" for kind in kinds) + ")"
