"""What the storefront widget shows of the milestone programme to one shopper (or to a visitor)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from plugin.models import Shop, utcnow
from plugin.programme import milestones, reward_grants
from plugin.programme.rewards import catalogue
from plugin.services import shops
from plugin.services.milestones import actions, birthdays
from plugin.services.milestones import settings as programme
from plugin.services.milestones.rules import order_history


def view(session, shop: Shop, member_id: int | None, now: datetime | None = None) -> dict[str, Any]:
    """Threshold progress, punch-card punches, the birthday form's state and the actions with what they earn."""
    now = now or utcnow()
    current = programme.current(session, shop.id)
    history = order_history(session, shop, member_id) if member_id is not None else []
    today = now.astimezone(shops.zone(shop)).date()
    bonus = current["birthday"]
    offered = catalogue(shop.settings)
    return {
        "member": member_id is not None,
        "currency": shop.currency,
        "thresholds": [
            _with_reward(milestones.threshold_progress(t, history, today), t, offered) for t in current["thresholds"]
        ],
        "punch_cards": [
            _with_reward(milestones.punch_card_progress(c, history), c, offered) for c in current["punch_cards"]
        ],
        "birthday": {
            "enabled": bonus["points"] > 0,
            "points": bonus["points"],
            "when": bonus["when"],
            "given": birthdays.describe(birthdays.of(session, shop.id, member_id), now) if member_id else None,
        },
        "actions": actions.available(session, shop, member_id, now),
    }


def _with_reward(progress: dict[str, Any], rule: dict[str, Any], offered) -> dict[str, Any]:
    """The catalogue reward a grant gives, as the rewards list shows it, for "spend 120.00 more for 10.00 off"."""
    reward = reward_grants.find(offered, rule.get("reward"))
    progress["reward"] = reward.to_json() if reward is not None else None
    return progress
