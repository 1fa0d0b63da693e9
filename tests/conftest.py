"""Shared fixtures: a migrated database per test (PostgreSQL or SQLite), the app, and signed deliveries."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import create_engine, text

from plugin import create_app
from plugin.config import Settings, normalise_database_url
from plugin.db import engine_for, transaction
from plugin.platforms.shopify.adapter import webhook_signature
from plugin.services import shops

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures" / "shopify"
SECRET = "shpss_test-webhook-secret-0123456789abcdef"  # as long as a real app secret
SHOP = "loyal-shop.myshopify.com"
TABLES = (
    "used_oauth_states",
    "postings",
    "redemptions",
    "refunds",
    "orders",
    "members",
    "deliveries",
    "delivery_claims",
    "shops",
    "privacy_requests",
    "ledger_erasures",
)
ENCRYPTION_KEY = Fernet.generate_key().decode()
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _migrate(url: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    command.upgrade(config, "head")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database: a SQLite template file, or a fresh PostgreSQL database for this run."""
    url = normalise_database_url(os.environ.get("TEST_DATABASE_URL", ""))
    if not url or url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("db") / "template.db"
        _migrate(f"sqlite:///{path}")
        engine_for(f"sqlite:///{path}").dispose()
        yield f"sqlite:///{path}"
        return
    # A database of this run's own, so two test runs against one server never collide.
    name = f"loyalty_test_{os.getpid()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    test_url = url.rsplit("/", 1)[0] + f"/{name}"
    _migrate(test_url)
    yield test_url
    for engine in list(_engines_for(test_url)):
        engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _engines_for(url: str):
    from plugin.db import _ENGINES

    return [engine for key, engine in _ENGINES.items() if key == url]


@pytest.fixture
def database_url(database_template: str, tmp_path: Path) -> Iterator[str]:
    if database_template.startswith("sqlite"):
        path = tmp_path / "loyalty.db"
        shutil.copy(database_template.split("///", 1)[1], path)
        url = f"sqlite:///{path}"
        yield url
        engine_for(url).dispose()
        return
    with engine_for(database_template).begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    yield database_template


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url="",
        shopify_api_key="test-api-key",
        shopify_api_secret=SECRET,
        encryption_keys=(ENCRYPTION_KEY,),
        secret_key="test-secret-key",
    )


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings, TESTING=True)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def shop(settings: Settings) -> int:
    """The installed test shop's id. It has no Admin API token, so nothing calls out to a shop."""
    with transaction(settings.database_url) as session:
        return shops.install(session, SHOP, None, settings.encryption_keys).id


@pytest.fixture
def shop_with_token(settings: Settings) -> int:
    """The test shop, installed with an Admin API token (for redemption and balance pushes)."""
    with transaction(settings.database_url) as session:
        return shops.install(session, SHOP, "shpat_test_token", settings.encryption_keys).id


def signed_headers(
    body: bytes, topic: str, shop: str = SHOP, webhook_id: str | None = None, secret: str = SECRET
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop,
        "X-Shopify-Hmac-Sha256": webhook_signature(body, secret),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-11-20T10:00:00.123456789Z",
        "X-Shopify-API-Version": "2025-10",
    }


def deliver(client: FlaskClient, topic: str, payload: Any, *, shop: str = SHOP, webhook_id: str | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/webhooks/shopify", data=body, headers=signed_headers(body, topic, shop, webhook_id))


def fixture(name: str) -> dict[str, Any]:
    """A captured delivery from shared/fixtures/shopify/webhooks-2024-10 ({headers, body, topic})."""
    return json.loads((FIXTURES / "webhooks-2024-10" / name).read_text())


@pytest.fixture
def queued(settings):
    """Settings with Redis on, and a queue of this test's own."""
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.ping()  # the suite needs a real Redis: fail loudly rather than skip
    name = f"loyalty-test-{uuid.uuid4().hex[:8]}"
    yield dataclasses.replace(settings, redis_url=TEST_REDIS_URL, queue_name=name, inbox_batch_size=25)
    for key in redis.scan_iter(f"*{name}*"):
        redis.delete(key)


@pytest.fixture
def fake_shop_api(settings):
    """Settings whose Admin API calls reach an in-process fake shop (through `responses`); yields its state."""
    import responses

    from plugin.devtools.fake_shop import FakeShopState, create_fake_shop

    state = FakeShopState(token="shpat_test_token")
    shop_app = create_fake_shop(state).test_client()

    def forward(request):
        answer = shop_app.post(request.path_url, data=request.body, headers={k: v for k, v in request.headers.items()})
        return answer.status_code, dict(answer.headers), answer.get_data()

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.POST, "https://fake-shop.test/admin/api/2025-10/graphql.json", callback=forward)
        yield dataclasses.replace(settings, shopify_api_base_url="https://fake-shop.test"), state
