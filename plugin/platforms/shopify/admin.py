"""Shopify Admin GraphQL client: timeouts, throttling (throttleStatus, 429 Retry-After) and retries with backoff."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from plugin.platforms.base import AdminAPIError, AdminAPIUnavailable

__all__ = ["AdminAPIError", "AdminAPIUnavailable", "AdminClient"]  # the errors are the platform-neutral ones

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.05
# GraphQL error codes that describe the shop's trouble, not our request: worth another attempt.
TRANSIENT_GRAPHQL_CODES = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE", "TIMEOUT"})


@dataclass
class AdminClient:
    shop_domain: str
    access_token: str
    api_version: str
    base_url: str = ""  # SHOPIFY_API_BASE_URL: a local fake shop instead of https://{shop}
    http: requests.Session = field(default_factory=requests.Session)
    sleep: Callable[[float], None] = time.sleep
    max_attempts: int = 6
    max_wait_seconds: float = 20.0  # never wait longer than this for one retry
    deadline: float | None = None  # time.monotonic() after which no new attempt starts
    read_timeout: float = 10.0
    on_unauthorized: Callable[[], str | None] | None = None  # returns a refreshed token, or None

    @property
    def endpoint(self) -> str:
        root = self.base_url.rstrip("/") if self.base_url else f"https://{self.shop_domain}"
        return f"{root}/admin/api/{self.api_version}/graphql.json"

    def graphql(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Run one query or mutation and return its `data`, retrying what is worth retrying."""
        last_problem = "no attempt made"
        for attempt in range(1, self.max_attempts + 1):
            remaining = self.read_timeout if self.deadline is None else self.deadline - time.monotonic()
            if remaining <= 0:
                raise AdminAPIUnavailable(f"out of time after {attempt - 1} attempts: {last_problem}")
            try:
                response = self.http.post(
                    self.endpoint,
                    json={"query": query, "variables": variables},
                    headers={"X-Shopify-Access-Token": self.access_token, "Content-Type": "application/json"},
                    timeout=(CONNECT_TIMEOUT, max(min(self.read_timeout, remaining), 0.5)),
                )
            except (requests.Timeout, requests.ConnectionError) as error:
                last_problem = f"{type(error).__name__}: {error}"
                self._back_off(attempt, last_problem)
                continue

            body = _json_or_none(response)
            throttled_wait = _throttle_wait(response, body)
            if throttled_wait is not None:
                last_problem = f"throttled (HTTP {response.status_code})"
                self._wait(min(throttled_wait, self.max_wait_seconds), attempt, last_problem)
                continue
            if response.status_code == 401 and self.on_unauthorized is not None:
                refreshed, self.on_unauthorized = self.on_unauthorized(), None  # refresh once, never loop
                if refreshed:
                    self.access_token = refreshed
                    continue
            if response.status_code >= 500:
                last_problem = f"HTTP {response.status_code}"
                self._back_off(attempt, last_problem)
                continue
            if response.status_code != 200 or body is None:
                raise AdminAPIError(f"HTTP {response.status_code}: {response.text[:300]}", status=response.status_code)
            if body.get("errors"):
                if _error_codes(body) and _error_codes(body) <= TRANSIENT_GRAPHQL_CODES:
                    last_problem = f"GraphQL {sorted(_error_codes(body))}"
                    self._back_off(attempt, last_problem)
                    continue
                raise AdminAPIError(f"GraphQL errors: {body['errors']}")
            return body.get("data") or {}
        raise AdminAPIUnavailable(f"gave up after {self.max_attempts} attempts: {last_problem}")

    def _back_off(self, attempt: int, problem: str) -> None:
        self._wait(min(0.25 * 2 ** (attempt - 1), self.max_wait_seconds), attempt, problem)

    def _wait(self, seconds: float, attempt: int, problem: str) -> None:
        if self.deadline is not None:
            seconds = min(seconds, max(self.deadline - time.monotonic(), 0.0))
        if attempt < self.max_attempts:
            log.info("%s: %s; retrying in %.2fs", self.shop_domain, problem, seconds)
            self.sleep(seconds)


def _json_or_none(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error_codes(body: dict[str, Any]) -> set[str]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return set()
    return {str((e.get("extensions") or {}).get("code")) for e in errors if isinstance(e, dict)}


def _throttle_wait(response: requests.Response, body: dict[str, Any] | None) -> float | None:
    """Seconds to wait when the call was throttled (Shopify answers THROTTLED as 200 or 429), else None."""
    throttled = any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED"
        for e in (body or {}).get("errors") or []
    )
    if not throttled and response.status_code != 429:
        return None
    retry_after = response.headers.get("Retry-After")
    if retry_after:
        try:
            return max(float(retry_after), 0.0)
        except ValueError:
            pass
    cost = ((body or {}).get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        missing = float(cost.get("requestedQueryCost") or 0) - float(status["currentlyAvailable"])
        return max(missing / float(status["restoreRate"]), 0.1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return 1.0
