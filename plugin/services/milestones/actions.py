"""Custom actions: a member completes one (from the merchant's server or the widget) and earns its points.

Every completion is keyed by the caller's idempotency key: the same key and request again answers the first
completion and posts nothing; the same key with another request is refused. Caps and cooldowns are checked under
a lock on the member row, so two concurrent completions cannot both slip under a cap.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from plugin import ledger
from plugin.models import ActionCompletion, Member, Shop, SurveyAnswer, utcnow
from plugin.programme.text import has_control
from plugin.services import outbox, shops
from plugin.services.errors import IdempotencyKeyReused, Invalid, NotFound, ServiceError
from plugin.services.milestones import settings as programme


class ActionRefused(ServiceError):
    """Over the action's cap for the period, or inside its cooldown."""

    code, status = "action_refused", 409

    def __init__(self, code: str, message: str, fields: dict, retry_after_seconds: int | None = None):
        super().__init__(message, fields)
        self.code = code
        self.retry_after_seconds = retry_after_seconds


def find(current: dict[str, Any], action_id: str) -> dict[str, Any]:
    for action in current["actions"]:
        if action["id"] == action_id:
            return action
    shown = action_id[:40]  # ids are at most 40 characters: a longer one is not echoed whole
    raise NotFound(f"no action {shown!r}", {"action": [f"no action {shown!r} in this shop's programme"]})


def fingerprint(action_id: str, member_id: int, answers: Any) -> str:
    return hashlib.sha256(json.dumps([action_id, member_id, answers], sort_keys=True, default=str).encode()).hexdigest()


def check_answers(action: dict[str, Any], answers: Any) -> dict[str, Any]:
    """A survey's answers: every question answered, a 0-10 question with a whole number 0 to 10; else 400."""
    if action["kind"] != "survey":
        if answers not in (None, {}):
            raise Invalid("only a survey takes answers", {"answers": ["only a survey action takes answers"]})
        return {}
    if not isinstance(answers, dict):
        raise Invalid("send the survey's answers", {"answers": ["an object of question key to answer"]})
    problems: dict[str, list[str]] = {}
    questions = {q["key"]: q for q in action["questions"]}
    for key in answers:
        if key not in questions:
            problems[str(key)[:40]] = ["not a question of this survey"]
    for key, question in questions.items():
        value = answers.get(key)
        if question["type"] == "nps":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                problems[key] = ["a whole number from 0 to 10"]
        elif not isinstance(value, str) or not value.strip() or len(value) > 1000:
            problems[key] = ["an answer of 1 to 1000 characters"]
        elif has_control(value):  # NUL would reach the answers' text column and fail there (a 500)
            problems[key] = ["must not contain control characters"]
    if problems:
        raise Invalid("some answers are not valid", {"answers": problems})
    return answers


def complete(
    session,
    shop: Shop,
    member_id: int,
    action_id: str,
    idempotency_key: str,
    *,
    channel: str,
    answers: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Record one completion and post its points; returns it, with `replayed` true for a repeated request."""
    current = programme.current(session, shop.id)
    action = find(current, action_id)
    if channel == "widget" and action["kind"] == "server":
        raise Invalid("this action is reported by the shop's systems", {"action": ["not completed from the widget"]})
    if not isinstance(idempotency_key, str) or not 1 <= len(idempotency_key) <= 200:
        raise Invalid("an idempotency key is needed", {"idempotency_key": ["1 to 200 characters"]})
    now = now or utcnow()
    print_ = fingerprint(action_id, member_id, answers)
    # The member row's lock serialises this member's completions: cap and cooldown see every earlier one.
    session.execute(select(Member.id).where(Member.shop_id == shop.id, Member.id == member_id).with_for_update())
    earlier = session.get(ActionCompletion, (shop.id, idempotency_key))
    if earlier is not None:
        if earlier.fingerprint != print_:
            raise IdempotencyKeyReused("this idempotency key was used for another request")
        return {**describe(earlier), "replayed": True}
    answers = check_answers(action, answers)
    _check_limits(session, shop, member_id, action, now)
    row = ActionCompletion(
        shop_id=shop.id, idempotency_key=idempotency_key, member_id=member_id, action_id=action_id,
        points=action["points"], channel=channel, fingerprint=print_, completed_at=now,
    )  # fmt: skip
    session.add(row)
    for key, value in answers.items():
        session.add(
            SurveyAnswer(
                shop_id=shop.id, completion_key=idempotency_key, question_key=key, member_id=member_id,
                survey_id=action_id, score=value if isinstance(value, int) else None,
                answer=value if isinstance(value, str) else None, answered_at=now,
            )
        )  # fmt: skip
    session.flush()
    key = f"action:{idempotency_key}"
    ledger.post(
        session,
        shop.id,
        ledger.Entry(
            member_id=member_id, kind="bonus", points=action["points"], source_type="action", source_id=action_id,
            idempotency_key=key, rule_version=programme.rule_version(current["version"]),
            note=f"{action['title']} ({channel})",
        ),
    )  # fmt: skip
    outbox.record(
        session, shop.id, "points.earned", dedupe_key=f"points.earned:{shop.id}:{key}", member_id=member_id,
        data={"points": action["points"], "source_type": "action", "source_id": action_id},
    )  # fmt: skip
    return {**describe(row), "replayed": False}


def describe(row: ActionCompletion) -> dict[str, Any]:
    return {
        "action": row.action_id,
        "points": row.points,
        "channel": row.channel,
        "idempotency_key": row.idempotency_key,
        "completed_at": row.completed_at.isoformat(),
    }


def period_start(period: str, now: datetime, zone) -> datetime | None:
    """When the cap's current period began, in the shop's time zone (None: lifetime)."""
    local = now.astimezone(zone)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return midnight
    if period == "week":  # weeks start on Monday
        return midnight - timedelta(days=local.weekday())
    if period == "month":
        return midnight.replace(day=1)
    if period == "year":
        return midnight.replace(month=1, day=1)
    return None


def _check_limits(session, shop: Shop, member_id: int, action: dict[str, Any], now: datetime) -> None:
    mine = (
        ActionCompletion.shop_id == shop.id,
        ActionCompletion.member_id == member_id,
        ActionCompletion.action_id == action["id"],
    )
    if action["cooldown_minutes"]:
        last = session.execute(select(func.max(ActionCompletion.completed_at)).where(*mine)).scalar()
        if last is not None:
            ready = _aware(last) + timedelta(minutes=action["cooldown_minutes"])
            if ready > now:
                raise ActionRefused(
                    "action_cooldown",
                    f"{action['title']} can be completed again from {ready.isoformat()}",
                    {"action": [f"in its cooldown until {ready.isoformat()}"]},
                    retry_after_seconds=math.ceil((ready - now).total_seconds()),
                )
    cap = action.get("cap")
    if cap:
        start = period_start(cap["period"], now, shops.zone(shop))
        where = mine if start is None else (*mine, ActionCompletion.completed_at >= start)
        done = session.execute(select(func.count()).select_from(ActionCompletion).where(*where)).scalar_one()
        if done >= cap["count"]:
            per = "ever" if cap["period"] == "lifetime" else f"per {cap['period']}"
            raise ActionRefused(
                "action_cap_reached",
                f"{action['title']} earns at most {cap['count']} times {per}",
                {"action": [f"at most {cap['count']} times {per}"]},
            )


def _aware(moment: datetime) -> datetime:
    # SQLite's max() hands back the stored text's datetime without its zone: the column stores UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def available(session, shop: Shop, member_id: int | None, now: datetime | None = None) -> list[dict[str, Any]]:
    """The actions a shopper sees, with what they earn and whether they can be completed now."""
    now = now or utcnow()
    current = programme.current(session, shop.id)
    shown = []
    for action in current["actions"]:
        state = {"available": True, "reason": None}
        if member_id is not None:
            try:
                _check_limits(session, shop, member_id, action, now)
            except ActionRefused as refused:
                state = {"available": False, "reason": str(refused)}
        shown.append(
            {
                "id": action["id"], "title": action["title"], "kind": action["kind"], "points": action["points"],
                "url": action.get("url"), "network": action.get("network"),
                "questions": [{"key": q["key"], "text": q["text"], "type": q["type"]} for q in action["questions"]],
                **state,
            }
        )  # fmt: skip
    return shown
