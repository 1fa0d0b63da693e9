"""`flask --app plugin loyalty ...`: operations, support look-ups and the demo."""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup
from marshmallow import ValidationError

from plugin import inbox, ledger
from plugin.config import Settings
from plugin.db import transaction
from plugin.devtools import demo
from plugin.jobs import dispatch as queue
from plugin.jobs import tasks as jobs
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable
from plugin.programme.rewards import catalogue
from plugin.services import reconcile, redemption, shops

ROOT = Path(__file__).resolve().parents[2]


def _settings() -> Settings:
    return current_app.extensions["loyalty"]


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


@click.group(cls=AppGroup)
def loyalty() -> None:
    """Loyalty operations: shops, balances, the inbox and the ledger."""


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


@loyalty.command("balance")
@click.argument("domain")
@click.argument("customer_id", type=int)
def balance_command(domain: str, customer_id: int) -> None:
    """Print a member's balance and pending points as JSON."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        member = shops.member(session, shop, customer_id)
        if member is None:
            _echo_json({"customer_id": customer_id, "member": False, "balance": 0, "pending": 0, "available": 0})
            return
        balance = ledger.balance_of(session, shop.id, member)
        _echo_json({"customer_id": customer_id, "member": True, **balance.to_json()})


@loyalty.command("history")
@click.argument("domain")
@click.argument("customer_id", type=int)
@click.option("--limit", default=100, show_default=True)
def history_command(domain: str, customer_id: int, limit: int) -> None:
    """Print a member's postings, newest first, each with what caused it."""
    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        member = shops.member(session, shop, customer_id)
        postings = ledger.history(session, shop.id, member.id, limit) if member else []
        _echo_json(
            [
                {
                    "id": p.id,
                    "at": p.created_at.isoformat(),
                    "kind": p.kind,
                    "points": p.points,
                    "balance_after": p.balance_after,
                    "source": f"{p.source_type}:{p.source_id}",
                    "order_id": p.order_id,
                    "rule_version": p.rule_version,
                    "available_at": p.available_at.isoformat() if p.available_at else None,
                    "note": p.note,
                    "actor": p.actor,
                }
                for p in postings
            ]
        )


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
        status = inbox.replay(_settings().database_url, delivery_id)
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
        queue.signal_balances(_settings())
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


@loyalty.command("demo")
@click.option("--token", default=demo.DEMO_TOKEN, show_default=True, help="The demo shop's Admin API token.")
def demo_command(token: str) -> None:
    """Install the demo shop (idempotent); its Admin API is the local fake shop (plugin/fake_shop.py)."""
    keys = _settings().encryption_keys
    with transaction(_settings().database_url) as session:
        shops.install(session, demo.DEMO_SHOP, token if keys else None, keys)
    click.echo(f"demo shop {demo.DEMO_SHOP} is installed")


@loyalty.command("simulate")
@click.option("--url", default="http://127.0.0.1:5000", show_default=True, help="Where the app listens.")
@click.option("--shop", default=demo.DEMO_SHOP, show_default=True)
@click.option("--customer", default=1001, show_default=True, type=int)
@click.option("--amount", default="42.50", show_default=True, help="Line total in shop currency.")
@click.option("--order-id", type=int, help="Defaults to a random id.")
@click.option("--refund", is_flag=True, help="Send a full refund of --order-id instead of a paid order.")
def simulate_command(url: str, shop: str, customer: int, amount: str, order_id: int | None, refund: bool) -> None:
    """Send the running app a signed orders/paid (or refunds/create) delivery, as Shopify would."""
    import requests

    secret = _settings().shopify_api_secret
    if not secret:
        raise click.ClickException("SHOPIFY_API_SECRET is not set; the app would refuse the signature")
    if refund and order_id is None:
        raise click.ClickException("--refund needs --order-id")
    order_id = order_id or random.randint(10**12, 10**13)
    if refund:
        topic, payload = "refunds/create", demo.sample_refund(order_id, random.randint(10**12, 10**13))
    else:
        topic, payload = "orders/paid", demo.sample_order(order_id, customer, Decimal(amount))
    body, headers = demo.signed_delivery(shop, topic, payload, secret)
    response = requests.post(f"{url.rstrip('/')}/webhooks/shopify", data=body, headers=headers, timeout=10)
    click.echo(f"{topic} for order {order_id}: HTTP {response.status_code} {response.text.strip()}")
    click.echo(f"now try: flask --app plugin loyalty balance {shop} {customer}")


@loyalty.command("rewards")
@click.argument("domain")
def rewards_command(domain: str) -> None:
    """List a shop's rewards catalogue."""
    with transaction(_settings().database_url) as session:
        _echo_json([reward.to_json() for reward in catalogue(_shop(session, domain).settings)])


@loyalty.command("redeem")
@click.argument("domain")
@click.argument("customer_id", type=int)
@click.argument("reward_id")
@click.option("--idempotency-key", help="Repeat a request safely: the same key returns the same redemption.")
@click.option("--actor", default="support", show_default=True, help="Who redeems (kept in the ledger).")
def redeem_command(domain: str, customer_id: int, reward_id: str, idempotency_key: str | None, actor: str) -> None:
    """Spend a member's points on a reward; the code is created in the shop by a queued job."""
    try:
        with transaction(_settings().database_url) as session:
            made = redemption.redeem(session, _shop(session, domain), customer_id, reward_id, idempotency_key, actor)
            redemption_id = made.id
    except redemption.RedemptionError as error:
        raise click.ClickException(str(error)) from None
    queue.enqueue_issue(_settings(), redemption_id)
    queue.signal_balances(_settings())
    with transaction(_settings().database_url) as session:
        _echo_json(_redemption_json(session.get(redemption.Redemption, redemption_id)))


class _ListByDefault(AppGroup):
    """`redemptions DOMAIN CUSTOMER_ID` lists; `redemptions cancel ID` cancels."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@loyalty.group("redemptions", cls=_ListByDefault)
def redemptions_group() -> None:
    """A member's redemptions and their codes; cancel an unused one."""


@redemptions_group.command("list")
@click.argument("domain")
@click.argument("customer_id", type=int)
def redemptions_list(domain: str, customer_id: int) -> None:
    with transaction(_settings().database_url) as session:
        rows = redemption.for_member(session, _shop(session, domain), customer_id)
        _echo_json([_redemption_json(r) for r in rows])


@redemptions_group.command("cancel")
@click.argument("redemption_id", type=int)
@click.option("--reason", required=True, help="Why (kept with the redemption and the ledger).")
@click.option("--actor", default="support", show_default=True)
def redemptions_cancel(redemption_id: int, reason: str, actor: str) -> None:
    """Delete an unused reward's code in the shop and give the points back."""
    try:
        cancelled = redemption.cancel(_settings(), redemption_id, reason, actor)
    except (LookupError, redemption.RedemptionError, AdminAPIError, AdminAPIUnavailable) as error:
        raise click.ClickException(f"not cancelled: {error}") from None
    queue.signal_balances(_settings())
    _echo_json(_redemption_json(cancelled))


@loyalty.group("keys")
def keys_group() -> None:
    """Support API keys: create (shown once), list, revoke."""


@keys_group.command("create")
@click.argument("domain")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
def keys_create(domain: str, name: str, scope: str) -> None:
    from plugin.services import support

    with transaction(_settings().database_url) as session:
        key, raw = support.create_key(session, _shop(session, domain), name, scope)
        _echo_json(
            {
                "id": key.id,
                "name": key.name,
                "scope": key.scope,
                "key": raw,
                "note": "store it now: only its hash is kept",
            }
        )


@keys_group.command("list")
@click.argument("domain")
def keys_list(domain: str) -> None:
    from sqlalchemy import select

    from plugin.models import SupportKey

    with transaction(_settings().database_url) as session:
        shop = _shop(session, domain)
        rows = session.scalars(select(SupportKey).where(SupportKey.shop_id == shop.id).order_by(SupportKey.id))
        _echo_json(
            [
                {
                    "id": k.id,
                    "name": k.name,
                    "prefix": k.prefix,
                    "scope": k.scope,
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in rows
            ]
        )


@keys_group.command("revoke")
@click.argument("domain")
@click.argument("key_id", type=int)
def keys_revoke(domain: str, key_id: int) -> None:
    from plugin.services import support

    with transaction(_settings().database_url) as session:
        try:
            support.revoke_key(session, _shop(session, domain), key_id)
        except support.SupportError as error:
            raise click.ClickException(str(error)) from None
    click.echo(f"key {key_id} revoked")


@loyalty.command("adjust")
@click.argument("domain")
@click.argument("customer_id", type=int)
@click.argument("points", type=int)
@click.option("--reason", "reason_code", required=True, help="goodwill, correction, refund, fraud, duplicate, other")
@click.option("--note", required=True)
@click.option("--actor", default="support", show_default=True)
def adjust_command(domain: str, customer_id: int, points: int, reason_code: str, note: str, actor: str) -> None:
    """Add (or with a negative number take) points by hand; audited and undoable."""
    from plugin.services import support

    try:
        with transaction(_settings().database_url) as session:
            action = support.adjust(session, _shop(session, domain), customer_id, points, reason_code, note, actor)
            _echo_json(support.action_json(action))
    except support.SupportError as error:
        raise click.ClickException(str(error)) from None


@loyalty.command("reverse-order")
@click.argument("domain")
@click.argument("order_id", type=int)
@click.option("--points", type=int, help="How many; default all the order still holds.")
@click.option("--reason", "reason_code", required=True)
@click.option("--note", required=True)
@click.option("--actor", default="support", show_default=True)
def reverse_order_command(
    domain: str, order_id: int, points: int | None, reason_code: str, note: str, actor: str
) -> None:
    """Take back an order's points; audited and undoable."""
    from plugin.services import support

    try:
        with transaction(_settings().database_url) as session:
            action = support.reverse_order(session, _shop(session, domain), order_id, points, reason_code, note, actor)
            _echo_json(support.action_json(action))
    except support.SupportError as error:
        raise click.ClickException(str(error)) from None


@loyalty.command("undo")
@click.argument("domain")
@click.argument("action_id", type=int)
@click.option("--reason", "reason_code", required=True)
@click.option("--note", required=True)
@click.option("--actor", default="support", show_default=True)
def undo_command(domain: str, action_id: int, reason_code: str, note: str, actor: str) -> None:
    """Undo a support action with a further audited action."""
    from plugin.services import support

    try:
        with transaction(_settings().database_url) as session:
            action = support.undo(session, _shop(session, domain), action_id, reason_code, note, actor)
            _echo_json(support.action_json(action))
    except support.SupportError as error:
        raise click.ClickException(str(error)) from None


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


def _redemption_json(r) -> dict:
    return {
        "id": r.id,
        "status": r.status,
        "code": r.code,
        "reward": r.reward["title"],
        "points": r.points,
        "created_at": r.created_at.isoformat(),
        "ends_at": r.ends_at.isoformat() if r.ends_at else None,
        "reason": r.reason,
    }


def _shop(session, domain: str):
    try:
        return shops.get(session, domain)
    except shops.ShopNotFound as error:
        raise click.ClickException(str(error)) from None


from plugin.cli.imports import imports_group  # noqa: E402  (the import group lives in its own module)

loyalty.add_command(imports_group)
