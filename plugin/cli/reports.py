"""`flask --app plugin loyalty reports ...`: liability, breakage, journal and KPIs as JSON or CSV; the point value."""

from __future__ import annotations

import json

import click

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.services import order_rollups, report_rollups, reports
from plugin.services.errors import Invalid


@loyalty.group("reports")
def reports_group() -> None:
    """The programme's accounting and figures (docs/reports.md): liability, breakage, journal, kpis."""


def _period_options(command):
    for option in reversed(
        (
            click.option("--month", help="a calendar month, YYYY-MM"),
            click.option("--start", help="first day (YYYY-MM-DD, the shop's time zone)"),
            click.option("--end", help="last day, included (YYYY-MM-DD)"),
            click.option("--point-value", help="money per point for this report (default: setting, else implied)"),
            click.option("--format", "fmt", type=click.Choice(("json", "csv")), default="json", show_default=True),
        )
    ):
        command = option(command)
    return command


def _run(report, domain: str, options: dict) -> dict:
    query = {key: value for key, value in options.items() if value not in (None, False)}
    try:
        with transaction(_settings().database_url) as session:
            return report(session, reports.find_shop(session, domain), reports.load_query(query))
    except Invalid as error:
        raise click.ClickException(f"{error} {json.dumps(error.fields)}") from None


def _out(result: dict, fmt: str, rows: list[dict], columns: tuple[str, ...]) -> None:
    if fmt == "csv":
        click.echo(reports.to_csv(rows, columns), nl=False)
    else:
        _echo_json(result)


@reports_group.command("liability")
@click.argument("domain")
@_period_options
@click.option("--deep", is_flag=True, help="also tie out by summing the postings themselves (slow at scale)")
def liability(domain: str, fmt: str, **options) -> None:
    """The liability roll-forward with its tie-out; exits 1 when the closing figure does not tie out."""
    result = _run(reports.liability, domain, options)
    rows = [{"line": "opening", "label": "Opening", **result["opening"]}, *result["lines"]]
    rows += [{"line": "closing", "label": "Closing", **result["closing"]}]
    rows += [{"line": "pending", "label": "Of which pending", **result["pending"]}]
    _out(result, fmt, rows, ("line", "label", "points", "money"))
    if not result["tie_out"]["ok"]:
        raise SystemExit(1)


@reports_group.command("breakage")
@click.argument("domain")
@_period_options
def breakage(domain: str, fmt: str, **options) -> None:
    """Breakage cohorts (12 and 24 months) and the contract liability at the period's end."""
    result = _run(reports.breakage, domain, options)
    columns = ("month", "issued", "redeemed_12", "redeemed_24", "breakage_12", "breakage_24")
    _out(result, fmt, result["cohorts"], columns)


@reports_group.command("journal")
@click.argument("domain")
@_period_options
def journal(domain: str, fmt: str, **options) -> None:
    """The monthly journal; --format csv for the general-ledger layout (date, account, debit, credit, memo)."""
    result = _run(reports.journal, domain, options)
    _out(result, fmt, result["lines"], reports.JOURNAL_COLUMNS)


@reports_group.command("kpis")
@click.argument("domain")
@_period_options
def kpis(domain: str, fmt: str, **options) -> None:
    """The programme's figures for the period and month by month."""
    result = _run(reports.kpis, domain, options)
    _out(result, fmt, result["months"], reports.KPI_COLUMNS)


@reports_group.command("point-value")
@click.argument("domain")
@click.option("--set", "value", help="money per point, or 'none' to go back to the implied value")
def point_value(domain: str, value: str | None) -> None:
    """Show or set the point value reports use."""
    try:
        with transaction(_settings().database_url) as session:
            shop = reports.find_shop(session, domain)
            if value is None:
                _echo_json(reports.settings_of(session, shop))
            else:
                _echo_json(reports.save_settings(session, shop, {"point_value": None if value == "none" else value}))
    except Invalid as error:
        raise click.ClickException(f"{error} {json.dumps(error.fields)}") from None


@reports_group.command("rebuild")
@click.argument("domain")
def rebuild(domain: str) -> None:
    """Recompute the shop's roll-ups from its facts: per-day postings, per-member monthly orders (after a change
    of the shop's time zone, or a restore that bypassed the triggers)."""
    try:
        with transaction(_settings().database_url) as session:
            shop = reports.find_shop(session, domain)
            report_rollups.rebuild(session, shop)
            order_rollups.rebuild(session, shop.id, shop.time_zone or "UTC")
    except Invalid as error:
        raise click.ClickException(str(error)) from None
    click.echo("rebuilt")
