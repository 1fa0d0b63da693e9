"""The `loyalty` command group and the helpers every audience's commands share."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup

from plugin.config import Settings
from plugin.services import shops


def current_settings() -> Settings:
    return current_app.extensions["loyalty"]


def echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=AppGroup)
def loyalty() -> None:
    """Loyalty operations: shops, balances, the inbox and the ledger."""


def find_shop(session, domain: str):
    try:
        return shops.get(session, domain)
    except shops.ShopNotFound as error:
        raise click.ClickException(str(error)) from None
