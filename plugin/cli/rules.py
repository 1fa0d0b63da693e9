"""`flask --app plugin loyalty rules ...`: a shop's earning rules: show, history, preview and save (JSON out)."""

from __future__ import annotations

import json

import click
from marshmallow import ValidationError

from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty, read_json
from plugin.db import transaction
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.services import preview as previews
from plugin.services import rule_sets


@loyalty.group("rules")
def rules_group() -> None:
    """Earning rules: base rate, fixed points, multipliers, exclusions, segments, campaigns, caps."""


def _refuse(error: ValidationError) -> click.ClickException:
    return click.ClickException(f"invalid rule set: {json.dumps(error.messages, default=str)}")


@rules_group.command("show")
@click.argument("domain")
def rules_show(domain: str) -> None:
    """The shop's current rule set and its version."""
    with transaction(_settings().database_url) as session:
        _echo_json(rule_sets.current(_shop(session, domain)))


@rules_group.command("history")
@click.argument("domain")
def rules_history(domain: str) -> None:
    """Every saved version, newest first."""
    with transaction(_settings().database_url) as session:
        _echo_json(rule_sets.history(session, _shop(session, domain).id))


def _confirmed(domain: str, proposed) -> frozenset[str]:
    """Collections the rule set names that the shop's Admin API has though no cached product is in them yet."""
    with transaction(_settings().database_url) as session:
        shop_id = _shop(session, domain).id
    try:
        return rule_sets.confirm_collections(_settings(), shop_id, proposed)
    except (AdminAPIError, AdminAPIUnavailable) as error:
        raise click.ClickException(f"the shop could not be asked about its collections: {error}") from None


@rules_group.command("save")
@click.argument("domain")
@click.argument("rule_set")
@click.option("--actor", default="cli", show_default=True)
def rules_save(domain: str, rule_set: str, actor: str) -> None:
    """Save RULE_SET (a JSON file, '-' or inline JSON) as the shop's next version."""
    proposed = read_json(rule_set)
    confirmed = _confirmed(domain, proposed)
    with transaction(_settings().database_url) as session:
        try:
            _echo_json(rule_sets.save(session, _shop(session, domain), proposed, actor, confirmed))
        except ValidationError as error:
            raise _refuse(error) from None


@rules_group.command("preview")
@click.argument("domain")
@click.argument("rule_set")
@click.option("--days", default=30, show_default=True, help="Replay the orders paid in this many days.")
@click.option("--seconds", default=previews.DEFAULT_SECONDS, show_default=True, help="Stop (partial) after this.")
def rules_preview(domain: str, rule_set: str, days: int, seconds: float) -> None:
    """Compare RULE_SET with the current rules over the last DAYS of orders (read-only)."""
    proposed = read_json(rule_set)
    confirmed = _confirmed(domain, proposed)
    with transaction(_settings().database_url) as session:
        try:
            shop = _shop(session, domain)
            _echo_json(previews.preview(session, shop, proposed, days, seconds=seconds, confirmed=confirmed))
        except ValidationError as error:
            raise _refuse(error) from None
        except ValueError as error:
            raise click.ClickException(str(error)) from None
