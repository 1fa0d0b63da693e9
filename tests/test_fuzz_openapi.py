"""Fuzzing the admin and support APIs from their OpenAPI documents (schemathesis, in-process WSGI, valid keys)."""

from __future__ import annotations

import re

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks

from plugin import create_app
from plugin.config import Settings
from tests import builders
from tests.conftest import deliver
from tests.fuzzing import fuzz_settings
from tests.test_admin_api import session_token
from tests.test_support import make_key

pytestmark = [pytest.mark.fuzz, pytest.mark.integration]

ADMIN_DOCUMENT = "/api/admin/openapi.json"
SUPPORT_DOCUMENT = "/api/support/openapi.json"  # added on branch `doors`
EXAMPLES_PER_OPERATION = 12  # 15 admin operations (and about 10 support ones): the stage stays near a minute
BOUNDARY_EXAMPLES = 3  # ids one past BIGINT: hypothesis rarely draws them on its own, probes found them at once
CONFORMANCE = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


@schemathesis.check
def successful_answers_match_the_document(ctx, response, case):
    """The conformance checks, on 2xx answers only: what the document says a success looks like."""
    if response.status_code >= 400:
        return None
    for check in CONFORMANCE:
        check(ctx, response, case)
    return True


@pytest.fixture
def populated(client, shop):
    """A shop with a member, orders and a refund, so reads and writes have something to find."""
    deliver(client, "orders/paid", builders.order(1, 7001, [builders.line(10, "60.00", 2)], email="ada@example.com"))
    deliver(client, "orders/paid", builders.order(2, 7002, [builders.line(20, "30.00")], email="bo@example.com"))
    deliver(client, "refunds/create", builders.refund(1, 1, {10: 1}))
    return shop


class _AppOfThisTest:
    """The WSGI app schemathesis calls: the current test's app (its own database), set by a fixture.

    The documents are loaded when the module is collected, from an app whose settings only serve them."""

    def __init__(self) -> None:
        self.app = create_app(
            Settings(database_url="sqlite://", redis_url="", shopify_api_key="k", shopify_api_secret="s" * 32),
            TESTING=True,
        )

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


APP = _AppOfThisTest()


def _document(path: str):
    if APP.app.test_client().get(path).status_code != 200:
        return None
    return schemathesis.openapi.from_wsgi(path, APP)


def operations(document, path_regex: str, *, exclude: str | None = None) -> list:
    """The document's operations whose path matches, each a pytest parameter named "METHOD /path"."""
    found = []
    for result in document.get_all_operations() if document is not None else ():
        operation = result.ok()
        if re.search(path_regex, operation.path) and not (exclude and re.search(exclude, operation.path)):
            found.append(pytest.param(operation, id=f"{operation.method.upper()} {operation.path}"))
    return found


def fuzz(operation, headers: dict[str, str], checks_to_run: list, *, xfail: bool = False) -> None:
    """EXAMPLES_PER_OPERATION requests for one operation, valid and invalid ones, each checked; then, for each
    integer in the path, BOUNDARY_EXAMPLES valid requests with that integer one past BIGINT."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [(EXAMPLES_PER_OPERATION, st.one_of(*(operation.as_strategy(mode) for mode in modes)))]
    for parameter in operation.path_parameters:
        if parameter.definition.get("schema", {}).get("type") == "integer":
            past_bigint = operation.as_strategy(path_parameters={parameter.name: 2**63})
            strategies.append((BOUNDARY_EXAMPLES, past_bigint))
    for examples, strategy in strategies:

        @fuzz_settings(examples, shrink=not xfail)
        @given(case=strategy)
        def run(case) -> None:
            case.call_and_validate(headers=headers, checks=checks_to_run)

        run()


admin = _document(ADMIN_DOCUMENT)
support = _document(SUPPORT_DOCUMENT)


@pytest.fixture(autouse=True)
def _route_calls_to_this_test(app, populated):
    APP.app = app


@pytest.fixture
def staff() -> dict[str, str]:
    return {"Authorization": f"Bearer {session_token()}"}


@pytest.fixture
def support_desk(settings, populated) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key(settings, 'write')}"}


# Path ids past BIGINT reach the database and answer 500 (issue #12, hole 7, fixed on another branch). These
# operations are fuzzed apart, expected to fail, so the rest stays a hard guard; after the merge, fold them back.
IDS_PAST_BIGINT = (
    r"^/api/admin/support/(members/\{customer_id\}/history|parked/\{delivery_id\}(/replay)?|keys/\{key_id\}/revoke)$"
)
PROGRAMME = r"^/api/admin/(settings|summary)$"


@pytest.mark.parametrize("operation", operations(admin, r"^/api/admin/", exclude=IDS_PAST_BIGINT))
def test_the_admin_api_never_answers_a_server_error(operation, staff):
    fuzz(operation, staff, [checks.not_a_server_error])


@pytest.mark.parametrize("operation", operations(admin, IDS_PAST_BIGINT))
def test_the_admin_api_never_answers_a_server_error_for_ids_past_bigint(operation, staff):
    fuzz(operation, staff, [checks.not_a_server_error])


@pytest.mark.parametrize("operation", operations(admin, PROGRAMME))
def test_the_programme_settings_and_summary_succeed_as_the_document_says(operation, staff):
    fuzz(operation, staff, [successful_answers_match_the_document])


@pytest.mark.parametrize("operation", operations(admin, r"^/api/admin/"))
def test_the_admin_api_answers_every_request_as_the_document_says(operation, staff):
    fuzz(operation, staff, CONFORMANCE)


@pytest.mark.xfail(support is None, strict=True, reason="needs doors: the support API has no OpenAPI document yet")
def test_the_support_api_serves_an_openapi_document_of_its_routes(client):
    response = client.get(SUPPORT_DOCUMENT)
    assert response.status_code == 200
    assert any(path.startswith("/api/support/") for path in response.get_json()["paths"])


@pytest.mark.parametrize("operation", operations(support, r"^/api/support/"))
def test_the_support_api_never_answers_a_server_error(operation, support_desk):
    fuzz(operation, support_desk, [checks.not_a_server_error])


@pytest.mark.parametrize("operation", operations(support, r"^/api/support/"))
def test_the_support_api_answers_as_its_document_says(operation, support_desk):
    fuzz(operation, support_desk, CONFORMANCE)
