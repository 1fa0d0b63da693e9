"""Shared fixtures: a migrated database per test (PostgreSQL or SQLite), the app, signed deliveries, and tiers."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import create_engine, text

from plugin import create_app, generations
from plugin.config import DEFAULT_API_VERSION, Settings, normalise_database_url
from plugin.db import engine_for, transaction
from plugin.platforms.shopify.adapter import webhook_signature
from plugin.services import shops
from storefront_widget import widget_sql

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
# This run's mark on every Redis key, queue and worker name it makes, so two runs sharing a Redis never meet.
RUN_ID = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"


def alembic_config(url: str):
    """Alembic's configuration for the repository's migrations, pointed at `url`."""
    from alembic.config import Config

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    return config


def migrate(url: str) -> None:
    """Bring the database at `url` to the migrations' head."""
    from alembic import command

    command.upgrade(alembic_config(url), "head")


@contextmanager
def own_database(server_url: str, name: str) -> Iterator[str]:
    """An empty PostgreSQL database `name` on `server_url`'s server, dropped afterwards (with its engines)."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"CREATE DATABASE {name}"))
    url = server_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        for engine in list(_engines_for(url)):
            engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database: a SQLite template file, or a fresh PostgreSQL database for this run."""
    url = normalise_database_url(os.environ.get("TEST_DATABASE_URL", ""))
    if not url or url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("db") / "template.db"
        migrate(f"sqlite:///{path}")
        engine_for(f"sqlite:///{path}").dispose()
        yield f"sqlite:///{path}"
        return
    # A database of this run's own, so two test runs against one server never collide.
    with own_database(url, f"loyalty_test_{os.getpid()}") as test_url:
        migrate(test_url)
        yield test_url


@pytest.fixture
def scratch_url(database_template, tmp_path):
    """An empty database of this test's own, to migrate up and down (the run's database stays at head)."""
    if database_template.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'migrated.db'}"
        return
    with own_database(database_template, f"loyalty_test_{os.getpid()}_scratch") as url:
        yield url


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


@pytest.fixture(autouse=True)
def _no_generations_left_over() -> Iterator[None]:
    """Each test starts as a fresh process: no commits bump a Redis until create_app or a LoyaltyWorker starts."""
    yield
    generations.forget()


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
def pg_engine(settings: Settings):
    """The test database's engine, for the tests of PostgreSQL's plans and locks: skipped on SQLite."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("the plans are PostgreSQL's")
    return engine_for(settings.database_url)


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
        "X-Shopify-API-Version": DEFAULT_API_VERSION,
    }


def deliver(client: FlaskClient, topic: str, payload: Any, *, shop: str = SHOP, webhook_id: str | None = None):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/webhooks/shopify", data=body, headers=signed_headers(body, topic, shop, webhook_id))


def fixture(name: str) -> dict[str, Any]:
    """A captured delivery from shared/fixtures/shopify/webhooks-2024-10 ({headers, body, topic})."""
    return json.loads((FIXTURES / "webhooks-2024-10" / name).read_text())


@pytest.fixture
def queued(settings):
    """Settings with Redis on, and a queue of this test's own (named after the run, so runs never share one)."""
    redis = Redis.from_url(TEST_REDIS_URL)
    redis.ping()  # the suite needs a real Redis: fail loudly rather than skip
    name = f"loyalty-test-{RUN_ID}-{uuid.uuid4().hex[:8]}"
    yield dataclasses.replace(settings, redis_url=TEST_REDIS_URL, queue_name=name, inbox_batch_size=25)
    forget_redis_keys(redis, name)


@pytest.fixture
def cached(queued, shop):
    """A test client whose widget reads go through the cache (PostgreSQL and a real Redis), and its settings."""
    if engine_for(queued.database_url).dialect.name != "postgresql":
        pytest.skip("the widget cache needs PostgreSQL's triggers to find its writers; SQLite computes every read")
    widget_sql.shop_ids.clear()  # every test database numbers its shops from 1
    return create_app(queued, TESTING=True).test_client(), queued


@pytest.fixture
def worker_environment(queued, monkeypatch):
    """`queued`, also as the environment an in-process LoyaltyWorker reads (its sweeper's settings, its queue)."""
    monkeypatch.setenv("DATABASE_URL", queued.database_url)
    monkeypatch.setenv("REDIS_URL", queued.redis_url)
    monkeypatch.setenv("LOYALTY_QUEUE", queued.queue_name)
    return queued


# RQ's lists and sorted sets of job ids, one of each per queue (rq:queue:<name>, rq:finished:<name>, ...).
_JOB_ID_KEYS = ("queue", "finished", "failed", "wip", "deferred", "scheduled", "canceled")


def forget_redis_keys(redis: Redis, mark: str) -> None:
    """Delete the Redis keys whose name holds `mark`, with their RQ jobs and set entries; nobody else's keys."""
    keys = list(redis.scan_iter(match=f"*{mark}*", count=1000))
    job_ids: set[bytes] = set()
    for key in keys:
        parts = key.decode().split(":")
        if len(parts) > 2 and parts[0] == "rq" and parts[1] in _JOB_ID_KEYS:
            kind = redis.type(key)  # RQ keeps side keys under these prefixes too: read only lists and sorted sets
            if kind == b"list":
                job_ids.update(redis.lrange(key, 0, -1))
            elif kind == b"zset":
                job_ids.update(redis.zrange(key, 0, -1))
    doomed = keys + [f"rq:{what}:{job.decode()}" for job in job_ids for what in ("job", "results", "executions")]
    if doomed:
        redis.delete(*doomed)
    for shared_set in ("rq:queues", "rq:workers"):  # RQ's global registries: take out only our own members
        ours = [member for member in redis.smembers(shared_set) if mark.encode() in member]
        if ours:
            redis.srem(shared_set, *ours)


@pytest.fixture(scope="session", autouse=True)
def leave_nothing_behind() -> Iterator[None]:
    """At the end of the run, however it ends: no process of ours alive, no Redis key of ours left."""
    yield
    from tests.processes import reap_all

    reap_all()
    try:
        forget_redis_keys(Redis.from_url(TEST_REDIS_URL, socket_timeout=5), RUN_ID)
    except Exception as error:  # Redis gone: the keys are this run's alone and harm no other run
        print(f"warning: could not delete this run's Redis keys ({error})")


@pytest.fixture(autouse=True)
def no_process_outlives_its_test() -> Iterator[None]:
    """A test that fails half-way leaves no worker or server running into the next tests (their sweepers would
    drain the next test's inbox). Processes meant to serve several tests must be started by a wider fixture
    before any test runs, or they would be reaped with the first test."""
    from tests.processes import reap_since, spawned_so_far

    mark = spawned_so_far()
    yield
    reap_since(mark)


def _terminated(signum, frame):
    # SIGTERM (CI's timeout, `kill`, make's trap) ends pytest like Ctrl-C, so the session teardown and atexit run.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    signal.signal(signal.SIGTERM, _terminated)


# Test tiers, from the fixtures and helpers a test uses; an explicit marker on the test or its module wins.
TIERS = ("unit", "db", "http", "e2e", "browser")
DATABASE_FIXTURES = {"database_template", "database_url", "settings"}
HTTP_FIXTURES = {"app", "client"}
HTTP_NAMES = {"create_app", "test_client"}
PROCESS_NAMES = {"run_worker", "start_fake_shop", "start_app", "subprocess", "spawn"}
BROWSER_NAMES = {"chromium_page", "sync_playwright"}


def _names_used(function, module_globals: dict, seen: set) -> set[str]:
    """Global names a function reads, following helper functions of the same module and nested code."""
    names: set[str] = set()
    codes = [getattr(function, "__code__", None)]
    while codes:
        code = codes.pop()
        if code is None or code in seen:
            continue
        seen.add(code)
        names.update(code.co_names)
        codes.extend(const for const in code.co_consts if hasattr(const, "co_names"))
        for name in code.co_names:
            helper = module_globals.get(name)
            if getattr(helper, "__module__", None) == module_globals.get("__name__"):
                codes.append(getattr(helper, "__code__", None))
    return names


def tier_of(item: pytest.Item) -> str:
    explicit = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
    if explicit:
        return explicit[0]  # the closest marker: a test's own overrides its module's
    fixtures = set(getattr(item, "fixturenames", ()))
    names: set[str] = set()
    seen: set = set()
    functions = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for definitions in info.name2fixturedefs.values() if info else ():
        functions.extend(definition.func for definition in definitions)
    for function in functions:
        module = sys.modules.get(getattr(function, "__module__", "") or "")
        if module is not None and module.__name__.startswith("tests"):  # pytest's own fixtures start nothing
            names |= _names_used(function, vars(module), seen)
    if names & BROWSER_NAMES:
        return "browser"
    if names & PROCESS_NAMES:
        return "e2e"
    if fixtures & HTTP_FIXTURES or (fixtures & DATABASE_FIXTURES and names & HTTP_NAMES):
        return "http"
    if fixtures & DATABASE_FIXTURES:
        return "db"
    return "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))


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
        url = f"https://fake-shop.test/admin/api/{DEFAULT_API_VERSION}/graphql.json"
        mock.add_callback(responses.POST, url, callback=forward)
        yield dataclasses.replace(settings, shopify_api_base_url="https://fake-shop.test"), state


def flask_calls_behind(layer: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reach Flask's own wsgi_app behind a WSGI layer answering before Flask."""
    calls: list[str] = []
    flask_wsgi_app = layer.wsgi_app

    def counted(environ, start_response):
        calls.append(environ["PATH_INFO"])
        return flask_wsgi_app(environ, start_response)

    monkeypatch.setattr(layer, "wsgi_app", counted)
    return calls
