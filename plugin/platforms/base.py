"""What the loyalty core needs of a shop platform: the Platform protocol, its Admin client and its two errors."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from plugin.programme import events

if TYPE_CHECKING:
    from plugin.config import Settings
    from plugin.models import Shop


class AdminAPIError(Exception):
    """The shop refused the call for good (bad token, bad query, validation): retrying will not help."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # the HTTP status of the refusal, when it was one


class AdminAPIUnavailable(Exception):
    """The shop could not be reached or kept failing/throttling after every retry: try again later."""


class AdminClient(Protocol):
    """A client for one shop's Admin API; each platform's operations below know how to use their own."""

    shop_domain: str
    deadline: float | None  # time.monotonic() after which no new attempt starts


@dataclass(frozen=True)
class SyncedOrder:
    """One order read back by an order sync: its reference, and what its webhooks would have said by now.

    `read_events` maps the platform's answer only when called, so one order the mapping refuses is reported
    by the caller, with its reference, while the others are applied.
    """

    reference: str | None
    read_events: Callable[[], list[events.Event]]


@dataclass(frozen=True)
class TierChange:
    """A member's tier to write to the shop: the tags to add and remove, and the tier's name (None: no tier)."""

    customer_id: int
    add_tags: tuple[str, ...]
    remove_tags: tuple[str, ...]
    tier_name: str | None


@runtime_checkable
class Platform(Protocol):
    """A shop platform. Adding one means a package under plugin/platforms/ that provides this, then registering it."""

    name: str  # as stored in shops.platform and deliveries.platform
    lifecycle_topics: frozenset[str]  # topics handled whatever the shop's state (uninstall, privacy requests)
    shop_domain_hint: str  # how a valid shop domain looks, for error messages
    max_balances_per_call: int

    def verify_webhook(self, body: bytes, signature: str | None, secrets: Iterable[str]) -> bool:
        """Whether the raw body carries a valid signature from one of the secrets."""
        ...

    def is_valid_shop_domain(self, domain: str | None) -> bool: ...

    def triggered_at(self, header: str | None, fallback: datetime) -> datetime:
        """When the platform says the event happened (from the delivery's header), else `fallback`."""
        ...

    def parse_event(self, topic: str, payload: Any, triggered_at: datetime) -> events.Event | None:
        """The neutral event for a delivery, or None for a topic the core does not use.

        Raises marshmallow.ValidationError when the payload does not have the shape the topic promises.
        """
        ...

    def admin_client(self, settings: Settings, shop: Shop) -> AdminClient:
        """A client for the shop's Admin API, with a fresh token; the shop must be loaded in an open session."""
        ...

    def push_balances(self, client: AdminClient, balances: Sequence[tuple[int, int]]) -> None:
        """Write (customer id, points) pairs where the shop's themes can read them; raises AdminAPIError."""
        ...

    def push_tier(self, client: AdminClient, change: TierChange) -> None:
        """Write one customer's tier where themes and flows read it (tags, a metafield); raises AdminAPIError."""
        ...

    def orders_updated_since(self, client: AdminClient, since: datetime, page_size: int) -> Iterator[list[SyncedOrder]]:
        """Every order updated since `since`, a page at a time, as the events its webhooks would have carried."""
        ...

    def ensure_webhooks(
        self, client: AdminClient, callback_uri: str, customer_metafield_namespaces: Sequence[str] = ()
    ) -> list[str]:
        """Create the webhook subscriptions the shop is missing, the customer topics asking for these metafield
        namespaces (changing them where they differ); returns the topics created or changed."""
        ...

    def find_customers(
        self, client: AdminClient, ids: Sequence[int], emails: Sequence[str], pause: Callable[[], None]
    ) -> tuple[list[events.Customer], int]:
        """The shop's customers with these ids or exactly these emails (calls paced by `pause`), and the calls made."""
        ...

    def uninstall_refusal(self, settings: Settings, shop: Shop) -> str | None:
        """Why not to act on an uninstall notice now (the shop still accepts our token, or cannot be asked), or None.

        A signed notice proves the platform sent it once, not that it is recent: replayed after a re-install it
        must not deactivate the shop. The shop must be loaded in an open session.
        """
        ...

    def existing_collections(self, client: AdminClient, names: Iterable[str]) -> set[str]:
        """Which of these collection ids or handles the shop has (a rule naming another is refused)."""
        ...

    def primary_locale(self, client: AdminClient) -> str | None:
        """The shop's primary locale ("fr", "en-GB"), for explanations in the shop's language."""
        ...

    def fetch_products(
        self, client: AdminClient, product_ids: Iterable[int]
    ) -> tuple[list[events.ProductFacts], set[int]]:
        """The products' facts for earning rules (batched), and the ids the shop no longer has."""
        ...
