"""Request bodies as JSON, refused with a ValueError (a 400 at every door) when no handler could use them."""

from __future__ import annotations

import json
import re
from typing import Any

from flask.json.provider import DefaultJSONProvider

# A lone UTF-16 surrogate: JSON may spell one (`"\ud800"`), but it is not a character, and PostgreSQL and SQLite
# refuse to encode it, which made every text field a 500. A paired escape (`"\ud83d\ude00"`) decodes to one
# character and never matches.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # cheap pre-check: only such a body can hold one


def loads(body: str | bytes) -> Any:
    """json.loads, with depth past the parser's limit and lone surrogates as ValueError (bytes must be UTF-8)."""
    text = body.decode("utf-8") if isinstance(body, bytes | bytearray) else body  # UnicodeDecodeError: a ValueError
    try:
        value = json.loads(text)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(text) and _holds_lone_surrogate(value):
        raise ValueError("the JSON body holds a lone UTF-16 surrogate, which is not a character")
    return value


def _holds_lone_surrogate(value: Any) -> bool:
    pending = [value]  # a loop, not recursion: the value may be nested nearly as deep as the parser allows
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, reading request bodies through `loads` (request.get_json: the App Proxy's redeem)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
