"""Referral rules (pure): the programme's settings, shoppers' contact details made comparable, and each outcome."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from plugin.programme.rewards import Money, Percent, Reward

# Why a referral gives nothing; support sees these codes with their sentences (REASONS).
SAME_CUSTOMER = "same_customer"
SAME_EMAIL = "same_email"
SAME_ADDRESS = "same_address"
SAME_PHONE = "same_phone"
NOT_FIRST_ORDER = "not_first_order"
MONTHLY_CAP = "monthly_cap"
DAILY_VELOCITY = "daily_velocity"
REASONS = {
    SAME_CUSTOMER: "the friend is the advocate (same customer)",
    SAME_EMAIL: "the friend's e-mail is the advocate's once dots, +tags and case are ignored",
    SAME_ADDRESS: "the friend ships to an address the advocate has used",
    SAME_PHONE: "the friend's phone number is the advocate's",
    NOT_FIRST_ORDER: "the friend had ordered before: only a first order counts",
    MONTHLY_CAP: "the advocate reached the monthly cap of referral rewards",
    DAILY_VELOCITY: "the advocate reached the daily limit of referrals",
}
QUALIFIED, BLOCKED, VOID, REVERSED = "qualified", "blocked", "void", "reversed"
STATUSES = (QUALIFIED, BLOCKED, VOID, REVERSED)
FRIEND_REWARD_KINDS = ("fixed_amount", "percentage", "free_shipping")
CODE_PATTERN = re.compile(r"^[A-Z0-9]{6,16}$")  # an advocate's code as it appears in /apps/loyalty/r/CODE
CART_ATTRIBUTE = "_loyalty_referral"  # leading underscore: Shopify hides it from the shopper at checkout


class ReferralSettingsSchema(Schema):
    """The referral programme a merchant edits; unknown keys are refused so typos are never silently ignored."""

    class Meta:
        unknown = RAISE

    enabled = fields.Boolean(load_default=False)
    advocate_points = fields.Integer(strict=True, load_default=500, validate=validate.Range(0, 1_000_000))
    # A catalogue reward the advocate gets as well as the points, or instead (points 0); its id.
    advocate_reward = fields.String(load_default=None, allow_none=True, validate=validate.Length(1, 40))
    friend_reward_kind = fields.String(load_default="fixed_amount", validate=validate.OneOf(FRIEND_REWARD_KINDS))
    friend_reward_amount = Money(load_default=Decimal("10.00"), minimum=Decimal("0.01"))
    friend_reward_percent = Percent(load_default=Decimal("10"))
    friend_min_subtotal = Money(load_default=None, allow_none=True)
    friend_code_days = fields.Integer(strict=True, load_default=30, validate=validate.Range(1, 365))
    friend_codes_per_day = fields.Integer(strict=True, load_default=50, validate=validate.Range(0, 10_000))
    block_same_customer = fields.Boolean(load_default=True)
    block_same_email = fields.Boolean(load_default=True)
    block_same_address = fields.Boolean(load_default=True)
    block_same_phone = fields.Boolean(load_default=True)
    first_order_only = fields.Boolean(load_default=True)
    monthly_cap = fields.Integer(strict=True, load_default=10, allow_none=True, validate=validate.Range(1, 100_000))
    daily_limit = fields.Integer(strict=True, load_default=3, allow_none=True, validate=validate.Range(1, 100_000))

    @validates_schema
    def _advocate_gets_something(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("advocate_points", 0) <= 0 and not data.get("advocate_reward"):
            raise ValidationError("give points above 0, a reward from the catalogue, or both", "advocate_points")

    @validates_schema
    def _cap_above_daily(self, data: dict[str, Any], **_: Any) -> None:
        cap, daily = data.get("monthly_cap"), data.get("daily_limit")
        if cap is not None and daily is not None and daily > cap:
            raise ValidationError("must not be above the monthly cap", "daily_limit")


_SCHEMA = ReferralSettingsSchema()


@dataclass(frozen=True)
class ReferralSettings:
    enabled: bool = False
    advocate_points: int = 500
    advocate_reward: str | None = None
    friend_reward_kind: str = "fixed_amount"
    friend_reward_amount: Decimal = Decimal("10.00")
    friend_reward_percent: Decimal = Decimal("10")
    friend_min_subtotal: Decimal | None = None
    friend_code_days: int = 30
    friend_codes_per_day: int = 50
    block_same_customer: bool = True
    block_same_email: bool = True
    block_same_address: bool = True
    block_same_phone: bool = True
    first_order_only: bool = True
    monthly_cap: int | None = 10
    daily_limit: int | None = 3

    def to_json(self) -> dict[str, Any]:
        return {name: (str(value) if isinstance(value, Decimal) else value) for name, value in self.__dict__.items()}

    def friend_reward(self) -> Reward:
        """The friend's reward as a catalogue entry: one use, anyone may use it (the friend has no account yet)."""
        return Reward(
            id="referral-friend",
            kind=self.friend_reward_kind,
            points=0,
            title=friend_reward_title(self),
            amount=self.friend_reward_amount if self.friend_reward_kind == "fixed_amount" else None,
            percent=self.friend_reward_percent if self.friend_reward_kind == "percentage" else None,
            min_subtotal=self.friend_min_subtotal,
            lifetime_days=self.friend_code_days,
            customer_only=False,
            single_use=True,
        )


def friend_reward_title(settings: ReferralSettings) -> str:
    if settings.friend_reward_kind == "percentage":
        return f"{settings.friend_reward_percent.normalize():f}% off your first order"
    if settings.friend_reward_kind == "free_shipping":
        return "Free shipping on your first order"
    return f"{settings.friend_reward_amount} off your first order"


def validate_settings(data: Any) -> dict[str, Any]:
    """Check a full settings object; returns it as JSON-ready values, or raises ValidationError per field."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["send a JSON object of settings"]})
    return ReferralSettings(**_SCHEMA.load(data)).to_json()


def read_settings(stored: dict[str, Any] | None) -> ReferralSettings:
    """The settings a stored row holds; a part that no longer validates reads as its default."""
    data = dict(stored or {})
    while True:
        try:
            return ReferralSettings(**_SCHEMA.load(data))
        except ValidationError as error:
            bad = set(error.messages) & set(data) if isinstance(error.messages, dict) else set(data)
            data = {key: value for key, value in data.items() if key not in (bad or set(data))}


# --- contact details made comparable -----------------------------------------------------------------------------


def email_key(email: str | None) -> str | None:
    """One key per mailbox: case, +tags and (for Gmail-like providers, where they are ignored) dots removed."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.strip().casefold().rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    if domain == "googlemail.com":
        domain = "gmail.com"
    return _digest(f"{local}@{domain}") if local and domain else None


def phone_key(phone: str | None) -> str | None:
    """Digits only, the last nine (country prefixes and trunk zeros written differently still match)."""
    digits = re.sub(r"\D", "", phone or "")
    return _digest(digits[-9:]) if len(digits) >= 6 else None


def address_key(address1: str | None, zip_code: str | None, country: str | None) -> str | None:
    """Street line, postcode and country, without case, accents, punctuation or spaces."""
    if not address1 or not zip_code:
        return None
    parts = [_plain(address1), _plain(zip_code), _plain(country or "")]
    return _digest("|".join(parts)) if parts[0] else None


def _plain(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in folded if ch.isalnum())


def _digest(text: str) -> str:
    # Stored hashed: comparisons need equality only, and the order facts then hold no readable address or phone.
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- outcomes ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One friend's order tied to an advocate, with the facts the guards read."""

    order_id: int
    ordered_at: datetime
    same_customer: bool
    same_email: bool
    same_address: bool
    same_phone: bool
    first_order: bool
    ended_at: datetime | None  # when it was fully refunded or cancelled; None while it stands
    available_at: datetime  # paid, plus the shop's pending period
    approved: bool = False


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str | None
    points: int  # what the advocate should hold for it now


def decide(
    candidates: list[Candidate], settings: ReferralSettings, zone: ZoneInfo, now: datetime
) -> dict[int, Outcome]:
    """Every one of an advocate's referrals, decided together: caps rank them by when they were ordered,
    never by when their deliveries arrived, so any arrival order gives the same outcomes."""
    outcomes: dict[int, Outcome] = {}
    per_month: dict[tuple[int, int], int] = {}
    per_day: dict[Any, int] = {}
    for candidate in sorted(candidates, key=lambda c: (c.ordered_at, c.order_id)):
        reason = None if candidate.approved else _own_guard(candidate, settings)
        local = candidate.ordered_at.astimezone(zone)  # months and days are the shop's own
        month, day = (local.year, local.month), local.date()
        if reason is None and candidate.ended_at is None and not candidate.approved:
            if settings.monthly_cap is not None and per_month.get(month, 0) >= settings.monthly_cap:
                reason = MONTHLY_CAP
            elif settings.daily_limit is not None and per_day.get(day, 0) >= settings.daily_limit:
                reason = DAILY_VELOCITY
        if reason is not None:
            outcomes[candidate.order_id] = Outcome(BLOCKED, reason, 0)
            continue
        if candidate.ended_at is not None:
            # Refunded or cancelled orders never count toward the caps: they gave nothing, or gave it back.
            status = VOID if candidate.ended_at < candidate.available_at else REVERSED
            outcomes[candidate.order_id] = Outcome(status, None, 0)
            continue
        per_month[month] = per_month.get(month, 0) + 1
        per_day[day] = per_day.get(day, 0) + 1
        due = settings.advocate_points if candidate.available_at <= now else 0
        outcomes[candidate.order_id] = Outcome(QUALIFIED, None, due)
    return outcomes


def _own_guard(candidate: Candidate, settings: ReferralSettings) -> str | None:
    checks = (
        (settings.block_same_customer and candidate.same_customer, SAME_CUSTOMER),
        (settings.block_same_email and candidate.same_email, SAME_EMAIL),
        (settings.block_same_address and candidate.same_address, SAME_ADDRESS),
        (settings.block_same_phone and candidate.same_phone, SAME_PHONE),
        (settings.first_order_only and not candidate.first_order, NOT_FIRST_ORDER),
    )
    return next((reason for failed, reason in checks if failed), None)


def available_at(paid_at: datetime, pending_days: int) -> datetime:
    return paid_at + timedelta(days=pending_days)
