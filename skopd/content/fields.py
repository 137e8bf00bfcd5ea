"""Matching a page's values to a JSON schema's properties, by name and by type.

Names match when equal once case, spaces, underscores, hyphens and punctuation are ignored,
or through a few common synonyms (title/name/headline, date/datePublished, price/cost, ...);
a value is converted to the property's JSON type ("1.234,56 €" to 1234.56, "yes" to true,
{"name": ...} to its name), or left out when it cannot be.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

Item = dict[str, Any]

_SYNONYMS: Final = (
    ("name", "title", "headline", "label", "heading", "bezeichnung", "titel"),
    ("url", "link", "href", "uri", "website", "permalink"),
    ("date", "datepublished", "published", "publishdate", "startdate", "datecreated",
     "uploaddate", "datum", "publicationdate", "pubdate"),
    ("description", "summary", "abstract", "excerpt", "teaser", "beschreibung"),
    ("price", "cost", "amount", "preis", "lowprice"),
    ("currency", "pricecurrency"),
    ("author", "creator", "by", "writer", "autor"),
    ("image", "thumbnail", "thumbnailurl", "picture", "photo", "bild"),
    ("location", "place", "venue", "ort"),
    ("category", "genre", "section", "kategorie", "articlesection"),
    ("size", "filesize", "contentsize", "grosse"),
    ("type", "filetype", "format", "encodingformat", "typ"),
)  # fmt: skip
_NESTED: Final = ("offers", "location", "address", "author", "aggregateRating")
_NUMBER: Final = re.compile(r"-?\d[\d.,'\s]*")


def norm(name: str) -> str:
    """A name as it is compared: "Item Name", "item_name" and "itemName" are "itemname"."""
    return re.sub(r"[^0-9a-z]", "", name.casefold().replace("ß", "ss").replace("ö", "o"))


_GROUP: Final[dict[str, tuple[str, ...]]] = {
    norm(word): tuple(norm(w) for w in group) for group in _SYNONYMS for word in group
}


def names_for(prop: str) -> tuple[str, ...]:
    """The normalized names a property may go by, its own first."""
    own = norm(prop)
    return (own, *(w for w in _GROUP.get(own, ()) if w != own))


def item_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema of one item: an array schema's items, else the schema itself."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return dict(schema["items"])
    return dict(schema)


def map_item(node: Mapping[str, Any], item: Mapping[str, Any]) -> Item | None:
    """`node`'s values for the item schema's properties, converted to their types; None
    when not one property could be filled."""
    props: dict[str, Any] = item.get("properties") or {}
    keys = {norm(str(k)): k for k in node}
    out: Item = {}
    for prop, prop_schema in props.items():
        value = _lookup(node, keys, prop)
        if value is None:
            continue
        converted = coerce(value, prop_schema if isinstance(prop_schema, dict) else {})
        if converted is not None:
            out[prop] = converted
    return out or None


def _lookup(node: Mapping[str, Any], keys: dict[str, Any], prop: str) -> Any:
    for name in names_for(prop):
        if name in keys and node[keys[name]] not in (None, "", []):
            return node[keys[name]]
    for nested in _NESTED:
        inner = node.get(nested)
        if isinstance(inner, list) and inner and isinstance(inner[0], dict):
            inner = inner[0]
        if isinstance(inner, dict):
            inner_keys = {norm(str(k)): k for k in inner}
            for name in names_for(prop)[:1]:
                if name in inner_keys and inner[inner_keys[name]] not in (None, "", []):
                    return inner[inner_keys[name]]
    return None


def coerce(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` as the JSON type `schema` asks for, or None when it cannot be."""
    kind = schema.get("type")
    if isinstance(kind, list):
        for option in kind:
            if option == "null":
                continue
            converted = coerce(value, {**schema, "type": option})
            if converted is not None:
                return converted
        return None
    if kind == "array":
        items = schema.get("items")
        inner: Mapping[str, Any] = items if isinstance(items, dict) else {}
        values = value if isinstance(value, list) else [value]
        out = [c for v in values if (c := coerce(v, inner)) is not None]
        return out or None
    if isinstance(value, list):
        value = value[0] if value else None
        if value is None:
            return None
    result = _scalar(value, kind, schema)
    enum = schema.get("enum")
    if result is not None and isinstance(enum, list) and result not in enum:
        return None
    return result


def _scalar(value: Any, kind: Any, schema: Mapping[str, Any]) -> Any:
    if kind == "object":
        if isinstance(value, dict):
            return map_item(value, schema) if schema.get("properties") else value
        return None
    if isinstance(value, dict):
        for key in ("@value", "name", "url", "text", "@id", "price"):
            if key in value and not isinstance(value[key], dict | list):
                value = value[key]
                break
        else:
            return None
    if kind in ("number", "integer"):
        number = _number(value)
        if number is None:
            return None
        if kind == "integer":
            return int(number) if number == int(number) else None
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in ("true", "yes", "1", "ja") else False if text in (
            "false", "no", "0", "nein"
        ) else None  # fmt: skip
    if kind in ("string", None):
        if isinstance(value, bool):
            return "true" if value else "false"
        text = " ".join(str(value).split())
        return text or None
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = _NUMBER.search(str(value))
    if found is None:
        return None
    text = re.sub(r"[\s']", "", found.group()).rstrip(".,")
    if "," in text and "." in text:
        # the later separator is the decimal one: 1.234,56 or 1,234.56
        if text.rfind(",") > text.rfind("."):
            text = text.replace(".", "").replace(",", ".")
        else:
            text = text.replace(",", "")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = text.replace(",", "") if len(tail) == 3 and head else text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return None
