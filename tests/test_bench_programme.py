"""The end-to-end benchmark's realistic programme: seeded through the services, every rule fires on its orders."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bench import programme
from bench.common import order_payload
from plugin import platforms
from plugin.db import transaction
from plugin.models import Order, OutboxEvent, Posting
from plugin.services import accrual, event_endpoints, products, shops
from tests.conftest import SHOP

RECEIVER = "http://127.0.0.1:9/loyalty-events"


def _pay(database_url: str, n: int, customer_id: int, paid_at: datetime) -> None:
    """Delivery n of the bench, paid by `customer_id`, applied as the inbox applies an orders/paid."""
    payload = order_payload(order_id=9_000_000 + n, customer_id=customer_id, product_ids=programme.line_products(n))
    event = platforms.get("shopify").parse_event("orders/paid", payload, paid_at)
    with transaction(database_url) as session:
        accrual.apply(session, shops.get(session, SHOP), event)


def test_line_products_give_both_multiplied_types_alone_together_and_neither():
    pairs = {programme.line_products(n) for n in range(9)}
    types = [{programme.PRODUCTS[p] for p in pair} for pair in pairs]
    assert len(pairs) == 9
    assert {"Shoes"} in types and {"Outerwear"} in types and {"Shoes", "Outerwear"} in types
    assert {"Accessories"} in types  # an order no multiplier matches


def test_the_seeded_programme_fires_every_rule_on_the_bench_orders(settings, shop):
    now = datetime.now(UTC)
    secret = programme.seed(settings.database_url, SHOP, RECEIVER, settings.encryption_keys, now)
    for n in range(8):  # 8 orders of 388.00: Silver, then Gold, a threshold and two punches
        _pay(settings.database_url, n, 5001, now)
    with transaction(settings.database_url) as session:
        lots = session.scalars(select(Order.lot).where(Order.shop_id == shop)).all()
        fired = Counter(c["rule_id"] for lot in lots for c in lot["contributions"])
        sources = Counter(session.scalars(select(Posting.source_type).where(Posting.shop_id == shop)))
        events = Counter(session.scalars(select(OutboxEvent.event_type).where(OutboxEvent.shop_id == shop)))
        waiting = products.waiting_count(session, shop)
        endpoints = [e.url for e in event_endpoints.endpoints(session, shop)]
    assert secret.startswith("whsec_") and endpoints == [RECEIVER]
    assert waiting == 0 and len(lots) == 8  # every product was known: no order waited for a look-up
    assert fired["base"] == 8 and fired["winter"] == 8
    assert fired["shoes"] > 0 and fired["outerwear"] > 0
    assert fired["tier:silver"] > 0 and fired["tier:gold"] > 0
    assert sources["order"] == 8 and sources["threshold"] == 1 and sources["punch_card"] == 2
    assert sources["tier"] == 1  # Gold's entry reward
    assert events["points.earned"] >= 8 and events["tier.changed"] == 2


def test_the_campaign_runs_a_day_either_side_of_the_seeding_only(settings, shop):
    now = datetime.now(UTC)
    programme.seed(settings.database_url, SHOP, RECEIVER, settings.encryption_keys, now)
    _pay(settings.database_url, 0, 5001, now + timedelta(hours=23))
    _pay(settings.database_url, 1, 5002, now + timedelta(hours=25))
    with transaction(settings.database_url) as session:
        lots = dict(session.execute(select(Order.order_id, Order.lot).where(Order.shop_id == shop)).all())
    assert "winter" in {c["rule_id"] for c in lots[9_000_000]["contributions"]}
    assert "winter" not in {c["rule_id"] for c in lots[9_000_001]["contributions"]}


def _results(e2e: dict) -> dict:
    machine = dict.fromkeys(("cpu", "memory", "os", "python", "postgresql", "redis", "wrk"), "x")
    return {"machine": machine, "command": "make bench", "e2e": {"measured_at": "now", **e2e}}


E2E = {
    "orders": 2000, "workers": 3, "seconds": 20.0, "orders_per_second": 100, "pg_commits_per_second_1_client": 900,
    "pg_commits_per_second_4_clients": 1900, "peak_web_mib": 80.0, "peak_worker_mib": 90.0,
}  # fmt: skip
PROGRAMME = {
    "orders": 2000, "orders_per_second": 85, "seconds": 23.5, "events_delivered": 3000, "events_recorded": 3000,
    "events_pending": 0, "events_seconds": 40.2, "peak_web_mib": 81.0, "peak_worker_mib": 130.0,
}  # fmt: skip


def test_the_results_table_judges_the_programme_ratio_against_its_goal(tmp_path, monkeypatch):
    from bench import run

    monkeypatch.setattr(run, "DOC", tmp_path / "benchmarks.md")
    run.write_doc(_results({**E2E, "programme": PROGRAMME, "programme_ratio": 0.85}))
    met = next(ln for ln in run.DOC.read_text().splitlines() if "realistic programme" in ln)
    cut_short = {**PROGRAMME, "events_pending": 7, "events_delivered": 2993}
    run.write_doc(_results({**E2E, "programme": cut_short, "programme_ratio": 0.79}))
    text = run.DOC.read_text()
    missed = next(ln for ln in text.splitlines() if "realistic programme" in ln)
    assert "85 orders/s" in met and "base rule alone: 100 orders/s | 0.85 | ≥ 0.8 | met |" in met
    assert "all 3,000 events delivered, the last 40.2 s after the first request" in met
    assert "| 0.79 | ≥ 0.8 | **missed** |" in missed and "2,993 of 3,000 events delivered when the wait" in missed
    assert "| Peak RSS, worker (rq worker or its work horse) | 130.0 MiB |" in text  # the larger of the two runs


def test_an_e2e_result_from_before_the_programme_renders_without_its_row(tmp_path, monkeypatch):
    from bench import run

    monkeypatch.setattr(run, "DOC", tmp_path / "benchmarks.md")
    run.write_doc(_results(E2E))
    text = run.DOC.read_text()
    assert "End to end, 2,000 orders/paid" in text and "realistic programme" not in text
