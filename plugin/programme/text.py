"""A validator for free text kept in the programme's JSON: control characters (NUL first of all) refused."""

from __future__ import annotations

import re

from marshmallow import ValidationError

# PostgreSQL's jsonb and text refuse NUL (a 500 at save), and no control character belongs in a title or name.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def no_control(text: str) -> None:
    """Refuse text holding a control character, with a message the field's refusal shows."""
    if _CONTROL.search(text):
        raise ValidationError("must not contain control characters")


def has_control(text: str) -> bool:
    return bool(_CONTROL.search(text))
