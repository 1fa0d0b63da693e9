"""Settings read from the environment, with safe local defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

DEFAULT_DATABASE_URL = "sqlite:///instance/loyalty.db"
DEFAULT_API_VERSION = "2026-10"  # Shopify's stable Admin API version: docs/decisions/0015-admin-api-version.md
# Orders and refunds (webhooks), customers and their metafields (balances), discounts (reward codes), products (the
# product cache that product-aware earning rules match lines by), store-credit accounts and their transactions
# (store-credit rewards: credit, look up, debit back on cancel), and the shop's locales (the language
# explanations are shown in).
DEFAULT_SCOPES = (
    "read_orders,read_customers,write_customers,write_discounts,read_products,"
    "read_store_credit_accounts,read_store_credit_account_transactions,write_store_credit_account_transactions,"
    "read_locales"
)
MAX_WEBHOOK_BYTES = 1024 * 1024


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common Heroku/libpq spellings."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = ""
    shopify_api_key: str = ""
    shopify_api_secret: str = ""
    shopify_api_secret_previous: str = ""
    shopify_api_base_url: str = ""
    shopify_api_version: str = DEFAULT_API_VERSION
    shopify_api_timeout: float = 10.0
    shopify_scopes: str = DEFAULT_SCOPES
    shopify_app_url: str = ""  # the app's public https origin; OAuth's redirect_uri is built on it
    secret_key: str = ""
    encryption_keys: tuple[str, ...] = field(default_factory=tuple)
    queue_name: str = "loyalty"
    inbox_batch_size: int = 100  # smaller batches cost more CPU an order: decision 0092, docs/benchmarks.md
    inbox_set_based: bool = True  # new paid orders written per batch in multi-row statements (decision 0037)
    # A delivery whose drain died twice waits this long before each next claim; the one place it is set
    # (inbox.RETRY_WAIT and the environment's default read it).
    inbox_retry_wait_seconds: int = 30
    # A drain job that met a burst keeps draining it this long at most before it ends (decision 0086); 0: never.
    drain_stint_seconds: float = 10.0
    sweep_after_seconds: int = 10
    sweep_interval_seconds: int = 15  # how often an idle worker runs the sweeper (plugin/worker.py)
    redemption_lease_seconds: int = 60
    reconcile_every_minutes: int = 60  # how often the sweeper reconciles each shop's orders; 0 turns it off
    demo: bool = False
    # Development only: event endpoints may be http:// on a loopback address (a local receiver). Never in production.
    events_allow_loopback: bool = False
    events_first_retry_seconds: int = 30  # the first wait after a failed event delivery; it doubles, at most 2 h

    @property
    def inline_jobs(self) -> bool:
        """Without Redis, jobs run in the request that queued them (local development)."""
        return not self.redis_url

    @property
    def webhook_secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.shopify_api_secret, self.shopify_api_secret_previous) if s)

    @classmethod
    def from_env(cls) -> Settings:
        """The process's settings from its environment, read afresh on each call (jobs call it per job); its start
        watches them once for the widget's generations (create_app, plugin/worker.py: plugin.generations.watch)."""
        keys = tuple(k.strip() for k in _env("LOYALTY_ENCRYPTION_KEYS").split(",") if k.strip())
        return cls(
            database_url=normalise_database_url(_env("DATABASE_URL", DEFAULT_DATABASE_URL)),
            redis_url=_env("REDIS_URL"),
            shopify_api_key=_env("SHOPIFY_API_KEY"),
            shopify_api_secret=_env("SHOPIFY_API_SECRET"),
            shopify_api_secret_previous=_env("SHOPIFY_API_SECRET_PREVIOUS"),
            shopify_api_base_url=_env("SHOPIFY_API_BASE_URL").rstrip("/"),
            shopify_api_version=_env("SHOPIFY_API_VERSION", DEFAULT_API_VERSION),
            shopify_api_timeout=float(_env("SHOPIFY_API_TIMEOUT", "10")),
            shopify_scopes=_env("SHOPIFY_SCOPES", DEFAULT_SCOPES),
            shopify_app_url=_env("SHOPIFY_APP_URL").rstrip("/"),
            secret_key=_env("SECRET_KEY"),
            encryption_keys=keys,
            queue_name=_env("LOYALTY_QUEUE", "loyalty"),
            inbox_batch_size=int(_env("LOYALTY_INBOX_BATCH", str(cls.inbox_batch_size))),
            inbox_set_based=_env("LOYALTY_INBOX_SET_BASED", "1") != "0",
            inbox_retry_wait_seconds=int(_env("LOYALTY_INBOX_RETRY_WAIT_SECONDS", str(cls.inbox_retry_wait_seconds))),
            drain_stint_seconds=max(0.0, float(_env("LOYALTY_DRAIN_STINT_SECONDS", str(cls.drain_stint_seconds)))),
            sweep_after_seconds=int(_env("LOYALTY_SWEEP_AFTER_SECONDS", "10")),
            sweep_interval_seconds=max(1, int(_env("LOYALTY_SWEEP_INTERVAL_SECONDS", "15"))),
            redemption_lease_seconds=int(_env("LOYALTY_REDEMPTION_LEASE_SECONDS", "60")),
            reconcile_every_minutes=int(_env("LOYALTY_RECONCILE_EVERY_MINUTES", "60")),
            demo=_env("LOYALTY_DEMO") == "1",
            events_allow_loopback=_env("LOYALTY_EVENTS_ALLOW_LOOPBACK") == "1",
            events_first_retry_seconds=int(_env("LOYALTY_EVENTS_FIRST_RETRY_SECONDS", "30")),
        )
