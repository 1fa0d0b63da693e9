"""`flask --app plugin loyalty milestones ...`: a shop's milestone programme: show and save (JSON out)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from marshmallow import ValidationError

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.services.milestones import settings as milestone_settings


@loyalty.group("milestones")
def milestones_group() -> None:
    """Milestones and engagement: spend thresholds, punch cards, signup and birthday bonuses, custom actions."""


def read_json(source: str):
    """JSON from a file path, '-' for stdin, or inline."""
    text = click.get_text_stream("stdin").read() if source == "-" else source
    if source != "-" and not source.lstrip().startswith(("{", "[")):
        text = Path(source).read_text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.ClickException(f"not JSON: {error}") from None


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
