"""Reward grants as pure decisions: which catalogue reward a grant may name, its key, and a used reward's take-back.

A milestone or a referral may grant a catalogue reward at no point cost (docs/milestones.md, decision 0027).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from plugin.programme.rewards import Reward

POLICIES = ("allow_negative", "stop_at_zero", "claw_back")


def find(catalogue: list[Reward], reward_id: str | None) -> Reward | None:
    return next((reward for reward in catalogue if reward.id == reward_id), None) if reward_id else None


def refusal(catalogue: list[Reward], reward_id: str, now: datetime) -> str | None:
    """Why a grant cannot name this reward (None: it can): it must be in the catalogue, priced and not ended."""
    reward = find(catalogue, reward_id)
    if reward is None:
        return f"no reward {reward_id!r} in the shop's catalogue"
    if reward.kind == "cash_back":
        return "a cash-back reward is priced by the points the shopper chooses: grant a fixed reward"
    if reward.available_until is not None and now >= reward.available_until:
        return f"this reward ended on {reward.available_until.isoformat()}"
    return None


def key(source_type: str, source_id: str, member_id: int, number: int, rule_version: str, generation: int = 0) -> str:
    """The grant's identity as the redemption's idempotency key: one reward per (member, rule, version, number).

    The generation counts issues of the same grant: a threshold crossed, taken back (its reward revoked) and
    crossed again is the same crossing number, and earns a new reward."""
    base = f"grant:{source_type}:{source_id}:{member_id}:{number}:{rule_version}"
    return base if generation == 0 else f"{base}:{generation + 1}"


@dataclass(frozen=True)
class TakeBack:
    """What a used reward's take-back posts: a reverse (<= 0), a forgive (>= 0) first, and what stays owed."""

    reverse: int
    forgive: int
    owed: int
    remark: str


def used_reward_take_back(policy: str, value: int, balance: int) -> TakeBack:
    """A reward taken back after the customer used it costs its point value, under the spent-points policy.

    allow_negative: the whole value is reversed, the balance may go below zero. stop_at_zero: what the balance
    cannot pay is forgiven first (as an order's reversal does), so it never dips. claw_back: what the balance
    can pay is reversed, the rest is owed."""
    if policy not in POLICIES:
        raise ValueError(f"unknown spent-points policy {policy!r}")
    if value <= 0:
        return TakeBack(0, 0, 0, "the reward had no point value: nothing to take back")
    shortfall = max(value - max(balance, 0), 0)
    if policy == "allow_negative" or shortfall == 0:
        return TakeBack(-value, 0, 0, f"{policy}: its value of {value} points is reversed")
    if policy == "stop_at_zero":
        return TakeBack(-value, shortfall, 0, f"stop_at_zero: {value} points reversed, {shortfall} of them forgiven")
    return TakeBack(
        -(value - shortfall), 0, shortfall, f"claw_back: {value - shortfall} points reversed, {shortfall} owed"
    )
