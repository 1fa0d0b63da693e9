"""The Shopify Admin GraphQL client (retries, throttling, deadlines) and its discount-code helpers.

Every HTTP call goes to a `responses` mock; an unmocked URL would raise ConnectionError, which the client
retries, so each test registers everything it expects and asserts the number of calls made.
Waits are captured by injecting `sleep=waits.append` instead of sleeping.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from plugin.config import DEFAULT_API_VERSION
from plugin.platforms.shopify import discounts
from plugin.platforms.shopify.admin import AdminAPIError, AdminAPIUnavailable, AdminClient
from plugin.platforms.shopify.discounts import CodeRequest, CodeTaken, ShopCode
from plugin.programme.rewards import Reward

SHOP = "loyal-shop.myshopify.com"
TOKEN = "shpat_test_token"
VERSION = DEFAULT_API_VERSION
DEFAULT_URL = f"https://{SHOP}/admin/api/{VERSION}/graphql.json"
FAKE_SHOP = "http://127.0.0.1:8765"
FAKE_URL = f"{FAKE_SHOP}/admin/api/{VERSION}/graphql.json"

STARTS = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
ENDS = datetime(2026, 12, 20, 10, 0, tzinfo=UTC)
CUSTOMER_ID = 7310419812515
CUSTOMER_GID = f"gid://shopify/Customer/{CUSTOMER_ID}"
DISCOUNT_ID = "gid://shopify/DiscountCodeNode/1057371000"
PING = "query { shop { name } }"
OK = {"data": {"shop": {"name": "Loyal shop"}}}


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture
def mock() -> Iterator[responses.RequestsMock]:
    """A RequestsMock that does not insist every registered response is used (retry tests register extras)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def waits() -> list[float]:
    return []


def make_client(waits: list[float], **overrides: Any) -> AdminClient:
    options: dict[str, Any] = {"base_url": FAKE_SHOP, "sleep": waits.append}
    options.update(overrides)
    return AdminClient(SHOP, TOKEN, VERSION, **options)


def throttled_body(requested: float = 10, available: float = 0, restore_rate: float = 50) -> dict[str, Any]:
    """Shopify's THROTTLED answer, with the cost extension the client computes its wait from."""
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": "https://x"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": available,
                    "restoreRate": restore_rate,
                },
            }
        },
    }


def sent(mock: responses.RequestsMock, index: int = 0) -> dict[str, Any]:
    body = mock.calls[index].request.body
    assert body is not None
    return json.loads(body)


def reward(kind: str = "fixed_amount", **overrides: Any) -> Reward:
    values: dict[str, Any] = {
        "id": "5-off",
        "kind": kind,
        "points": 500,
        "title": "5.00 off",
        "amount": Decimal("5.00") if kind == "fixed_amount" else None,
        "percent": Decimal("10") if kind == "percentage" else None,
        "min_subtotal": Decimal("20.00"),
        "customer_only": True,
        "single_use": True,
    }
    values.update(overrides)
    return Reward(**values)


def code_request(the_reward: Reward, code: str = "LOYAL-ABC123", ends_at: datetime | None = ENDS) -> CodeRequest:
    return CodeRequest(code=code, reward=the_reward, customer_id=CUSTOMER_ID, starts_at=STARTS, ends_at=ends_at)


def created(mutation: str = "discountCodeBasicCreate", errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    node = None if errors else {"id": DISCOUNT_ID}
    return {"data": {mutation: {"codeDiscountNode": node, "userErrors": errors or []}}}


# --- 1. the exact request ------------------------------------------------------------------------------------


def test_request_goes_to_default_shop_url_with_token_header_and_json_body(mock, waits):
    mock.post(DEFAULT_URL, json=OK)
    client = AdminClient(SHOP, TOKEN, VERSION, sleep=waits.append)

    assert client.graphql(PING, {"a": 1}) == {"shop": {"name": "Loyal shop"}}

    assert len(mock.calls) == 1
    request = mock.calls[0].request
    assert request.method == "POST"
    assert request.url == DEFAULT_URL
    assert request.headers["X-Shopify-Access-Token"] == TOKEN
    assert request.headers["Content-Type"] == "application/json"
    assert sent(mock) == {"query": PING, "variables": {"a": 1}}
    assert waits == []


def test_base_url_override_replaces_the_shop_and_drops_a_trailing_slash(mock, waits):
    mock.post(FAKE_URL, json=OK)
    client = make_client(waits, base_url=FAKE_SHOP + "/")

    client.graphql(PING, {})

    assert [call.request.url for call in mock.calls] == [FAKE_URL]
    assert mock.calls[0].request.method == "POST"
    assert mock.calls[0].request.headers["X-Shopify-Access-Token"] == TOKEN


def test_create_fixed_amount_sends_the_whole_basic_input(mock, waits):
    mock.post(FAKE_URL, json=created())

    discount_id = discounts.create(make_client(waits), code_request(reward()))

    assert discount_id == DISCOUNT_ID
    assert len(mock.calls) == 1
    assert sent(mock) == {
        "query": discounts.CREATE_BASIC,
        "variables": {
            "basicCodeDiscount": {
                "title": "Loyalty reward: 5.00 off (LOYAL-ABC123)",
                "code": "LOYAL-ABC123",
                "startsAt": "2026-11-20T10:00:00+00:00",
                "endsAt": "2026-12-20T10:00:00+00:00",
                "context": {"customers": {"add": [CUSTOMER_GID]}},
                "customerGets": {
                    "value": {"discountAmount": {"amount": "5.00", "appliesOnEachItem": False}},
                    "items": {"all": True},
                },
                "minimumRequirement": {"subtotal": {"greaterThanOrEqualToSubtotal": "20.00"}},
                "usageLimit": 1,
                "appliesOncePerCustomer": True,
            }
        },
    }


def test_create_never_sends_the_deprecated_customer_selection(mock, waits):
    mock.post(FAKE_URL, json=created())

    discounts.create(make_client(waits), code_request(reward()))

    assert "customerSelection" not in mock.calls[0].request.body.decode()


def test_create_percentage_sends_a_ratio(mock, waits):
    mock.post(FAKE_URL, json=created())

    discounts.create(make_client(waits), code_request(reward("percentage", title="10% off")))

    body = sent(mock)
    assert body["query"] == discounts.CREATE_BASIC
    gets = body["variables"]["basicCodeDiscount"]["customerGets"]
    assert gets == {"value": {"percentage": pytest.approx(0.1)}, "items": {"all": True}}
    assert isinstance(gets["value"]["percentage"], float)


def test_create_free_shipping_uses_the_free_shipping_mutation(mock, waits):
    mock.post(FAKE_URL, json=created("discountCodeFreeShippingCreate"))

    discount_id = discounts.create(
        make_client(waits), code_request(reward("free_shipping", title="Free shipping", min_subtotal=None))
    )

    assert discount_id == DISCOUNT_ID
    assert sent(mock) == {
        "query": discounts.CREATE_FREE_SHIPPING,
        "variables": {
            "freeShippingCodeDiscount": {
                "title": "Loyalty reward: Free shipping (LOYAL-ABC123)",
                "code": "LOYAL-ABC123",
                "startsAt": "2026-11-20T10:00:00+00:00",
                "endsAt": "2026-12-20T10:00:00+00:00",
                "context": {"customers": {"add": [CUSTOMER_GID]}},
                "destination": {"all": True},
                "minimumRequirement": None,
                "usageLimit": 1,
                "appliesOncePerCustomer": True,
            }
        },
    }


def test_create_for_everyone_and_reusable_sends_context_all_and_no_usage_limit(mock, waits):
    mock.post(FAKE_URL, json=created())

    discounts.create(make_client(waits), code_request(reward(customer_only=False, single_use=False), ends_at=None))

    sent_input = sent(mock)["variables"]["basicCodeDiscount"]
    assert sent_input["context"] == {"all": "ALL"}
    assert sent_input["usageLimit"] is None
    assert sent_input["appliesOncePerCustomer"] is False
    assert sent_input["endsAt"] is None


def test_find_and_delete_send_their_queries_and_variables(mock, waits):
    mock.post(FAKE_URL, json={"data": {"codeDiscountNodeByCode": None}})
    mock.post(FAKE_URL, json={"data": {"discountCodeDelete": {"deletedCodeDiscountId": DISCOUNT_ID, "userErrors": []}}})
    client = make_client(waits)

    discounts.find(client, "LOYAL-ABC123")
    discounts.delete(client, DISCOUNT_ID)

    assert sent(mock, 0) == {"query": discounts.FIND_BY_CODE, "variables": {"code": "LOYAL-ABC123"}}
    assert sent(mock, 1) == {"query": discounts.DELETE, "variables": {"id": DISCOUNT_ID}}


# --- 2. throttling and retries -------------------------------------------------------------------------------


def test_throttled_as_200_waits_for_the_missing_cost_then_succeeds(mock, waits):
    mock.post(FAKE_URL, json=throttled_body(requested=10, available=0, restore_rate=50), status=200)
    mock.post(FAKE_URL, json=OK)

    assert make_client(waits).graphql(PING, {}) == OK["data"]

    assert len(mock.calls) == 2
    assert waits == [pytest.approx((10 - 0) / 50)]


def test_throttled_as_429_without_retry_after_uses_the_computed_wait(mock, waits):
    mock.post(FAKE_URL, json=throttled_body(requested=10, available=0, restore_rate=50), status=429)
    mock.post(FAKE_URL, json=OK)

    assert make_client(waits).graphql(PING, {}) == OK["data"]

    assert len(mock.calls) == 2
    assert waits == [pytest.approx(0.2)]


def test_throttled_with_enough_budget_still_waits_the_minimum(mock, waits):
    mock.post(FAKE_URL, json=throttled_body(requested=10, available=50, restore_rate=50))
    mock.post(FAKE_URL, json=OK)

    make_client(waits).graphql(PING, {})

    assert waits == [pytest.approx(0.1)]


def test_throttled_without_cost_extension_falls_back_to_one_second(mock, waits):
    mock.post(FAKE_URL, json={"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]})
    mock.post(FAKE_URL, json=OK)

    make_client(waits).graphql(PING, {})

    assert waits == [pytest.approx(1.0)]


def test_429_with_retry_after_waits_that_long(mock, waits):
    mock.post(FAKE_URL, body="Too Many Requests", status=429, headers={"Retry-After": "2.5"})
    mock.post(FAKE_URL, json=OK)

    assert make_client(waits).graphql(PING, {}) == OK["data"]

    assert len(mock.calls) == 2
    assert waits == [pytest.approx(2.5)]


def test_retry_after_is_capped_by_max_wait_seconds(mock, waits):
    mock.post(FAKE_URL, body="slow down", status=429, headers={"Retry-After": "60"})
    mock.post(FAKE_URL, json=OK)

    make_client(waits, max_wait_seconds=5.0).graphql(PING, {})

    assert waits == [pytest.approx(5.0)]


def test_500_then_200_backs_off_once(mock, waits):
    mock.post(FAKE_URL, body="Internal Server Error", status=500)
    mock.post(FAKE_URL, json=OK)

    assert make_client(waits).graphql(PING, {}) == OK["data"]

    assert len(mock.calls) == 2
    assert waits == [pytest.approx(0.25)]


@pytest.mark.parametrize(
    "error",
    [requests.exceptions.ReadTimeout("read timed out"), requests.exceptions.ConnectionError("connection refused")],
    ids=["read-timeout", "connection-error"],
)
def test_two_network_failures_then_success_back_off_exponentially(mock, waits, error):
    mock.post(FAKE_URL, body=error)
    mock.post(FAKE_URL, body=error)
    mock.post(FAKE_URL, json=OK)

    assert make_client(waits).graphql(PING, {}) == OK["data"]

    assert len(mock.calls) == 3
    assert waits == [pytest.approx(0.25), pytest.approx(0.5)]


def test_backoff_is_capped_by_max_wait_seconds(mock, waits):
    mock.post(FAKE_URL, body="Bad Gateway", status=502)

    with pytest.raises(AdminAPIUnavailable):
        make_client(waits, max_attempts=5, max_wait_seconds=0.6).graphql(PING, {})

    assert waits == [pytest.approx(w) for w in (0.25, 0.5, 0.6, 0.6)]


# --- 3. giving up and permanent errors -----------------------------------------------------------------------


def test_always_500_gives_up_after_max_attempts(mock, waits):
    mock.post(FAKE_URL, body="Internal Server Error", status=500)
    client = make_client(waits)

    with pytest.raises(AdminAPIUnavailable, match="HTTP 500"):
        client.graphql(PING, {})

    assert len(mock.calls) == client.max_attempts == 6
    # a back-off between attempts, none after the last one
    assert waits == [pytest.approx(0.25 * 2 ** (n - 1)) for n in range(1, client.max_attempts)]


def test_always_throttled_gives_up_after_max_attempts(mock, waits):
    mock.post(FAKE_URL, json=throttled_body(), status=429)

    with pytest.raises(AdminAPIUnavailable, match="throttled"):
        make_client(waits, max_attempts=3).graphql(PING, {})

    assert len(mock.calls) == 3


def test_401_is_permanent_and_not_retried(mock, waits):
    mock.post(FAKE_URL, json={"errors": "[API] Invalid API key or access token"}, status=401)
    mock.post(FAKE_URL, json=OK)  # would be reached only by a (wrong) retry

    with pytest.raises(AdminAPIError, match="401"):
        make_client(waits).graphql(PING, {})

    assert len(mock.calls) == 1
    assert waits == []


def test_graphql_errors_that_are_not_throttling_are_permanent(mock, waits):
    mock.post(
        FAKE_URL,
        json={
            "errors": [{"message": "Field 'nope' doesn't exist on type 'Shop'", "extensions": {"code": "undefined"}}]
        },
    )
    mock.post(FAKE_URL, json=OK)

    with pytest.raises(AdminAPIError, match="doesn't exist"):
        make_client(waits).graphql(PING, {})

    assert len(mock.calls) == 1
    assert waits == []


def test_non_json_200_is_permanent(mock, waits):
    mock.post(FAKE_URL, body="<html>Login</html>", status=200, content_type="text/html")
    mock.post(FAKE_URL, json=OK)

    with pytest.raises(AdminAPIError, match="HTTP 200"):
        make_client(waits).graphql(PING, {})

    assert len(mock.calls) == 1
    assert waits == []


# --- 4. deadline ---------------------------------------------------------------------------------------------


def test_deadline_already_passed_makes_no_call(mock, waits):
    mock.post(FAKE_URL, json=OK)

    with pytest.raises(AdminAPIUnavailable, match="out of time"):
        make_client(waits, deadline=time.monotonic() - 1.0).graphql(PING, {})

    assert len(mock.calls) == 0
    assert waits == []


def test_deadline_caps_a_wait_to_the_time_left(mock, waits):
    mock.post(FAKE_URL, body="slow down", status=429, headers={"Retry-After": "15"})
    mock.post(FAKE_URL, json=OK)

    make_client(waits, deadline=time.monotonic() + 3.0).graphql(PING, {})

    assert len(waits) == 1
    assert 0.0 < waits[0] <= 3.0


# --- 5. discount helpers -------------------------------------------------------------------------------------


def test_create_taken_raises_code_taken(mock, waits):
    errors = [{"field": ["basicCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]
    mock.post(FAKE_URL, json=created(errors=errors))

    with pytest.raises(CodeTaken, match="LOYAL-ABC123"):
        discounts.create(make_client(waits), code_request(reward()))

    assert len(mock.calls) == 1


def test_create_taken_free_shipping_raises_code_taken(mock, waits):
    errors = [{"field": ["freeShippingCodeDiscount", "code"], "code": "TAKEN", "message": "Code must be unique."}]
    mock.post(FAKE_URL, json=created("discountCodeFreeShippingCreate", errors=errors))

    with pytest.raises(CodeTaken):
        discounts.create(make_client(waits), code_request(reward("free_shipping", title="Free shipping")))


def test_create_other_user_error_raises_admin_api_error_naming_field_and_message(mock, waits):
    errors = [{"field": ["basicCodeDiscount", "endsAt"], "code": "INVALID", "message": "Ends at must be later"}]
    mock.post(FAKE_URL, json=created(errors=errors))

    with pytest.raises(AdminAPIError) as raised:
        discounts.create(make_client(waits), code_request(reward()))

    assert not isinstance(raised.value, CodeTaken)
    text = str(raised.value)
    assert "endsAt" in text
    assert "Ends at must be later" in text
    assert "INVALID" in text


def test_create_without_an_id_is_an_error(mock, waits):
    mock.post(FAKE_URL, json={"data": {"discountCodeBasicCreate": {"codeDiscountNode": None, "userErrors": []}}})

    with pytest.raises(AdminAPIError, match="no discount id"):
        discounts.create(make_client(waits), code_request(reward()))


def test_find_null_node_is_none(mock, waits):
    mock.post(FAKE_URL, json={"data": {"codeDiscountNodeByCode": None}})

    assert discounts.find(make_client(waits), "LOYAL-NOPE") is None
    assert len(mock.calls) == 1


def test_find_returns_the_id_and_async_usage_count(mock, waits):
    node = {"id": DISCOUNT_ID, "codeDiscount": {"__typename": "DiscountCodeBasic", "asyncUsageCount": 3}}
    mock.post(FAKE_URL, json={"data": {"codeDiscountNodeByCode": node}})

    assert discounts.find(make_client(waits), "LOYAL-ABC123") == ShopCode(discount_id=DISCOUNT_ID, used=3)


def test_find_free_shipping_node_without_usage_is_unused(mock, waits):
    node = {"id": DISCOUNT_ID, "codeDiscount": {"__typename": "DiscountCodeFreeShipping", "asyncUsageCount": 0}}
    mock.post(FAKE_URL, json={"data": {"codeDiscountNodeByCode": node}})

    assert discounts.find(make_client(waits), "LOYAL-ABC123") == ShopCode(DISCOUNT_ID, 0)


def test_delete_not_found_is_not_an_error(mock, waits):
    errors = [{"field": ["id"], "code": "NOT_FOUND", "message": "Discount does not exist"}]
    mock.post(FAKE_URL, json={"data": {"discountCodeDelete": {"deletedCodeDiscountId": None, "userErrors": errors}}})

    assert discounts.delete(make_client(waits), DISCOUNT_ID) is None
    assert len(mock.calls) == 1


def test_delete_other_user_error_raises(mock, waits):
    errors = [{"field": ["id"], "code": "INVALID", "message": "Id is malformed"}]
    mock.post(FAKE_URL, json={"data": {"discountCodeDelete": {"deletedCodeDiscountId": None, "userErrors": errors}}})

    with pytest.raises(AdminAPIError, match="Id is malformed"):
        discounts.delete(make_client(waits), DISCOUNT_ID)
