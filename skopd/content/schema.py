"""The part of JSON Schema a model's answer is checked against.

Types (one or a list), ``required``, ``properties``, ``items``, ``enum``; other keywords are
not checked. That is the part Ollama's ``format`` constrains generation with too, so a
bigger validator (``jsonschema`` and its four dependencies) would check nothing more here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

_TYPES: Final = frozenset({"string", "number", "integer", "boolean", "array", "object", "null"})
_MAX_DEPTH: Final = 32


class SchemaError(ValueError):
    """A schema we cannot use; the message says which part."""


def check_schema(schema: object, path: str = "schema") -> None:
    """Raise SchemaError when `schema` is not a JSON schema we can apply."""
    _check(schema, path, 0)


def _check(schema: object, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise SchemaError(f"{path}: nested too deeply")
    if not isinstance(schema, dict):
        raise SchemaError(f"{path}: must be a JSON object")
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    for k in kinds:
        if k not in _TYPES:
            raise SchemaError(f"{path}.type: unknown type {k!r}")
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise SchemaError(f"{path}.properties: must be an object")
        for name, sub in props.items():
            _check(sub, f"{path}.properties.{name}", depth + 1)
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        raise SchemaError(f"{path}.required: must be a list of property names")
    items = schema.get("items")
    if items is not None:
        _check(items, f"{path}.items", depth + 1)
    enum = schema.get("enum")
    if enum is not None and not isinstance(enum, list):
        raise SchemaError(f"{path}.enum: must be a list")


def violation(value: Any, schema: Mapping[str, Any], path: str = "$") -> str | None:
    """Where and how `value` breaks `schema`, or None when it fits."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
    if kinds and not any(_is(value, k) for k in kinds):
        return f"{path}: expected {' or '.join(kinds)}, got {_name(value)}"
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        return f"{path}: {value!r} is not one of {enum}"
    if isinstance(value, dict):
        for name in schema.get("required") or []:
            if name not in value:
                return f"{path}: missing required {name!r}"
        props = schema.get("properties") or {}
        for name, sub in props.items():
            if name in value and isinstance(sub, dict):
                found = violation(value[name], sub, f"{path}.{name}")
                if found:
                    return found
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, entry in enumerate(value):
            found = violation(entry, schema["items"], f"{path}[{i}]")
            if found:
                return found
    return None


def _is(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    return True


def _name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )
