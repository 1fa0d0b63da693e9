"""Alembic environment: migrates the database named by DATABASE_URL (or the URL the CLI passes in)."""

from __future__ import annotations

from alembic import context

from plugin.config import Settings
from plugin.db import engine_for
from plugin.models import Base
from plugin.services.imports import tables as _import_tables  # noqa: F401  (its tables join Base.metadata)

config = context.config
database_url = config.attributes.get("database_url") or Settings.from_env().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url, target_metadata=Base.metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with engine_for(database_url).connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
