"""`loyalty expiry ...`: show or set a shop's points expiry, run today's expiry, and a member's next expiry."""

from __future__ import annotations

import json
from datetime import datetime

import click

from plugin.cli.group import current_settings, echo_json, find_shop, loyalty
from plugin.db import transaction
from plugin.models import Member
from plugin.services import expiry
from plugin.services.errors import ServiceError, summary


@loyalty.group("expiry")
def expiry_group() -> None:
    """Points expiry (docs/expiry.md)."""


@expiry_group.command("show")
@click.argument("domain")
def show(domain: str) -> None:
    """DOMAIN's expiry policy."""
    with transaction(current_settings().database_url) as session:
        shop = find_shop(session, domain)
        echo_json(expiry.policy_json(expiry.policy_of(session, shop.id)))


@expiry_group.command("set")
@click.argument("domain")
@click.argument("settings_json")
def set_policy(domain: str, settings_json: str) -> None:
    """Set DOMAIN's policy, e.g. '{"policy": "per_lot", "months": 12, "reminder_days": [30, 7]}'."""
    try:
        body = json.loads(settings_json)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}") from None
    try:
        with transaction(current_settings().database_url) as session:
            shop = find_shop(session, domain)
            echo_json(expiry.policy_json(expiry.save_policy(session, shop.id, body)))
    except ServiceError as error:
        raise click.ClickException(summary(error.fields) if error.fields else str(error)) from None


@expiry_group.command("run")
@click.argument("domain")
@click.option("--as-of", "as_of", help="Run as on this ISO 8601 time (with a zone): rehearsals and the chaos replay.")
def run(domain: str, as_of: str | None) -> None:
    """Run DOMAIN's expiry for its local day now (what the daily job does; running it again changes nothing)."""
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--as-of") from None
        if when.tzinfo is None:
            raise click.BadParameter("give a time zone, e.g. 2027-01-01T00:00:00+00:00", param_hint="--as-of")
    with transaction(current_settings().database_url) as session:
        shop_id = find_shop(session, domain).id
    echo_json(expiry.run_shop(current_settings().database_url, shop_id, now=when).to_json())


@expiry_group.command("next")
@click.argument("domain")
@click.argument("customer_id", type=int)
def next_expiry(domain: str, customer_id: int) -> None:
    """A member's next expiry: {"date", "points"}, or null."""
    with transaction(current_settings().database_url) as session:
        shop = find_shop(session, domain)
        member_id = session.query(Member.id).filter_by(shop_id=shop.id, customer_id=customer_id).scalar()
        echo_json(expiry.next_expiry(session, shop, member_id) if member_id else None)
