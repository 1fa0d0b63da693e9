"""The `loyalty` command group and the helpers every audience's commands share."""

from __future__ import annotations

import json
from pathlib import Path

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


def read_json(source: str):
    """JSON from a file path, '-' for stdin, or given inline (an object or a list)."""
    text = click.get_text_stream("stdin").read() if source == "-" else source
    if source != "-" and not source.lstrip().startswith(("{", "[")):
        text = Path(source).read_text()
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.ClickException(f"not JSON: {error}") from None
