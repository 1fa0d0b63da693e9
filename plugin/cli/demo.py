"""Demo commands: install the demo shop and send the running app a signed sample delivery."""

from __future__ import annotations

import random
from decimal import Decimal

import click

# The commands keep the short private names they had in one module (commands.py), so edits on either side merge.
from plugin.cli.group import current_settings as _settings
from plugin.cli.group import loyalty
from plugin.db import transaction
from plugin.devtools import demo
from plugin.services import referrals, shops


@loyalty.command("demo")
@click.option("--token", default=demo.DEMO_TOKEN, show_default=True, help="The demo shop's Admin API token.")
def demo_command(token: str) -> None:
    """Install the demo shop (idempotent); its Admin API is the local fake shop (plugin/devtools/fake_shop.py)."""
    keys = _settings().encryption_keys
    with transaction(_settings().database_url) as session:
        shop = shops.install(session, demo.DEMO_SHOP, token if keys else None, keys)
        if not referrals.current(session, shop.id).enabled:  # the widget's Refer a friend panel shows in the demo
            referrals.update_settings(session, shop, {"enabled": True}, "demo")
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
