"""Fan-out and the claim's lease are set-based: statements per batch of events, not per event (decision 0054)."""

from __future__ import annotations

import responses
from sqlalchemy import func, select

from plugin.db import transaction
from plugin.models import EventDelivery, OutboxEvent
from plugin.services import event_delivery, event_endpoints
from tests.test_event_delivery_batches import URL, Statements, public, record, register


def server_statements(database_url: str, prefix: str = "") -> Statements:
    """Statements the server runs: an executemany counts once per parameter set."""
    return Statements(database_url, prefix, per_parameter_set=True)


def test_fan_out_runs_a_few_statements_whatever_the_number_of_events(settings, shop):
    register(settings, shop)
    with transaction(settings.database_url) as session:
        other = "https://hooks.example.com/other"
        event_endpoints.register(session, shop, other, settings.encryption_keys, resolver=public)
    record(settings, shop, list(range(1, 301)))  # 300 events, one chunk
    url = settings.database_url
    with server_statements(url) as statements, server_statements(url, "update") as updates:
        assert event_delivery.fan_out(settings.database_url) == 300
    assert updates.count == 1  # one UPDATE marks the 300 events
    if settings.database_url.startswith("postgresql"):  # SQLite pages a long multi-row INSERT
        # Choose the events, read the endpoints, one INSERT of the 600 deliveries, the UPDATE.
        assert statements.count <= 4
    with transaction(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(EventDelivery)) == 600
        unfanned = select(func.count()).select_from(OutboxEvent).where(OutboxEvent.fanned_out_at.is_(None))
        assert session.scalar(unfanned) == 0
    assert event_delivery.fan_out(settings.database_url) == 0


@responses.activate
def test_a_claims_lease_is_one_update_not_one_per_delivery(settings, shop):
    register(settings, shop)
    record(settings, shop, list(range(1, 121)))  # 120 members: one batch
    responses.post(URL, status=200)
    with server_statements(settings.database_url, "update event_deliveries") as updates:
        counts = event_delivery.deliver(settings, resolver=public)
    assert counts == {"delivered": 120} and len(responses.calls) == 120
    assert updates.count <= 4  # the lease, then one settle per 50 successes
