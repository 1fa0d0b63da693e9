"""Pending import rows matched through the shop's Admin API: batched, paced, throttling honoured, shop-scoped."""

from __future__ import annotations

import dataclasses
import io
import json
import re

import pytest
import responses

from plugin.config import DEFAULT_API_VERSION
from plugin.platforms import admin_client
from plugin.services.imports import batches, matching
from tests.test_import import balances, report

ENDPOINT = f"https://fake-shop.test/admin/api/{DEFAULT_API_VERSION}/graphql.json"
# The shop's customers as its Admin API knows them: 9001 by id, 9002 found by email.
CUSTOMERS = {
    9001: {"id": "gid://shopify/Customer/9001", "email": "ann@example.com", "firstName": "Ann", "lastName": "A"},
    9002: {"id": "gid://shopify/Customer/9002", "email": "Ben@Example.com", "firstName": "Ben", "lastName": "B"},
}
THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {
        "cost": {
            "requestedQueryCost": 10,
            "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 0, "restoreRate": 50.0},
        }
    },
}


class FakeCustomersAPI:
    def __init__(self, throttle_first: int = 1):
        self.throttle_left = throttle_first
        self.asked: list[dict] = []

    def __call__(self, request):
        body = json.loads(request.body)
        if self.throttle_left:
            self.throttle_left -= 1
            return 200, {}, json.dumps(THROTTLED)
        self.asked.append(body)
        if "LoyaltyImportCustomersById" in body["query"]:
            ids = [int(gid.rsplit("/", 1)[-1]) for gid in body["variables"]["ids"]]
            return 200, {}, json.dumps({"data": {"nodes": [CUSTOMERS.get(i) for i in ids]}})
        wanted = {e.lower() for e in re.findall(r'email:"([^"]+)"', body["variables"]["query"])}
        # Shopify's search is fuzzy: it also returns a near miss, which must not be taken for a match.
        nodes = [c for c in CUSTOMERS.values() if c["email"].lower() in wanted]
        nodes.append(
            {"id": "gid://shopify/Customer/9999", "email": "ben@example.co", "firstName": None, "lastName": None}
        )
        return 200, {}, json.dumps({"data": {"customers": {"nodes": nodes}}})


@pytest.fixture
def shop_api(settings, shop_with_token):
    fake = FakeCustomersAPI()
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, ENDPOINT, callback=fake)
        yield dataclasses.replace(settings, shopify_api_base_url="https://fake-shop.test"), shop_with_token, fake


def test_pending_rows_are_matched_by_id_and_email_through_the_admin_api_in_paced_batches(shop_api):
    settings, shop_id, fake = shop_api
    text = (
        "customer_id,email,points\n"
        "9001,,100\n"  # known to the shop by id
        ",ben@example.com,200\n"  # known to the shop by email
        "5555,,300\n"  # another shop's customer: the shop answers null
        ",nobody@example.com,400\n"  # no such customer
    )
    outcome = batches.run(
        settings.database_url,
        shop_id,
        io.BytesIO(text.encode()),
        source="ours",
        filename="x.csv",
        dry_run=False,
        actor="test",
    )
    pauses: list[float] = []

    def quiet_client(settings_, shop):
        client = admin_client(settings_, shop)
        client.sleep = pauses.append  # the client's own waits on THROTTLED, recorded instead of slept
        return client

    result = matching.match(
        settings, shop_id, outcome.batch_id, client_factory=quiet_client, per_call=2, sleep=pauses.append
    )

    assert result.to_json() == {"asked": 4, "matched": 2, "points": 300, "calls": 4}
    assert balances(settings) == {9001: 100, 9002: 200}
    done = report(settings, shop_id, outcome.batch_id)
    assert (done["matched"], done["pending"], done["points_pending"]) == (2, 2, 700)
    assert pauses[0] == pytest.approx(0.2)  # the throttled first call waited what throttleStatus asked
    assert pauses.count(matching.PAUSE_SECONDS) >= 2  # and every batch leaves the bucket time to refill
    assert [len(b["variables"].get("ids", [])) for b in fake.asked if "ids" in b["variables"]] == [1, 1]

    again = matching.match(settings, shop_id, outcome.batch_id, client_factory=quiet_client, sleep=pauses.append)
    assert again.points == 0 and balances(settings) == {9001: 100, 9002: 200}  # asked again: nothing doubles
