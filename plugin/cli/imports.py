"""`flask --app plugin loyalty import ...`: import balances from another loyalty app's CSV export, check, undo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from plugin.config import Settings
from plugin.db import transaction
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.programme.import_formats import LAYOUTS
from plugin.services import shops
from plugin.services.imports import batches, matching


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _shop_id(domain: str) -> int:
    with transaction(_settings().database_url) as session:
        try:
            return shops.get(session, domain).id
        except shops.ShopNotFound as error:
            raise click.ClickException(str(error)) from None


def _report(shop_id: int, batch_id: int) -> dict:
    with transaction(_settings().database_url) as session:
        from plugin.models import Shop

        return batches.report(session, session.get(Shop, shop_id), batches.get(session, shop_id, batch_id))


@click.group("import", cls=AppGroup)
def imports_group() -> None:
    """Import members' points from Smile.io, LoyaltyLion, Yotpo, Rivo or our own export (dry run first)."""


@imports_group.command("run")
@click.argument("domain")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", required=True, type=click.Choice(sorted(LAYOUTS)), help="Which app exported the file.")
@click.option("--dry-run", is_flag=True, help="Only check: counts, points, money value, ten largest, errors.")
@click.option("--actor", default="support", show_default=True, help="Who imports (kept on the batch and postings).")
def run_command(domain: str, path: Path, source: str, dry_run: bool, actor: str) -> None:
    """Import PATH into DOMAIN. Running it again with the same file resumes it; it never posts a row twice."""
    shop_id = _shop_id(domain)

    def progress(line: int, lines: int) -> None:
        click.echo(f"\rline {line:,} of {lines:,} ({100 * line // max(lines, 1)}%)", nl=False, err=True)

    with path.open("rb") as stream:
        try:
            outcome = batches.run(
                _settings().database_url,
                shop_id,
                stream,
                source=source,
                filename=path.name,
                dry_run=dry_run,
                actor=actor,
                on_progress=progress,
            )
        except batches.ImportRefused as error:
            raise click.ClickException(str(error)) from None
    click.echo("", err=True)
    report = _report(shop_id, outcome.batch_id)
    _echo_json({"resumed": outcome.resumed, **report})
    if report.get("pending"):
        click.echo(
            f"{report['pending']} rows wait for their shopper: `loyalty import match {domain} {outcome.batch_id}` "
            "asks the shop, or they post at the shopper's first order",
            err=True,
        )


@imports_group.command("list")
@click.argument("domain")
def list_command(domain: str) -> None:
    """The shop's import batches, newest first."""
    shop_id = _shop_id(domain)
    with transaction(_settings().database_url) as session:
        _echo_json(batches.listing(session, shop_id))


@imports_group.command("show")
@click.argument("domain")
@click.argument("batch_id", type=int)
def show_command(domain: str, batch_id: int) -> None:
    """One batch: progress, counts, points and money value, the ten largest balances."""
    try:
        _echo_json(_report(_shop_id(domain), batch_id))
    except batches.ImportRefused as error:
        raise click.ClickException(str(error)) from None


@imports_group.command("errors")
@click.argument("domain")
@click.argument("batch_id", type=int)
def errors_command(domain: str, batch_id: int) -> None:
    """The batch's per-row error file (CSV: line, reason) on standard output."""
    shop_id = _shop_id(domain)
    with transaction(_settings().database_url) as session:
        try:
            for part in batches.error_file(session, shop_id, batch_id):
                sys.stdout.write(part)
        except batches.ImportRefused as error:
            raise click.ClickException(str(error)) from None


@imports_group.command("undo")
@click.argument("domain")
@click.argument("batch_id", type=int)
@click.option("--reason", required=True, help="Why (kept on the batch and in every reversal's note).")
@click.option("--actor", default="support", show_default=True)
def undo_command(domain: str, batch_id: int, reason: str, actor: str) -> None:
    """Reverse a whole batch's opening balances and cancel its pending rows; audited, safe to run again."""
    shop_id = _shop_id(domain)
    try:
        taken = batches.undo(_settings().database_url, shop_id, batch_id, actor, reason)
    except batches.ImportRefused as error:
        raise click.ClickException(str(error)) from None
    _echo_json({"points_taken_back": taken, **_report(shop_id, batch_id)})


@imports_group.command("match")
@click.argument("domain")
@click.argument("batch_id", type=int, required=False)
@click.option("--limit", default=10_000, show_default=True, help="Pending rows to ask the shop about in this run.")
def match_command(domain: str, batch_id: int | None, limit: int) -> None:
    """Ask the shop's Admin API about pending rows; customers found are enrolled and get their balance."""
    shop_id = _shop_id(domain)
    try:
        report = matching.match(_settings(), shop_id, batch_id, limit=limit)
    except (AdminAPIError, AdminAPIUnavailable, RuntimeError) as error:
        raise click.ClickException(f"the shop could not be asked: {error}") from None
    _echo_json(report.to_json())
