"""`flask --app plugin loyalty milestones ...`: a shop's milestone programme: show and save (JSON out)."""

from __future__ import annotations

import json
from datetime import datetime

import click
from marshmallow import ValidationError

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty, read_json
from plugin.db import transaction
from plugin.services import shops
from plugin.services.errors import ServiceError
from plugin.services.milestones import action_keys, actions, birthdays, surveys
from plugin.services.milestones import settings as milestone_settings


@loyalty.group("milestones")
def milestones_group() -> None:
    """Milestones and engagement: spend thresholds, punch cards, signup and birthday bonuses, custom actions."""


def refuse(error: ValidationError) -> click.ClickException:
    return click.ClickException(f"refused: {json.dumps(error.messages, default=str)}")


@milestones_group.command("show")
@click.argument("domain")
def milestones_show(domain: str) -> None:
    """The shop's milestone programme and its version."""
    with transaction(_settings().database_url) as session:
        _echo_json(milestone_settings.current(session, _shop(session, domain).id))


@milestones_group.command("save")
@click.argument("domain")
@click.argument("programme")
@click.option("--actor", default="cli", show_default=True)
def milestones_save(domain: str, programme: str, actor: str) -> None:
    """Save PROGRAMME (a JSON file, '-' or inline JSON) whole, as the shop's next version."""
    proposed = read_json(programme)
    with transaction(_settings().database_url) as session:
        try:
            _echo_json(milestone_settings.save(session, _shop(session, domain), proposed, actor))
        except ValidationError as error:
            raise refuse(error) from None


def _member_id(session, shop, customer_id: int) -> int:
    member = shops.member(session, shop, customer_id)
    if member is None:
        raise click.ClickException(f"no member with customer id {customer_id}")
    return member.id


def _service(call):
    try:
        return call()
    except ServiceError as error:
        raise click.ClickException(f"{error.code}: {error} {json.dumps(error.fields or {})}") from None


@milestones_group.command("birthdays")
@click.option("--at", "at", default=None, help="Run as if it were this instant (ISO 8601, with its offset).")
def milestones_birthdays(at: str | None) -> None:
    """Award today's birthday bonuses in every shop (what the hourly job does; safe to run again)."""
    now = datetime.fromisoformat(at) if at else None
    if now is not None and now.tzinfo is None:
        raise click.ClickException("--at needs an offset, e.g. 2026-12-31T23:00:00+00:00")
    _echo_json(birthdays.award_all(_settings().database_url, now))


@milestones_group.command("birthday")
@click.argument("domain")
@click.argument("customer_id", type=int)
@click.argument("month", type=int)
@click.argument("day", type=int)
def milestones_birthday(domain: str, customer_id: int, month: int, day: int) -> None:
    """Set a member's birthday for them (support: not limited to one change a year)."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        member_id = _member_id(session, shop, customer_id)
        row = _service(lambda: birthdays.give(session, shop.id, member_id, month, day, "admin"))
        _echo_json(birthdays.describe(row))


@milestones_group.command("complete")
@click.argument("domain")
@click.argument("customer_id", type=int)
@click.argument("action_id")
@click.option("--key", "key", required=True, help="Idempotency key: the same key again posts nothing.")
@click.option("--answers", default=None, help='A survey\'s answers as JSON: {"nps": 9}.')
def milestones_complete(domain: str, customer_id: int, action_id: str, key: str, answers: str | None) -> None:
    """Record that a member completed a custom action (as the signed endpoint does)."""
    parsed = read_json(answers) if answers else None
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        member_id = _member_id(session, shop, customer_id)
        _echo_json(
            _service(lambda: actions.complete(session, shop, member_id, action_id, f"cli:{key}", channel="server",
                                              answers=parsed))
        )  # fmt: skip


@milestones_group.command("survey")
@click.argument("domain")
@click.argument("survey_id")
def milestones_survey(domain: str, survey_id: str) -> None:
    """A survey's latest answers and its Net Promoter Score per 0-10 question."""
    with transaction(_settings().database_url) as session:
        _echo_json(surveys.summary(session, _shop(session, domain).id, survey_id))


@milestones_group.group("keys")
def keys_group() -> None:
    """Keys that sign calls to the action endpoint (POST /api/actions/completions)."""


@keys_group.command("list")
@click.argument("domain")
def keys_list(domain: str) -> None:
    with transaction(_settings().database_url) as session:
        _echo_json(action_keys.listed(session, _shop(session, domain).id))


@keys_group.command("create")
@click.argument("domain")
@click.argument("name")
def keys_create(domain: str, name: str) -> None:
    """A new key; its secret is printed once."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        _echo_json(_service(lambda: action_keys.create(session, shop.id, name, _settings().encryption_keys)))


@keys_group.command("revoke")
@click.argument("domain")
@click.argument("key_id")
def keys_revoke(domain: str, key_id: str) -> None:
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        _echo_json(_service(lambda: action_keys.revoke(session, shop.id, key_id)))
