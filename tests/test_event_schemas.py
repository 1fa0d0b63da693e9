"""The published event schemas (docs/events/) are current, and real events match them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plugin.services import event_schemas

DOCS = Path(__file__).resolve().parent.parent / "docs" / "events"
TYPES = {"integer": int, "string": str, "object": dict, "array": list, "null": type(None), "boolean": bool}


def problems(value: Any, schema: dict[str, Any], where: str = "$") -> list[str]:
    """A small JSON Schema check (type, const, enum, required, properties, additionalProperties, items)."""
    found = []
    if "const" in schema and value != schema["const"]:
        found.append(f"{where}: not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{where}: not one of {schema['enum']}")
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(isinstance(value, TYPES[t]) and not (t == "integer" and isinstance(value, bool)) for t in allowed):
            return [*found, f"{where}: {type(value).__name__} is not {allowed}"]
    if isinstance(value, dict):
        found += [f"{where}: {key} is missing" for key in schema.get("required", []) if key not in value]
        for key, item in value.items():
            if key in schema.get("properties", {}):
                found += problems(item, schema["properties"][key], f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                found.append(f"{where}: {key} is not allowed")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            found += problems(item, schema["items"], f"{where}[{index}]")
    return found


def test_the_published_schemas_are_current():
    written = {path.name.removesuffix(".schema.json"): json.loads(path.read_text()) for path in DOCS.glob("*.json")}
    assert written == event_schemas.all_schemas(), "run: flask --app plugin loyalty events schemas"


def test_an_envelope_missing_a_field_does_not_match():
    schema = event_schemas.schema("points.earned")
    assert problems({"type": "points.earned"}, schema)
    assert problems({"type": "points.expired"}, schema)
