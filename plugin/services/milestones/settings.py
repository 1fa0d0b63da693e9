"""A shop's milestone programme: read it, and save a change as a new version (every door calls these)."""

from __future__ import annotations

import copy
from typing import Any

from marshmallow import ValidationError
from sqlalchemy import select

from plugin.db import insert_for
from plugin.models import MilestoneSettings, Shop, utcnow
from plugin.programme import reward_grants
from plugin.programme.milestone_settings import EMPTY, validate_milestones
from plugin.programme.milestones import RULES_VERSION
from plugin.programme.rewards import catalogue


def current(session, shop_id: int) -> dict[str, Any]:
    """The programme as saved, with its version (0 and an empty programme before the first save)."""
    return of_row(session.get(MilestoneSettings, shop_id))


def any_rules(programme: dict[str, Any]) -> bool:
    """Whether the programme has anything milestones.rules.recompute brings a member to: thresholds, punch cards or
    a signup bonus."""
    return bool(programme["thresholds"] or programme["punch_cards"] or programme["signup"]["points"])


def of_row(row: MilestoneSettings | None) -> dict[str, Any]:
    """`current`'s answer from the shop's settings row as read (None: never saved), a copy the caller may keep."""
    if row is None:
        return {**copy.deepcopy(EMPTY), "version": 0}
    return {**copy.deepcopy(row.settings), "version": row.version}


def mapped_namespaces(session, shop_id: int) -> list[str]:
    """The customer metafield namespaces the programme reads (the mapped birthday's), for the webhook subscriptions."""
    mapped = current(session, shop_id)["birthday"].get("metafield")
    return [mapped.split(".", 1)[0]] if mapped else []


def rule_version(version: int) -> str:
    return f"{RULES_VERSION}+v{version}"


def reward_refusals(shop: Shop, clean: dict[str, Any], lists: tuple[str, ...]) -> dict[str, Any]:
    """Per-field messages for grants naming a reward the shop's catalogue cannot grant (absent, cash-back, ended)."""
    offered, now = catalogue(shop.settings), utcnow()
    found: dict[str, Any] = {}
    for name in lists:
        for position, item in enumerate(clean[name]):
            why = reward_grants.refusal(offered, item["reward"], now) if item.get("reward") else None
            if why:
                found.setdefault(name, {})[position] = {"reward": [why]}
    return found


def save(session, shop: Shop, data: Any, actor: str) -> dict[str, Any]:
    """Validate and save the whole programme as a new version; raises ValidationError with per-field messages."""
    if not isinstance(data, dict):
        raise ValidationError({"_schema": ["send a JSON object"]})
    data = {key: value for key, value in data.items() if key != "version"}  # echoed back by a GET: not an input
    clean = validate_milestones(data)
    refused = reward_refusals(shop, clean, ("thresholds", "punch_cards"))
    if refused:
        raise ValidationError(refused)
    row = session.execute(
        select(MilestoneSettings).where(MilestoneSettings.shop_id == shop.id).with_for_update()
    ).scalar_one_or_none()
    before = row.settings if row is not None else EMPTY
    # Members enrolled before the signup bonus was turned on never get it: it greets new members only.
    was_on = before["signup"]["points"] > 0 and before["signup"].get("since")
    clean["signup"]["since"] = (
        (before["signup"]["since"] if was_on else utcnow().isoformat()) if clean["signup"]["points"] > 0 else None
    )
    version = (row.version if row is not None else 0) + 1
    if before["birthday"].get("metafield") != clean["birthday"].get("metafield"):
        # The customer webhooks must ask for the new namespace: the sweeper checks a shop whose subscriptions were
        # never checked at once (services/subscriptions.due), and the flag commits with the mapping itself.
        shop.webhooks_checked_at = None
    session.execute(
        insert_for(session)(MilestoneSettings)
        .values(shop_id=shop.id, settings=clean, version=version, actor=actor, updated_at=utcnow())
        .on_conflict_do_update(
            index_elements=["shop_id"],
            set_={"settings": clean, "version": version, "actor": actor, "updated_at": utcnow()},
        )
    )
    return {**copy.deepcopy(clean), "version": version}
