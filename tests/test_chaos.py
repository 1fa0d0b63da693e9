"""The chaos replay (bench/chaos.py): its oracle and checks on their own, and a small run against the real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, make_url, text

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import chaos
import chaos_oracle
import chaos_plan
from chaos_plan import Send


def paid(order_id: int, customer: int, *lines: tuple[int, str, int, str]) -> Send:
    """orders/paid with (line id, unit price, quantity, line discount) lines, shipping and tax that do not earn."""
    items = [
        {
            "id": line_id,
            "quantity": quantity,
            "price_set": chaos_plan.money(Decimal(price)),
            "discount_allocations": [{"amount_set": chaos_plan.money(Decimal(discount))}] if discount != "0" else [],
            "tax_lines": [{"price_set": chaos_plan.money(Decimal("3.00"))}],
        }
        for line_id, price, quantity, discount in lines
    ]
    body = {"id": order_id, "customer": {"id": customer}, "test": False, "line_items": items, "refunds": []}
    body["shipping_lines"] = [{"price_set": chaos_plan.money(Decimal("9.99"))}]
    return Send("webhook", "orders/paid", json.dumps(body).encode(), f"paid-{order_id}")


def refund(refund_id: int, order_id: int, quantities: dict[int, int]) -> Send:
    items = [{"line_item_id": line, "quantity": qty} for line, qty in quantities.items()]
    body = {"id": refund_id, "order_id": order_id, "refund_line_items": items}
    return Send("webhook", "refunds/create", json.dumps(body).encode(), f"refund-{refund_id}")


def expected(*sends: Send, grants: dict[int, int] | None = None) -> dict[int, int]:
    found = chaos_oracle.expected_balances(sends, grants or {}, chaos_plan.REWARD_COST)
    return {customer: e.balance for customer, e in found.items()}


def test_oracle_earns_on_lines_after_discounts_and_rounds_down_once_per_order():
    # (3 x 10.00 - 2.50) + 0.60 + 0.60 = 28.70: shipping 9.99 and the taxes earn nothing.
    order = paid(1, 7, (11, "10.00", 3, "2.50"), (12, "0.60", 1, "0"), (13, "0.60", 1, "0"))
    assert expected(order) == {7: 28}


def test_oracle_takes_back_refunded_units_proportionally_across_several_refunds():
    order = paid(1, 7, (11, "10.00", 3, "1.00"), (12, "5.00", 2, "0"))  # 29.00 + 10.00
    # 1 of 3 units of line 11 takes back 29/3, 1 of 2 of line 12 takes back 5.00: 39 - 9.67 - 5 = 24.33.
    # The refund delivered twice (same refund id) counts once: counted twice it would leave 14.
    assert expected(order, refund(91, 1, {11: 1}), refund(91, 1, {11: 1}), refund(92, 1, {12: 1})) == {7: 24}
    # Refunds of every unit leave nothing, never less.
    assert expected(order, refund(91, 1, {11: 1}), refund(93, 1, {11: 2, 12: 2})) == {7: 0}


def test_oracle_gives_a_cancelled_order_nothing_and_charges_each_redemption_key_once():
    order = paid(1, 7, (11, "100.00", 1, "0"))
    cancelled = Send("webhook", "orders/cancelled", json.dumps({"id": 1, "refunds": []}).encode(), "c-1")
    redeem = Send("redeem", customer_id=7, reward_id="5-off", idempotency_key="k1")
    assert expected(order, grants={7: 1000}) == {7: 1100}
    assert expected(order, cancelled, redeem, redeem, grants={7: 1000}) == {7: 500}


def test_the_plan_is_seeded_and_repeats_the_share_it_is_asked_for():
    first, again = chaos_plan.build(5, 400, 20), chaos_plan.build(5, 400, 20)
    assert [s.webhook_id or s.idempotency_key for s in first.stream] == [
        s.webhook_id or s.idempotency_key for s in again.stream
    ]
    assert len(first.stream) == 400
    assert first.counts["duplicates"] == 400 - first.counts["distinct"]
    assert 0.25 < first.counts["duplicates"] / 400 < 0.35


def test_the_checks_fail_on_a_wrong_balance_a_second_code_a_lost_row_and_a_dirty_ledger():
    want = {7: chaos_oracle.Expected(grant=100, orders=20, redeemed=0)}
    assert chaos.check_balances(want, {7: 120}).passed
    wrong = chaos.check_balances(want, {7: 119})
    assert not wrong.passed and "expected 120 = grant 100 + orders 20" in wrong.details[0]
    assert not chaos.check_balances(want, {7: 120, 8: 0}).passed  # a member the events never made

    redemption = {"id": 1, "status": "issued", "code": "PTS-1", "discount_id": "gid://1", "reason": None}
    redemption["idempotency_key"] = "proxy:7:k"
    shop = {"codes": [{"code": "PTS-1", "id": "gid://1", "deleted": False}], "creates": {"PTS-1": 1}}
    assert chaos.check_codes([redemption], shop, {"proxy:7:k"}, []).passed
    assert not chaos.check_codes([redemption], {**shop, "creates": {"PTS-1": 2}}, {"proxy:7:k"}, []).passed
    assert not chaos.check_codes([{**redemption, "status": "failed"}], shop, {"proxy:7:k"}, []).passed
    assert not chaos.check_codes([redemption], shop, {"proxy:7:k", "proxy:7:other"}, []).passed

    rows = [{"id": 1, "webhook_id": "a", "topic": "orders/paid", "status": "processed", "reason": None}]
    assert chaos.check_inbox(rows, {"a"}).passed
    assert not chaos.check_inbox(rows, {"a", "b"}).passed
    assert not chaos.check_inbox([{**rows[0], "status": "parked", "reason": "schema error"}], {"a"}).passed

    assert chaos.check_ledger((0, "ledger OK")).passed
    assert not chaos.check_ledger((1, "MISMATCH member shop=1 id=2: cached 5 != postings 4")).passed


def _postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql")):
        pytest.skip("the chaos replay runs on PostgreSQL only (SKIP LOCKED claims, real row locks)")
    return url


@pytest.mark.integration
def test_a_small_chaos_replay_with_kills_ends_exact(tmp_path):
    database = make_url(_postgres_url().replace("postgres://", "postgresql://", 1)).set(
        database=f"loyalty_chaos_test_{os.getpid()}"
    )
    out = tmp_path / "reliability.md"
    command = [sys.executable, str(ROOT / "bench" / "chaos.py"), "--events", "600", "--seed", "11"]
    # The deadline covers the stream, an expiry run killed three times, and delivering every outgoing event: a
    # member's events go one after another to the receiver that refuses a share (decision 0028), about 2 minutes of
    # the 3 this run took on a quiet machine; the rest is slack for a loaded CI machine.
    command += ["--kill-after", "3", "--deadline", "480", "--out", str(out), "--logs", str(tmp_path / "logs")]
    command += ["--database-url", database.render_as_string(hide_password=False)]
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=540)
    finally:
        admin = create_engine(
            database.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {database.database} WITH (FORCE)"))
        admin.dispose()
    report = out.read_text()
    assert done.returncode == 0, report + done.stderr[-3000:]
    assert "**Verdict: PASS**" in report
    assert report.count("| pass |") == 6  # balances, codes, inbox, ledger, outgoing events, expiry
    assert "worker kills (SIGKILL) | 0:" not in report  # the workers really were killed
