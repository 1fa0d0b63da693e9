"""The job registry and dispatcher: names RQ can import, old names still running, queued only after the commit."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import responses
from rq import SimpleWorker
from rq.utils import import_attribute
from sqlalchemy import create_engine, func, select

from plugin import direct_redis, inbox, jobs, ledger
from plugin.db import engine_for, transaction
from plugin.jobs import dispatch, tasks
from plugin.models import Delivery, Redemption, Shop
from plugin.programme.events import Customer
from plugin.services import shops
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SHOP, deliver
from tests.test_install import GRANT, TOKEN_URL, callback, start_install
from tests.test_storefront_proxy import post, signed

JOBS_PACKAGE = Path(__file__).resolve().parent.parent / "plugin" / "jobs"
NAMES_BEFORE_THE_MOVE = ("drain_inbox", "issue_code", "push_balances", "check_webhooks", "reconcile_shop")


def test_every_job_is_queued_under_an_importable_path_derived_from_its_function():
    assert set(NAMES_BEFORE_THE_MOVE) <= {job.entry.__name__ for job in jobs.JOBS.values()}  # and newer jobs
    for name, job in jobs.JOBS.items():
        assert name == job.name == f"plugin.jobs.tasks.{job.entry.__name__}"
        assert import_attribute(name) is job.entry


@pytest.mark.parametrize("function", NAMES_BEFORE_THE_MOVE)
def test_a_job_name_from_before_the_move_into_packages_still_resolves(function):
    assert import_attribute(f"plugin.jobs.{function}") is import_attribute(f"plugin.jobs.tasks.{function}")


def test_the_dispatcher_and_the_registry_import_no_job_module():
    for module in ("dispatch.py", "registry.py"):
        tree = ast.parse((JOBS_PACKAGE / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not {name for name in imported if name and name.startswith("plugin.jobs.tasks")}, module
        assert "plugin.jobs" not in imported, module


def test_a_drain_queued_under_its_old_name_is_run_by_a_current_worker(queued, shop, monkeypatch):
    body = json.dumps(builders.order(1, 7001, [builders.line(10, "30.00")])).encode()
    incoming = inbox.IncomingDelivery(SHOP, "orders/paid", "old-deploy-1", body)
    inbox.store(engine_for(queued.database_url), incoming)
    for name, value in {
        "DATABASE_URL": queued.database_url,
        "REDIS_URL": queued.redis_url,
        "LOYALTY_QUEUE": queued.queue_name,
    }.items():
        monkeypatch.setenv(name, value)
    queue = dispatch.queue_for(queued)
    job = queue.enqueue("plugin.jobs.drain_inbox")  # as an older deploy left it in Redis

    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    assert job.get_status(refresh=True) == "finished", job.latest_result()
    assert job.return_value() == {"processed": 1}
    with transaction(queued.database_url) as session:
        assert session.scalar(select(Delivery.status)) == inbox.PROCESSED


@pytest.fixture
def committed_at_queue_time(monkeypatch, settings):
    """Record, each time a job is queued, what another connection can already see of the database."""
    seen: list[tuple[str, dict[str, int]]] = []
    observer = create_engine(settings.database_url)  # no BEGIN IMMEDIATE: a plain reader next to the writer

    def count(model, *where) -> int:
        with observer.connect() as connection:
            return connection.execute(select(func.count()).select_from(model).where(*where)).scalar_one()

    def spy(_settings, job, *args, **_claim):
        seen.append(
            (
                job.entry.__name__,
                {
                    "deliveries": count(Delivery),
                    "redemptions": count(Redemption),
                    "shops_with_token": count(Shop, Shop.access_token.is_not(None)),
                },
            )
        )
        return dispatch.QUEUED

    monkeypatch.setattr(tasks, "dispatch", spy)
    yield seen
    observer.dispose()


def give(settings, customer_id: int, points: int) -> None:
    with transaction(settings.database_url) as session:
        shop = shops.get(session, SHOP)
        member_id = enrol(session, shop.id, Customer(customer_id))
        ledger.post(session, shop.id, ledger.Entry(member_id, "bonus", points, "support", "s", "seed", "m"))


def test_a_webhook_signals_the_inbox_only_once_its_delivery_is_stored(client, shop, committed_at_queue_time):
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "30.00")]))
    assert committed_at_queue_time == [("drain_inbox", {"deliveries": 1, "redemptions": 0, "shops_with_token": 0})]


def test_a_proxy_redemption_is_queued_only_once_it_has_committed(client, settings, shop, committed_at_queue_time):
    give(settings, 7001, 1000)
    response = post(client, "redeem", signed(7001), {"reward_id": "5-off", "idempotency_key": "click-0001"})
    assert response.status_code == 201, response.get_json()
    assert [(job, seen["redemptions"]) for job, seen in committed_at_queue_time] == [
        ("issue_code", 1),
        ("push_balances", 1),
    ]


def test_a_cli_redemption_is_queued_only_once_it_has_committed(app, settings, shop, committed_at_queue_time):
    give(settings, 7001, 1000)
    result = app.test_cli_runner().invoke(args=["loyalty", "redeem", SHOP, "7001", "5-off"])
    assert result.exit_code == 0, result.output
    assert [(job, seen["redemptions"]) for job, seen in committed_at_queue_time] == [
        ("issue_code", 1),
        ("push_balances", 1),
    ]


@responses.activate
def test_an_install_queues_its_webhook_check_only_once_the_token_is_stored(app, committed_at_queue_time):
    responses.post(TOKEN_URL, json=GRANT)
    browser = app.test_client()
    assert callback(browser, start_install(browser)).status_code == 302
    assert [(job, seen["shops_with_token"]) for job, seen in committed_at_queue_time] == [
        ("check_webhooks", 1),
        ("read_shop_locale", 1),  # the shop's language, for explanations
    ]


def test_inline_without_redis_a_failing_job_is_logged_and_left_for_the_sweeper(settings, monkeypatch, caplog):
    def broken(_settings):
        raise RuntimeError("the shop is down")

    failing = jobs.Job(entry=tasks.push_balances, inline=broken, timeout=1, result_ttl=1)
    assert dispatch.dispatch(settings, failing) == dispatch.FAILED
    assert "inline job plugin.jobs.tasks.push_balances() failed" in caplog.text


def test_with_redis_a_claimed_job_is_queued_once_until_it_starts(queued):
    assert dispatch.dispatch(queued, tasks.PUSH_BALANCES, claim="balances", claim_seconds=60) == dispatch.QUEUED
    assert dispatch.dispatch(queued, tasks.PUSH_BALANCES, claim="balances", claim_seconds=60) == dispatch.WAITING
    [job] = dispatch.queue_for(queued).get_jobs()
    assert (job.func_name, job.timeout) == (tasks.PUSH_BALANCES.name, tasks.PUSH_BALANCES.timeout)

    dispatch.clear_claim(queued, "balances")  # what the job does when it starts
    assert dispatch.dispatch(queued, tasks.PUSH_BALANCES, claim="balances", claim_seconds=60) == dispatch.QUEUED


def test_the_inbox_signal_packs_its_claim_once_per_process_and_sends_one_command(queued, monkeypatch):
    """The ack path's signal: one Redis command per delivery, its bytes packed once, not per delivery."""
    dispatch._claim_command.cache_clear()
    packed, sent = [], []
    pack, execute_packed = direct_redis.pack, direct_redis.execute_packed
    monkeypatch.setattr(direct_redis, "pack", lambda args: packed.append(args) or pack(args))
    monkeypatch.setattr(direct_redis, "execute_packed", lambda c, p: sent.append(p) or execute_packed(c, p))
    outcomes = [dispatch.dispatch(queued, tasks.DRAIN_INBOX, claim="inbox", claim_seconds=10) for _ in range(5)]
    assert outcomes == [dispatch.QUEUED] + [dispatch.WAITING] * 4
    assert len(packed) == 1
    key = dispatch.claim_key(queued, "inbox").encode()
    command = b"*6\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\n1\r\n$2\r\nNX\r\n$2\r\nEX\r\n$2\r\n10\r\n" % (len(key), key)
    assert sent == [command] * 5
