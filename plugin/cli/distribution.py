"""`flask --app plugin loyalty distribution check|plan`: is the schema ready to shard by shop, and how to do it."""

from __future__ import annotations

import click

from plugin import distribution
from plugin.cli.group import current_settings, loyalty
from plugin.db import engine_for


@loyalty.group("distribution")
def distribution_group() -> None:
    """Sharding by shop (Citus): check the live schema's keys, print the statements that distribute it."""


@distribution_group.command("check")
def distribution_check() -> None:
    """List every table, its role, and each rule of decision 0026 the live schema breaks (exit 1 if any)."""
    engine = engine_for(current_settings().database_url)
    for table in distribution.tables(engine):
        click.echo(f"{table}: {distribution.role(table)}")
    violations = distribution.check(engine)
    for violation in violations:
        click.echo(f"violation: {violation}", err=True)
    if violations:
        raise click.ClickException(f"{len(violations)} rule(s) broken; see docs/distribution.md")
    click.echo("every key carries shop_id: ready to distribute")


@distribution_group.command("plan")
def distribution_plan() -> None:
    """Print the Citus statements (create_reference_table, create_distributed_table) for this schema."""
    engine = engine_for(current_settings().database_url)
    violations = distribution.check(engine)
    if violations:
        raise click.ClickException(f"{len(violations)} rule(s) broken; run `loyalty distribution check` first")
    for statement in distribution.plan(engine):
        click.echo(statement)
