"""The JSON Schema subset that model answers are checked against."""

from __future__ import annotations

from typing import Any

import pytest

from skopd.content.schema import SchemaError, check_schema, violation

EVENT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "year": {"type": "integer"},
        "price": {"type": ["number", "null"]},
        "status": {"type": "string", "enum": ["planned", "held"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "place": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
    "required": ["name"],
}


@pytest.mark.parametrize(
    "value",
    [
        {"name": "Fair"},
        {"name": "Fair", "year": 2024, "price": None, "status": "held", "tags": ["a"]},
        {"name": "Fair", "year": 2024.0, "price": 3, "place": {"city": "Oakvale"}},
        {"name": "Fair", "unknown": [1, 2]},  # other properties are allowed
    ],
)
def test_fitting_values(value: Any) -> None:
    assert violation(value, EVENT) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({}, "$: missing required 'name'"),
        ([], "$: expected object, got array"),
        ({"name": 5}, "$.name: expected string, got integer"),
        ({"name": "F", "year": 2024.5}, "$.year: expected integer, got number"),
        ({"name": "F", "year": True}, "$.year: expected integer, got boolean"),
        ({"name": "F", "price": "3"}, "$.price: expected number or null, got string"),
        ({"name": "F", "status": "maybe"}, "$.status: 'maybe' is not one of ['planned', 'held']"),
        ({"name": "F", "tags": ["a", 2]}, "$.tags[1]: expected string, got integer"),
        ({"name": "F", "place": {}}, "$.place: missing required 'city'"),
    ],
)
def test_violations_say_where_and_what(value: Any, problem: str) -> None:
    assert violation(value, EVENT) == problem


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ([], "schema: must be a JSON object"),
        ({"type": "text"}, "schema.type: unknown type 'text'"),
        ({"properties": []}, "schema.properties: must be an object"),
        ({"properties": {"a": {"type": "strin"}}}, "schema.properties.a.type: unknown type"),
        ({"required": "name"}, "schema.required: must be a list of property names"),
        ({"items": 5}, "schema.items: must be a JSON object"),
        ({"enum": "a"}, "schema.enum: must be a list"),
    ],
)
def test_unusable_schemas_are_refused_with_their_path(schema: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace("[", r"\[")):
        check_schema(schema)


def test_nesting_is_bounded() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}
    with pytest.raises(SchemaError, match="nested too deeply"):
        check_schema(schema)
    check_schema(EVENT)
