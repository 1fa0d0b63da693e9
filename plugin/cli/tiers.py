"""`flask --app plugin loyalty tiers ...`: list tiers with member counts, save, preview, apply, member history."""

from __future__ import annotations

import json

import click
from sqlalchemy import select

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty, read_json
from plugin.db import transaction
from plugin.models import Member
from plugin.services import tier_preview, tier_sets, tiers
from plugin.services.errors import Invalid


@loyalty.group("tiers")
def tiers_group() -> None:
    """VIP tiers: metric, period, thresholds, benefits and the paid membership (docs/tiers.md)."""


def _refuse(error: Invalid) -> click.ClickException:
    return click.ClickException(f"invalid tier programme: {json.dumps(error.fields, default=str)}")


@tiers_group.command("list")
@click.argument("domain")
def tiers_list(domain: str) -> None:
    """The shop's tier programme, each tier with its member count."""
    with transaction(_settings().database_url) as session:
        _echo_json(tier_sets.with_counts(session, _shop(session, domain)))


@tiers_group.command("history")
@click.argument("domain")
def tiers_history(domain: str) -> None:
    """Every saved version of the programme, newest first."""
    with transaction(_settings().database_url) as session:
        _echo_json(tier_sets.history(session, _shop(session, domain).id))


@tiers_group.command("preview")
@click.argument("domain")
@click.argument("programme")
def tiers_preview(domain: str, programme: str) -> None:
    """Who moves: members up, down and unchanged per tier under PROGRAMME (read-only)."""
    proposed = read_json(programme)
    with transaction(_settings().database_url) as session:
        try:
            _echo_json(tier_preview.preview(session, _shop(session, domain), proposed))
        except Invalid as error:
            raise _refuse(error) from None


@tiers_group.command("save")
@click.argument("domain")
@click.argument("programme")
@click.option("--actor", default="cli", show_default=True)
def tiers_save(domain: str, programme: str, actor: str) -> None:
    """Save PROGRAMME (a JSON file, '-' or inline JSON) as the next version and move members to it."""
    proposed = read_json(programme)
    settings = _settings()
    with transaction(settings.database_url) as session:
        shop = _shop(session, domain)
        try:
            saved = tier_sets.save(session, shop, proposed, actor)
        except Invalid as error:
            raise _refuse(error) from None
        shop_id = shop.id
    saved["members_moved"] = tier_sets.apply(settings.database_url, shop_id)
    _echo_json(saved)


@tiers_group.command("apply")
@click.argument("domain")
def tiers_apply(domain: str) -> None:
    """Recompute every member's tier under the current programme (safe to repeat)."""
    settings = _settings()
    with transaction(settings.database_url) as session:
        shop_id = _shop(session, domain).id
    _echo_json({"members_moved": tier_sets.apply(settings.database_url, shop_id)})


@tiers_group.command("member")
@click.argument("domain")
@click.argument("customer_id", type=int)
def tiers_member(domain: str, customer_id: int) -> None:
    """A member's tier, kept-until and paid-until dates, and every move with its reason (newest first)."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        member = session.execute(
            select(Member).where(Member.shop_id == shop.id, Member.customer_id == customer_id)
        ).scalar_one_or_none()
        if member is None:
            raise click.ClickException(f"no member with customer id {customer_id}")
        _echo_json(
            {
                "customer_id": customer_id,
                "tier": member.tier,
                "tier_until": member.tier_until.isoformat() if member.tier_until else None,
                "paid_until": member.tier_paid_until.isoformat() if member.tier_paid_until else None,
                "history": tiers.history(session, shop.id, member.id),
            }
        )
