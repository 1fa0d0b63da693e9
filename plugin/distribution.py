"""How the tables distribute by shop (Citus, distribution column shop_id): their roles, the rules, the plan.

A table is per-shop unless it is named below. Per-shop tables are sharded on `shop_id` and colocated, so one
shop's rows of every table sit on one node and a statement that names the shop runs there alone. For that the
database must be able to check every key on one shard: each primary key, unique constraint or index, and each
foreign key to another per-shop table, includes `shop_id` (decision 0026). `check(engine)` reads those rules off
the live schema; `plan(engine)` writes the statements that distribute a database that passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

DISTRIBUTION_COLUMN = "shop_id"

# Small tables copied whole to every node, so every shard can join them and refer to them.
REFERENCE_TABLES = {
    "shops": "one row per installed shop; looked up by domain on every request before the shop id is known",
    "support_keys": "a few keys per shop, found by their prefix before the shop is known (Bearer lsk_<prefix>_...)",
    "privacy_requests": "one row per compliance request; outlives the shop row it is about (shop/redact)",
    "used_oauth_states": "one row per completed install; the nonce is checked before any shop row exists",
}
# Tables that stay on the coordinator: the inbox is a queue, written before the shop is known (a delivery may
# name a shop that is not installed yet, or was erased) and claimed across shops with FOR UPDATE SKIP LOCKED,
# which a distributed table does not offer. Its rows are short-lived; processing them writes per-shop tables.
COORDINATOR_TABLES = {
    "deliveries": "the webhook inbox, keyed by (shop_domain, webhook_id) and claimed across shops",
    "delivery_claims": "claim counts of inbox rows, committed apart from the drain's transaction",
}
IGNORED_TABLES = {"alembic_version"}


@dataclass(frozen=True)
class Violation:
    table: str
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.table}: {self.rule}: {self.detail}"


def role(table: str) -> str:
    """ "reference", "coordinator" or "per-shop"."""
    if table in REFERENCE_TABLES:
        return "reference"
    if table in COORDINATOR_TABLES:
        return "coordinator"
    return "per-shop"


def tables(engine: Engine) -> list[str]:
    """The application's tables in the live schema (any dialect)."""
    from sqlalchemy import inspect

    return sorted(name for name in inspect(engine).get_table_names() if name not in IGNORED_TABLES)


_KEYS = text(
    """
    SELECT rel.relname AS tbl, con.conname AS name, con.contype AS kind,
           ARRAY(SELECT att.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, pos)
                 JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = k.num ORDER BY k.pos)
               AS columns,
           ref.relname AS referred,
           ARRAY(SELECT att.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, pos)
                 JOIN pg_attribute att ON att.attrelid = con.confrelid AND att.attnum = k.num ORDER BY k.pos)
               AS referred_columns
      FROM pg_constraint con
      JOIN pg_class rel ON rel.oid = con.conrelid
      JOIN pg_namespace ns ON ns.oid = rel.relnamespace
      LEFT JOIN pg_class ref ON ref.oid = con.confrelid
     WHERE ns.nspname = current_schema() AND con.contype IN ('p', 'u', 'f')
    """
)
# Unique indexes made without a constraint (partial or expression ones: CREATE UNIQUE INDEX).
_UNIQUE_INDEXES = text(
    """
    SELECT rel.relname AS tbl, idx.relname AS name,
           ARRAY(SELECT att.attname FROM unnest(ind.indkey) k(num)
                 JOIN pg_attribute att ON att.attrelid = ind.indrelid AND att.attnum = k.num) AS columns
      FROM pg_index ind
      JOIN pg_class rel ON rel.oid = ind.indrelid
      JOIN pg_class idx ON idx.oid = ind.indexrelid
      JOIN pg_namespace ns ON ns.oid = rel.relnamespace
     WHERE ns.nspname = current_schema() AND ind.indisunique
       AND NOT EXISTS (SELECT 1 FROM pg_constraint con WHERE con.conindid = ind.indexrelid)
    """
)
_SHOP_COLUMNS = text(
    """
    SELECT table_name, data_type, is_nullable FROM information_schema.columns
     WHERE table_schema = current_schema() AND column_name = :column
    """
)


def check(engine: Engine) -> list[Violation]:
    """Every rule of decision 0026 the live schema breaks; empty when it is ready to distribute.

    On SQLite (the one-process development database, decision 0004) only the roles and the shop_id column are
    checked: its keys stay single-column there.
    """
    found: list[Violation] = []
    with engine.connect() as connection:
        names = tables(engine)
        if engine.dialect.name == "postgresql":
            shop_columns = {
                row.table_name: row for row in connection.execute(_SHOP_COLUMNS, {"column": DISTRIBUTION_COLUMN})
            }
        else:
            from sqlalchemy import inspect

            inspector = inspect(connection)
            shop_columns = {
                name: column
                for name in names
                for column in inspector.get_columns(name)
                if column["name"] == DISTRIBUTION_COLUMN
            }
        for table in names:
            if role(table) != "per-shop":
                continue
            column = shop_columns.get(table)
            if column is None:
                found.append(
                    Violation(
                        table,
                        "per-shop table",
                        f"has no {DISTRIBUTION_COLUMN} column (or name it "
                        "in plugin/distribution.py as a reference table, with the reason)",
                    )
                )
            elif engine.dialect.name == "postgresql" and column.data_type != "bigint":
                found.append(Violation(table, "colocation", f"{DISTRIBUTION_COLUMN} is {column.data_type}, not bigint"))
            elif engine.dialect.name == "postgresql" and column.is_nullable != "NO":
                found.append(Violation(table, "distribution column", f"{DISTRIBUTION_COLUMN} may be NULL"))
        if engine.dialect.name != "postgresql":
            return found
        keys = connection.execute(_KEYS).all()
        unique_indexes = connection.execute(_UNIQUE_INDEXES).all()
    with_primary_key = {key.tbl for key in keys if key.kind == "p"}
    for table in names:
        if role(table) == "per-shop" and table not in with_primary_key:
            found.append(Violation(table, "primary key", "has none (a distributed table needs (shop_id, ...))"))
    for key in keys:
        found.extend(_key_violations(key.tbl, key.name, key.kind, list(key.columns), key.referred,
                                     list(key.referred_columns)))  # fmt: skip
    for index in unique_indexes:
        if role(index.tbl) == "per-shop" and DISTRIBUTION_COLUMN not in index.columns:
            found.append(
                Violation(index.tbl, "unique index", f"{index.name} ({', '.join(index.columns)}) lacks shop_id")
            )
    return found


def _key_violations(table, name, kind, columns, referred, referred_columns) -> list[Violation]:
    if table in IGNORED_TABLES:
        return []
    owner = role(table)
    if kind in ("p", "u"):
        if owner == "per-shop" and DISTRIBUTION_COLUMN not in columns:
            what = "primary key" if kind == "p" else "unique constraint"
            return [Violation(table, what, f"{name} ({', '.join(columns)}) lacks shop_id")]
        return []
    target = role(referred)
    if owner == "per-shop" and target == "per-shop":
        pairs = dict(zip(columns, referred_columns, strict=True))
        if pairs.get(DISTRIBUTION_COLUMN) != DISTRIBUTION_COLUMN:
            return [Violation(table, "foreign key", f"{name} ({', '.join(columns)}) -> {referred} "
                              f"({', '.join(referred_columns)}) must pair shop_id with shop_id")]  # fmt: skip
        return []
    if owner != "per-shop" and target == "per-shop":
        return [Violation(table, "foreign key", f"{name}: a {owner} table cannot refer to per-shop {referred}")]
    if target == "coordinator" and owner != "coordinator":
        return [Violation(table, "foreign key", f"{name}: refers to {referred}, which stays on the coordinator")]
    return []


def plan(engine: Engine) -> list[str]:
    """The Citus statements that distribute this database: reference tables first, then per-shop tables.

    Each per-shop table is colocated with `members`, so a shop's rows of all of them share a node and joins
    between them by shop stay on it. Coordinator tables are added to Citus's metadata, to be queried with the rest.
    """
    names = tables(engine)
    statements = [f"SELECT create_reference_table('{table}');" for table in names if role(table) == "reference"]
    per_shop = [table for table in names if role(table) == "per-shop"]
    anchor = "members" if "members" in per_shop else (per_shop[0] if per_shop else None)
    # Referred tables first: Citus distributes a table only after the tables its foreign keys refer to.
    for table in sorted(per_shop, key=lambda name: (name != anchor, _depth(engine, name), name)):
        colocate = "" if table == anchor else f", colocate_with => '{anchor}'"
        statements.append(f"SELECT create_distributed_table('{table}', '{DISTRIBUTION_COLUMN}'{colocate});")
    statements += [f"SELECT citus_add_local_table_to_metadata('{table}');" for table in names
                   if role(table) == "coordinator"]  # fmt: skip
    return statements


def _depth(engine: Engine, table: str, seen: frozenset[str] = frozenset()) -> int:
    """How many per-shop tables this table's foreign keys reach, through each other (0 for none)."""
    from sqlalchemy import inspect

    referred = {fk["referred_table"] for fk in inspect(engine).get_foreign_keys(table)}
    referred = {name for name in referred if role(name) == "per-shop" and name not in seen and name != table}
    return max((1 + _depth(engine, name, seen | {table}) for name in referred), default=0)
