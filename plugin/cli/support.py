"""Support commands: a member's balance and history, rewards and redemptions, API keys, audited adjustments."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from plugin import jobs, ledger

# The commands keep the short private names they had in one module (commands.py), so edits on either side merge.
from plugin.cli.group import current_settings as _settings
from plugin.cli.group import echo_json as _echo_json
from plugin.cli.group import find_shop as _shop
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable
from plugin.programme.rewards import catalogue
from plugin.services import desk, redemption, shops, support
from plugin.services import schemas as s
from plugin.services.errors import ServiceError


class Refused(click.ClickException):
    """A service's refusal, printed in the APIs' error shape: {"error": {"code", "message", "fields"?}}."""

    def __init__(self, error: ServiceError):
        super().__init__(str(error))
        detail = {"code": error.code, "message": str(error)}
        if error.fields is not None:
            detail["fields"] = error.fields
        self.payload = {"error": detail}

    def show(self, file=None) -> None:
        click.echo(json.dumps(self.payload), err=True)


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
        lines = support.history(session, shop, member)[:limit] if member else []
        _echo_json(s.HistoryLineSchema(many=True).dump(lines))  # the support APIs' history lines


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
@click.option("--points", type=click.IntRange(min=1), help="Cash back: the points to spend (whole steps, in bounds).")
def redeem_command(
    domain: str, customer_id: int, reward_id: str, idempotency_key: str | None, actor: str, points: int | None
) -> None:
    """Spend a member's points on a reward; the code (or store credit) is made in the shop by a queued job."""
    try:
        with transaction(_settings().database_url) as session:
            shop = _shop(session, domain)
            made = redemption.redeem(session, shop, customer_id, reward_id, idempotency_key, actor, points=points)
            redemption_id, shop_id = made.id, made.shop_id
    except redemption.RedemptionError as error:
        raise click.ClickException(str(error)) from None
    jobs.enqueue_issue(_settings(), redemption_id, shop_id)
    jobs.signal_balances(_settings())
    with transaction(_settings().database_url) as session:
        _echo_json(_redemption_json(session.get(redemption.Redemption, (shop_id, redemption_id))))


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
    """Delete an unused reward's code (or debit an unspent store credit) in the shop and give the points back."""
    try:
        cancelled = redemption.cancel(_settings(), redemption_id, reason, actor)
    except (LookupError, redemption.RedemptionError, AdminAPIError, AdminAPIUnavailable) as error:
        raise click.ClickException(f"not cancelled: {error}") from None
    jobs.signal_balances(_settings())
    _echo_json(_redemption_json(cancelled))


@loyalty.group("keys")
def keys_group() -> None:
    """Support API keys: create (shown once), list, revoke."""


@keys_group.command("create")
@click.argument("domain")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
def keys_create(domain: str, name: str, scope: str) -> None:
    """A new key, printed once (store it now: only its hash is kept)."""
    try:
        key, raw = desk.create_key(_settings(), _shop_id(domain), {"name": name, "scope": scope})
    except ServiceError as error:
        raise Refused(error) from None
    _echo_json({**s.KeySchema().dump(key), "key": raw})


@keys_group.command("list")
@click.argument("domain")
def keys_list(domain: str) -> None:
    _echo_json(s.KeySchema(many=True).dump(desk.list_keys(_settings(), _shop_id(domain))))


@keys_group.command("revoke")
@click.argument("domain")
@click.argument("key_id", type=int)
def keys_revoke(domain: str, key_id: int) -> None:
    try:
        desk.revoke_key(_settings(), _shop_id(domain), key_id)
    except ServiceError as error:
        raise Refused(error) from None
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
    body = {"points": points, "reason_code": reason_code, "note": note}
    _echo_action(lambda: desk.adjust(_settings(), _shop_id(domain), customer_id, body, actor))


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
    body = {"points": points, "reason_code": reason_code, "note": note}
    _echo_action(lambda: desk.reverse_order(_settings(), _shop_id(domain), order_id, body, actor))


@loyalty.command("undo")
@click.argument("domain")
@click.argument("action_id", type=int)
@click.option("--reason", "reason_code", required=True)
@click.option("--note", required=True)
@click.option("--actor", default="support", show_default=True)
def undo_command(domain: str, action_id: int, reason_code: str, note: str, actor: str) -> None:
    """Undo a support action with a further audited action."""
    body = {"reason_code": reason_code, "note": note}
    _echo_action(lambda: desk.undo(_settings(), _shop_id(domain), action_id, body, actor))


def _echo_action(perform) -> None:
    """Run one support write and print the action as the APIs answer it, or the refusal in their error shape."""
    try:
        action = perform()
    except ServiceError as error:
        raise Refused(error) from None
    _echo_json(s.ActionSchema().dump(action))


def _redemption_json(r) -> dict:
    return s.RedemptionSchema().dump(r)  # the support APIs' shape


def _shop_id(domain: str) -> int:
    with transaction(_settings().database_url) as session:
        return _shop(session, domain).id
