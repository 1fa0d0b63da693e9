"""The outbox: an event is recorded with its cause's transaction, once per cause, and only of a known type."""

from __future__ import annotations

import pytest

from plugin.db import transaction
from plugin.services import outbox


def test_an_event_is_recorded_once_per_cause(settings, shop):
    with transaction(settings.database_url) as session:
        first = outbox.record(
            session, shop, "points.earned", dedupe_key="points.earned:posting:1", member_id=5, data={"points": 10}
        )
        again = outbox.record(
            session, shop, "points.earned", dedupe_key="points.earned:posting:1", member_id=5, data={"points": 99}
        )
    with transaction(settings.database_url) as session:
        events = outbox.recorded(session, shop)
        assert (first, again) == (True, False)
        assert [(e.event_type, e.member_id, e.payload) for e in events] == [("points.earned", 5, {"points": 10})]
        assert len(events[0].event_id) == 36


def test_an_event_rolled_back_with_its_cause_is_not_recorded(settings, shop):
    with pytest.raises(RuntimeError), transaction(settings.database_url) as session:
        outbox.record(session, shop, "tier.changed", dedupe_key="tier:1", data={})
        raise RuntimeError("the cause failed")
    with transaction(settings.database_url) as session:
        assert outbox.recorded(session, shop) == []


def test_an_unknown_event_type_is_a_programming_error(settings, shop):
    with pytest.raises(outbox.UnknownEventType), transaction(settings.database_url) as session:
        outbox.record(session, shop, "points.teleported", dedupe_key="x", data={})
