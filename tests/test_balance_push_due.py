"""The members due a balance push are listed in balance_push_due, so a balance change is a HOT update of members.

No index of members may name `balance` (decision 0062): a column in an index's key or predicate makes every update
that changes it write a new entry into each of the table's indexes.
"""

from __future__ import annotations

import json

import pytest
from alembic import command
from sqlalchemy import select, text

from plugin import inbox, ledger, platforms
from plugin.db import engine_for, transaction
from plugin.models import BalancePushDue
from plugin.platforms.shopify import metafields
from plugin.programme.events import Customer
from plugin.services import balance_push, batch_accrual, shops
from plugin.services.accrual import enrol
from tests import builders
from tests.conftest import SHOP, alembic_config
from tests.test_balance_push import grant


def _due(settings) -> set[int]:
    with transaction(settings.database_url) as session:
        return set(session.scalars(select(BalancePushDue.member_id)))


def _member(settings, customer_id: int) -> int:
    with transaction(settings.database_url) as session:
        return shops.member(session, shops.get(session, SHOP), customer_id).id


def test_a_member_whose_balance_moved_is_due_until_pushed(fake_shop_api, shop_with_token):
    settings, state = fake_shop_api
    with transaction(settings.database_url) as session:
        enrol(session, shop_with_token, Customer(7000))  # enrolled, no posting: nothing to send
    grant(settings, 7001, 40, "a")
    assert _due(settings) == {_member(settings, 7001)}
    grant(settings, 7001, 2, "b")  # already due: still one row
    assert _due(settings) == {_member(settings, 7001)}
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields == {"gid://shopify/Customer/7001 loyalty.points": "42"}
    assert _due(settings) == set()
    grant(settings, 7001, -2, "c")
    assert _due(settings) == {_member(settings, 7001)}


def test_a_balance_that_moves_after_the_push_read_it_stays_due_and_goes_next_run(
    fake_shop_api, shop_with_token, monkeypatch
):
    settings, state = fake_shop_api
    grant(settings, 7001, 40, "a")
    grant(settings, 7002, 15, "b")
    real = metafields.push_balances

    def push_while_an_order_moves_7001(client, balances):
        real(client, balances)
        grant(settings, 7001, 5, "moved-after-the-read")  # the sent 40 is no longer the balance

    monkeypatch.setattr(metafields, "push_balances", push_while_an_order_moves_7001)
    assert balance_push.push_balances(settings, platforms.admin_client) == 2
    assert _due(settings) == {_member(settings, 7001)}  # 7002 settled; 7001 kept
    monkeypatch.setattr(metafields, "push_balances", real)
    assert balance_push.push_balances(settings, platforms.admin_client) == 1
    assert state.metafields["gid://shopify/Customer/7001 loyalty.points"] == "45"
    assert _due(settings) == set()
    with transaction(settings.database_url) as session:
        assert session.execute(text("SELECT count(*) FROM members WHERE balance <> pushed_balance")).scalar() == 0


def test_a_run_that_marks_a_stale_balance_after_a_newer_run_settled_lists_the_member_again(
    fake_shop_api, shop_with_token
):
    # Two overlapping runs: A read 40, B read 45 after an order; B's write reached the shop first and A's last, so
    # the shop shows 40. B marks first (45 is the balance: settled, row deleted), then A marks its stale 40.
    settings, _ = fake_shop_api
    grant(settings, 7001, 40, "a")
    grant(settings, 7001, 5, "b")
    member_id = _member(settings, 7001)
    assert balance_push._mark_pushed(settings, shop_with_token, {member_id: 45}) == []
    assert _due(settings) == set()
    assert balance_push._mark_pushed(settings, shop_with_token, {member_id: 40}) == []
    assert _due(settings) == {member_id}  # the next run sends 45 again


def test_an_orders_posting_moves_the_balance_with_a_hot_update(settings, shop, monkeypatch):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("HOT updates are PostgreSQL's")
    for n in (1, 2):  # the shopper is enrolled by the first order; the second only moves its balance
        body = json.dumps(builders.order(n, 7000, [builders.line(n * 10, "10.00")])).encode()
        inbox.store(engine_for(settings.database_url), inbox.IncomingDelivery(SHOP, "orders/paid", f"w-{n}", body))
        if n == 1:
            assert inbox.drain(settings.database_url) == {"processed": 1}
    counts = text("SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = 'members'")
    seen: dict[str, int] = {}
    real_apply = batch_accrual.apply

    def apply(session, shop_row, items):
        # Inside the drain's transaction: nothing is reported to the view in the middle of a transaction.
        updated, hot = session.execute(counts).one()
        applied = real_apply(session, shop_row, items)
        now_updated, now_hot = session.execute(counts).one()
        seen.update(updated=now_updated - updated, hot=now_hot - hot)
        return applied

    monkeypatch.setattr(batch_accrual, "apply", apply)
    assert inbox.drain(settings.database_url) == {"processed": 1}
    assert seen == {"updated": 1, "hot": 1}  # an index naming balance (or a full page) makes it 1 and 0
    assert _due(settings) == {_member(settings, 7000)}


def test_the_migration_lists_the_members_already_behind_and_downgrades(scratch_url, settings):
    config = alembic_config(scratch_url)
    command.upgrade(config, "0037")
    with transaction(scratch_url) as session:
        shop_id = shops.install(session, SHOP, "shpat_test_token", settings.encryption_keys).id
        ids = {c: enrol(session, shop_id, Customer(c)) for c in (7001, 7002, 7003, 7004)}
        for c, points in ((7001, 40), (7002, 15), (7004, 10)):
            ledger.post(session, shop_id, ledger.Entry(ids[c], "bonus", points, "support", f"k{c}", f"k{c}", "x"))
        session.execute(text("UPDATE members SET pushed_balance = 15 WHERE customer_id = 7002"))  # sent
        session.execute(text("UPDATE members SET pushed_balance = 5 WHERE customer_id = 7004"))  # sent, moved since
    command.upgrade(config, "0038")
    with transaction(scratch_url) as session:
        due = set(session.scalars(select(BalancePushDue.member_id)))
        # 7003: enrolled, never sent (its 0 is not the NULL sent); 7002 is up to date
        assert due == {ids[7001], ids[7003], ids[7004]}
        ledger.post(session, shop_id, ledger.Entry(ids[7002], "bonus", 1, "support", "k", "k", "x"))
        assert ids[7002] in set(session.scalars(select(BalancePushDue.member_id)))
    command.downgrade(config, "0037")
    with transaction(scratch_url) as session:
        # 0037's schema again: the index finds the same members from the columns, and a posting still moves
        ledger.post(session, shop_id, ledger.Entry(ids[7003], "bonus", 3, "support", "k3", "k3", "x"))
        behind = (
            "balance IS DISTINCT FROM pushed_balance"
            if "postgresql" in scratch_url
            else "balance IS NOT pushed_balance"
        )
        assert set(session.scalars(text(f"SELECT id FROM members WHERE {behind}"))) == set(ids.values())
        tables = "SELECT tablename FROM pg_tables" if "postgresql" in scratch_url else "SELECT name FROM sqlite_master"
        assert "balance_push_due" not in set(session.scalars(text(tables)))
        indexes = (
            "SELECT indexname FROM pg_indexes" if "postgresql" in scratch_url
            else "SELECT name FROM sqlite_master WHERE type = 'index'"
        )  # fmt: skip
        assert "ix_members_unpushed" in set(session.scalars(text(indexes)))
    command.upgrade(config, "head")
