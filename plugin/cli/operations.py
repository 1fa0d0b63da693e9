"""Operations commands: schema, shops and settings, the inbox, the sweeper, reconciliation, the ledger, privacy."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from marshmallow import ValidationError

from plugin import inbox, jobs, ledger

# The commands keep the short private names they had in one module (commands.py), so edits on either side merge.
from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.services import privacy, reconcile, shops

ROOT = Path(__file__).resolve().parents[2]


@loyalty.command("db-upgrade")
def db_upgrade() -> None:
    """Create or upgrade the database schema (Alembic), as the Procfile's release phase does."""
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = _settings().database_url
    command.upgrade(config, "head")
    click.echo("schema upgraded to the latest revision")


@loyalty.group("shops")
def shops_group() -> None:
    """Install and list shops."""


@shops_group.command("add")
@click.argument("domain")
@click.option("--token", help="Admin API access token (stored encrypted).")
def shops_add(domain: str, token: str | None) -> None:
    """Install DOMAIN without OAuth (development and tests)."""
    try:
        with transaction(_settings().database_url) as session:
            shop = shops.install(session, domain, token, _settings().encryption_keys)
            click.echo(f"installed {shop.domain} (id {shop.id})")
    except (ValueError, RuntimeError) as error:
        raise click.ClickException(str(error)) from None


@shops_group.command("list")
def shops_list() -> None:
    from sqlalchemy import select

    from plugin.models import Shop

    with transaction(_settings().database_url) as session:
        rows = session.scalars(select(Shop).order_by(Shop.id))
        _echo_json([{"id": s.id, "domain": s.domain, "active": s.active, "currency": s.currency} for s in rows])


@shops_group.command("locale")
@click.argument("domain")
@click.argument("locale", required=False)
@click.option("--fetch", is_flag=True, help="Read the shop's primary locale from its Admin API and keep it.")
def shops_locale(domain: str, locale: str | None, fetch: bool) -> None:
    """Show, set (LOCALE, e.g. fr) or --fetch the language explanations are shown in."""
    from plugin.services import shop_locale

    if locale and fetch:
        raise click.UsageError("give a LOCALE or --fetch, not both")
    with transaction(_settings().database_url) as session:
        shop_id = _shop(session, domain).id
    if fetch:
        try:
            if shop_locale.fetch(_settings(), shop_id, asked=True) is None:
                raise click.ClickException(f"{domain} named no primary locale; the locale is unchanged")
        except (AdminAPIError, AdminAPIUnavailable) as error:
            raise click.ClickException(str(error)) from None
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        if locale:
            try:
                shop_locale.set_locale(session, shop, locale)
            except ValidationError as error:
                raise click.ClickException(json.dumps(error.messages)) from None
        _echo_json(shop_locale.describe(shop))


@loyalty.command("settings")
@click.argument("domain")
@click.option("--set", "changes", help="JSON object of settings to change, e.g. '{\"pending_days\": 14}'.")
def settings_command(domain: str, changes: str | None) -> None:
    """Show, or change, a shop's programme settings."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        if changes:
            try:
                shops.update_settings(session, shop, json.loads(changes))
            except (ValueError, ValidationError) as error:
                messages = error.messages if isinstance(error, ValidationError) else str(error)
                raise click.ClickException(f"invalid settings: {json.dumps(messages)}") from None
        _echo_json({"version": shop.settings_version, "settings": shop.settings})


@loyalty.command("parked")
@click.option("--limit", default=100, show_default=True)
def parked_command(limit: int) -> None:
    """List parked deliveries with the reason each could not be processed."""
    _echo_json(
        [
            {
                "id": d.id,
                "shop": d.shop_domain,
                "topic": d.topic,
                "webhook_id": d.webhook_id,
                "received_at": d.received_at.isoformat(),
                "attempts": d.attempts,
                "reason": d.reason,
            }
            for d in inbox.parked(_settings().database_url, limit)
        ]
    )


@loyalty.command("replay")
@click.argument("delivery_id", type=int)
def replay_command(delivery_id: int) -> None:
    """Process a parked delivery again (after installing the shop or fixing the cause)."""
    try:
        status = inbox.replay(_settings().database_url, delivery_id, privacy.uninstall_check(_settings()))
    except (LookupError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"delivery {delivery_id}: {status}")
    if status == inbox.PARKED:
        sys.exit(1)


@loyalty.command("requeue")
def requeue_command() -> None:
    """Sweeper: enqueue processing for deliveries that have waited too long (e.g. while Redis was down)."""
    waiting, stranded = jobs.sweep(_settings())
    action = "found" if not waiting else "processed" if _settings().inline_jobs else "enqueued"
    click.echo(f"{waiting} waiting deliveries {action}")
    click.echo(f"{stranded} pending redemptions requeued")


@loyalty.command("reconcile")
@click.argument("domain")
@click.option("--since", help="ISO 8601 time (UTC if no offset); default: the last sync minus a safety overlap.")
def reconcile_command(domain: str, since: str | None) -> None:
    """Fetch the shop's orders updated since the last sync and apply them like their webhooks; exit 1 on errors."""
    start = None
    if since:
        try:
            start = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise click.ClickException(f"--since {since!r} is not an ISO 8601 time") from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    with transaction(_settings().database_url) as session:
        shop_id = _shop(session, domain).id
    try:
        report = reconcile.run(_settings(), shop_id, start)
    except (AdminAPIError, AdminAPIUnavailable, LookupError) as error:
        raise click.ClickException(f"reconcile failed: {error}") from None
    if report.points:
        jobs.signal_balances(_settings())
    _echo_json(report.to_json())
    if report.errors:
        sys.exit(1)


@loyalty.command("verify-ledger")
def verify_ledger_command() -> None:
    """Check every cached balance against the sum of its postings; exit 1 on any mismatch."""
    with transaction(_settings().database_url) as session:
        mismatches = ledger.verify(session)
    for m in mismatches:
        click.echo(f"MISMATCH {m.what} shop={m.shop_id} id={m.key}: cached {m.cached} != postings {m.summed}")
    if mismatches:
        sys.exit(1)
    click.echo("ledger OK: every cached balance equals the sum of its postings")


@loyalty.group("privacy")
def privacy_group() -> None:
    """Privacy requests received from the shop (data requests, redactions, shop erasure)."""


@privacy_group.command("list")
@click.option("--shop", "domain", help="Only this shop's requests.")
def privacy_list(domain: str | None) -> None:
    from sqlalchemy import select

    from plugin.models import PrivacyRequest

    with transaction(_settings().database_url) as session:
        query = select(PrivacyRequest).order_by(PrivacyRequest.id.desc()).limit(200)
        if domain:
            query = query.where(PrivacyRequest.shop_domain == domain)
        _echo_json(
            [
                {
                    "id": r.id,
                    "shop": r.shop_domain,
                    "topic": r.topic,
                    "customer_id": r.customer_id,
                    "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                    "outcome": {k: v for k, v in r.outcome.items() if k != "export"},
                }
                for r in session.scalars(query)
            ]
        )


@privacy_group.command("show")
@click.argument("request_id", type=int)
def privacy_show(request_id: int) -> None:
    """Print one request in full: for a data request, the export to hand to the merchant."""
    from plugin.models import PrivacyRequest

    with transaction(_settings().database_url) as session:
        found = session.get(PrivacyRequest, request_id)
        if found is None:
            raise click.ClickException(f"no privacy request {request_id}")
        _echo_json({"id": found.id, "shop": found.shop_domain, "topic": found.topic, "outcome": found.outcome})
