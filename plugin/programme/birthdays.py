"""Birthdays as pure functions: a valid month and day, and whether a day is a member's birthday (or its month)."""

from __future__ import annotations

import calendar
import re
from datetime import date

_DATE = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$")


def problems(month: object, day: object) -> dict[str, list[str]]:
    """Per-field messages for a month and day that are not a birthday; empty when they are (29 February is)."""
    if not isinstance(month, int) or isinstance(month, bool) or not 1 <= month <= 12:
        return {"month": ["a month from 1 to 12"]}
    if not isinstance(day, int) or isinstance(day, bool) or day < 1:
        return {"day": ["a day of the month from 1"]}
    longest = calendar.monthrange(2024, month)[1]  # a leap year: 29 February is somebody's birthday
    if day > longest:
        return {"day": [f"{calendar.month_name[month]} has {longest} days"]}
    return {}


def parse(value: str) -> tuple[int, int] | None:
    """A birthday from a metafield's text: "1990-02-28" (a date, the year ignored) or "02-28"; None if not one."""
    found = _DATE.match(value.strip())
    if not found:
        return None
    month, day = int(found.group(2)), int(found.group(3))
    return None if problems(month, day) else (month, day)


def falls_on(month: int, day: int, today: date) -> bool:
    """Whether `today` is the birthday; 29 February is kept on the 28th in years without one."""
    if (month, day) == (2, 29) and not calendar.isleap(today.year):
        return (today.month, today.day) == (2, 28)
    return (today.month, today.day) == (month, day)


def due(month: int, day: int, today: date, when: str) -> bool:
    """Whether the bonus is due today: on the day itself, or on any day of the birthday's month."""
    return today.month == month if when == "month" else falls_on(month, day, today)
