"""`flask --app plugin loyalty referrals ...`: referral settings, the referrals support reviews, approval, figures."""

from __future__ import annotations

import json

import click
from marshmallow import ValidationError

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.programme import referrals as rules
from plugin.services import referrals


@loyalty.group("referrals")
def referrals_group() -> None:
    """Referrals: settings and fraud guards, blocked referrals and their approval, figures (JSON or CSV)."""


@referrals_group.command("settings")
@click.argument("domain")
@click.option("--set", "changes", multiple=True, metavar="KEY=JSON", help="e.g. --set enabled=true --set monthly_cap=5")
def referrals_settings(domain: str, changes: tuple[str, ...]) -> None:
    """Show the referral settings, or change some (each value is JSON: true, 5, null, "10.00")."""
    wanted = {}
    for change in changes:
        key, sep, value = change.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{change!r} is not KEY=VALUE", param_hint="--set")
        try:
            wanted[key.strip()] = json.loads(value)
        except ValueError:
            wanted[key.strip()] = value  # a bare word: the schema says whether it fits
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        if wanted:
            try:
                referrals.update_settings(session, shop, wanted, "cli")
            except ValidationError as error:
                raise click.ClickException(f"invalid settings: {json.dumps(error.messages, default=str)}") from None
        row = referrals.settings_row(session, shop.id)
        _echo_json({"version": row.version, "settings": rules.read_settings(row.settings).to_json()})


@referrals_group.command("list")
@click.argument("domain")
@click.option("--status", type=click.Choice(rules.STATUSES), help="blocked: what support reviews")
@click.option("--advocate", "advocate_member_id", type=click.IntRange(1), help="one advocate's member id")
@click.option("--limit", type=click.IntRange(1, 500), default=100, show_default=True)
def referrals_list(domain: str, status: str | None, advocate_member_id: int | None, limit: int) -> None:
    """Referrals, newest first, each blocked one with its reason in words."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        _echo_json({"referrals": referrals.listed(session, shop.id, status, advocate_member_id, limit)})


@referrals_group.command("approve")
@click.argument("domain")
@click.argument("order_id", type=click.IntRange(1))
@click.option("--reason", required=True, help="why support lets it through (kept with the actor and the time)")
@click.option("--actor", required=True, help="who approves, e.g. support:sam")
def referrals_approve(domain: str, order_id: int, reason: str, actor: str) -> None:
    """Approve a blocked referral; the advocate's reward follows as if no guard had fired."""
    if len(reason.strip()) < 3:
        raise click.BadParameter("give a reason of at least 3 characters", param_hint="--reason")
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        try:
            row = referrals.approve(session, shop, order_id, actor[:120], reason.strip()[:500])
        except (LookupError, ValueError) as error:
            raise click.ClickException(str(error)) from None
        _echo_json(referrals.describe(row))


@referrals_group.command("stats")
@click.argument("domain")
@click.option("--by", type=click.Choice(("shop", "advocate")), default="shop", show_default=True)
@click.option("--format", "output", type=click.Choice(("json", "csv")), default="json", show_default=True)
def referrals_stats(domain: str, by: str, output: str) -> None:
    """Links opened, friend codes issued, first orders, rewards given and blocked per reason."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        if by == "advocate":
            rows = referrals.by_advocate(session, shop.id)
            columns = referrals.stats.COLUMNS
        else:
            rows, columns = [referrals.for_shop(session, shop.id)], None
    if output == "csv":
        click.echo(referrals.to_csv(rows, columns), nl=False)
    else:
        _echo_json({"advocates": rows} if by == "advocate" else {"shop": rows[0]})
