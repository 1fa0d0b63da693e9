"""`loyalty events ...`: register endpoints, deliver now, read the delivery log, replay an event or a time range."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import click

from plugin.cli.group import current_settings, echo_json, find_shop, loyalty
from plugin.db import transaction
from plugin.platforms.shopify import flow
from plugin.services import event_delivery, event_endpoints, event_schemas
from plugin.services.errors import ServiceError, summary


@loyalty.group("events")
def events_group() -> None:
    """Outgoing events: endpoints, delivery, the log, replay (docs/events.md)."""


def _refused(error: ServiceError) -> click.ClickException:
    return click.ClickException(summary(error.fields) if error.fields else str(error))


@events_group.command("add-endpoint")
@click.argument("domain")
@click.argument("url")
@click.option("--type", "event_types", multiple=True, help="An event type to receive (repeat); default: every type.")
@click.option("--description")
def add_endpoint(domain: str, url: str, event_types: tuple[str, ...], description: str | None) -> None:
    """Register URL for DOMAIN's events; prints the signing secret, which is shown this once only."""
    settings = current_settings()
    try:
        with transaction(settings.database_url) as session:
            shop = find_shop(session, domain)
            endpoint, secret = event_endpoints.register(
                session, shop.id, url, settings.encryption_keys, event_types=list(event_types) or None,
                description=description, allow_loopback=settings.events_allow_loopback,
            )  # fmt: skip
            echo_json({"endpoint": event_endpoints.to_json(endpoint), "secret": secret})
    except ServiceError as error:
        raise _refused(error) from None


@events_group.command("endpoints")
@click.argument("domain")
def list_endpoints(domain: str) -> None:
    """DOMAIN's endpoints, with why any is disabled."""
    with transaction(current_settings().database_url) as session:
        shop = find_shop(session, domain)
        echo_json([event_endpoints.to_json(e) for e in event_endpoints.endpoints(session, shop.id)])


@events_group.command("enable-endpoint")
@click.argument("domain")
@click.argument("endpoint_id", type=int)
def enable_endpoint(domain: str, endpoint_id: int) -> None:
    """Turn a disabled endpoint back on."""
    try:
        with transaction(current_settings().database_url) as session:
            shop = find_shop(session, domain)
            echo_json(event_endpoints.to_json(event_endpoints.enable(session, shop.id, endpoint_id)))
    except ServiceError as error:
        raise _refused(error) from None


@events_group.command("deliver")
def deliver() -> None:
    """Fan out new events and send every due delivery now (what the worker's job does)."""
    echo_json(event_delivery.deliver(current_settings()))


@events_group.command("log")
@click.argument("domain")
@click.option("--status", type=click.Choice(["pending", "delivered", "gave_up"]))
@click.option("--event-id")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
def log(domain: str, status: str | None, event_id: str | None, limit: int) -> None:
    """DOMAIN's delivery log, newest first."""
    with transaction(current_settings().database_url) as session:
        shop = find_shop(session, domain)
        echo_json(event_delivery.delivery_log(session, shop.id, status=status, event_id=event_id, limit=limit))


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-12-01T00:00:00+00:00", param_hint=name)
    return value


@events_group.command("replay")
@click.argument("domain")
@click.option("--event-id", help="One event, by its id.")
@click.option("--since", help="With --until: every event recorded in [since, until) (ISO 8601 with a zone).")
@click.option("--until")
@click.option("--endpoint-id", type=int, help="Only this endpoint (default: every active one).")
def replay(domain: str, event_id: str | None, since: str | None, until: str | None, endpoint_id: int | None) -> None:
    """Send one event, or a time range of events, again with the same event ids."""
    if bool(event_id) == bool(since or until) or (since is None) != (until is None):
        raise click.UsageError("give --event-id, or both --since and --until")
    try:
        start = _aware(datetime.fromisoformat(since), "--since") if since else None
        end = _aware(datetime.fromisoformat(until), "--until") if until else None
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if start and end and start >= end:
        raise click.BadParameter("must be after --since", param_hint="--until")
    with transaction(current_settings().database_url) as session:
        shop = find_shop(session, domain)
        queued = event_delivery.replay(
            session, shop.id, event_id=event_id, since=start, until=end, endpoint_id=endpoint_id
        )
    echo_json({"queued": queued})


@events_group.command("schemas")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default="docs/events")
def schemas(directory: Path) -> None:
    """Write every event type's JSON Schema into DIRECTORY (default docs/events)."""
    directory.mkdir(parents=True, exist_ok=True)
    for event_type, document in event_schemas.all_schemas().items():
        (directory / f"{event_type}.schema.json").write_text(json.dumps(document, indent=2) + "\n")
    click.echo(f"wrote {len(event_schemas.all_schemas())} schemas to {directory}")


@events_group.command("enable-flow")
@click.argument("domain")
def enable_flow(domain: str) -> None:
    """Send DOMAIN's events to Shopify Flow as well (its trigger extensions must be deployed with the app)."""
    settings = current_settings()
    with transaction(settings.database_url) as session:
        shop = find_shop(session, domain)
        echo_json(event_endpoints.to_json(event_endpoints.enable_flow(session, shop.id, settings.encryption_keys)))


@events_group.command("flow-extensions")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=str(flow.EXTENSIONS))
def flow_extensions(directory: Path) -> None:
    """Write one Shopify Flow trigger extension per event type (default: where shopify.app.toml looks)."""
    for event_type in sorted(flow.TRIGGERS):
        folder = directory / flow.handle(event_type)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "shopify.extension.toml").write_text(flow.extension_toml(event_type))
    click.echo(f"wrote {len(flow.TRIGGERS)} trigger extensions to {directory}")
