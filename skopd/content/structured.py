"""Items a page states about itself: JSON-LD, microdata and RDFa, HTML tables, <meta>.

Without a schema, the JSON-LD, microdata and RDFa items as the page gives them. With a JSON
schema for one item (an object schema, or an array schema's ``items``), each property is
looked up by name (fields.py) in every item, table and definition list of the page and in
its <meta> tags, values are converted to the property's type, and the source that fills the
schema best wins. This is the fallback when no local model can extract items.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any, Final, NamedTuple
from urllib.parse import urljoin

import msgspec
from lxml import etree

from skopd.content.fields import Item, item_schema, map_item, names_for, norm
from skopd.content.tree import parse, text_of

_MAX_NODES: Final = 5000  # JSON-LD nodes visited per page
_MAX_ITEMS: Final = 1000
_URL_PROPS: Final = frozenset({"url", "link", "href", "uri", "website", "permalink"})


def structured_items(
    html: bytes | str, url: str, schema: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The page's items, mapped to `schema` when one is given; [] when nothing fits."""
    root = parse(html)
    if root is None:
        return []
    if schema is None:
        tops = [_without_context(n) for n in _jsonld_nodes(root, nested=False)]
        return (tops + list(_microdata(root, url)))[:_MAX_ITEMS]
    jsonld = _resolved(list(_jsonld_nodes(root, nested=True)))
    micro = list(_microdata(root, url))
    item = item_schema(schema)
    props = item.get("properties")
    if not isinstance(props, dict) or not props:
        return []
    best: list[Item] = []
    best_score = 0.0
    for source in (jsonld, micro):
        found, score = _fit([m for n in source if (m := map_item(n, item)) is not None], item)
        if score > best_score:
            best, best_score = found, score
    # Tables with the same columns (a listing cut into one table per category or page
    # section) are one source; a label/value table or a <dl> is an item of its own.
    tables: dict[tuple[str, ...], list[Item]] = {}
    singles: list[list[Item]] = []
    for table in root.iter("table"):
        columns, rows = _table_items(table, item, url)
        if rows:
            tables.setdefault(columns, []).extend(rows)
        singles.append(_pairs_item(_table_pairs(table), item, url))
    singles.extend(_pairs_item(_dl_pairs(dl), item, url) for dl in root.iter("dl"))
    # The page's own description counts when it says more than its title (a product
    # schema is not filled by the page's name alone).
    page_meta = map_item(_meta(root, url), item)
    if page_meta is not None and (len(page_meta) >= 2 or len(item["properties"]) == 1):
        singles.append([page_meta])
    for found in [*tables.values(), *singles]:
        kept, score = _fit(found, item)
        if score > best_score:
            best, best_score = kept, score
    return best[:_MAX_ITEMS]


def _without_context(node: Item) -> Item:
    return {k: v for k, v in node.items() if k != "@context"}


# ---------------------------------------------------------------- JSON-LD


def _jsonld_nodes(root: etree._Element, nested: bool) -> Iterator[Item]:
    """The JSON objects with an @type in the page's JSON-LD: those of each script's top
    level (a list, an @graph), and with `nested` the objects inside them too."""
    budget = _MAX_NODES
    for script in root.iter("script"):
        if (script.get("type") or "").split(";")[0].strip().lower() != "application/ld+json":
            continue
        try:
            data = msgspec.json.decode((script.text or "").strip().encode())
        except msgspec.DecodeError:
            continue
        queue: deque[Any] = deque([data])
        while queue and budget > 0:
            node = queue.popleft()
            budget -= 1
            if isinstance(node, list):
                queue.extend(node)
            elif isinstance(node, dict):
                if "@type" in node:
                    yield node
                    if not nested:
                        continue
                if "@type" not in node or nested:
                    queue.extend(v for v in node.values() if isinstance(v, dict | list))


def _resolved(nodes: list[Item]) -> list[Item]:
    """The nodes with references to other nodes of the page ({"@id": ...}, as Yoast and
    other @graph writers link an article to its author) replaced by those nodes."""
    known = {n["@id"]: n for n in nodes if isinstance(n.get("@id"), str) and len(n) > 2}
    if not known:
        return nodes

    def follow(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1 and value.get("@id") in known:
            return known[value["@id"]]
        if isinstance(value, list):
            return [follow(v) for v in value]
        return value

    return [{k: follow(v) for k, v in node.items()} for node in nodes]


# ---------------------------------------------------------------- <meta>

_META_NAMES: Final = {
    "og:title": "name", "twitter:title": "name", "og:description": "description",
    "twitter:description": "description", "description": "description", "og:image": "image",
    "twitter:image": "image", "og:url": "url", "og:type": "type", "og:site_name": "site",
    "article:published_time": "datePublished", "article:modified_time": "dateModified",
    "article:author": "author", "author": "author", "article:section": "category",
    "keywords": "keywords", "dc.title": "name", "dc.date": "date", "dc.creator": "author",
}  # fmt: skip


def _meta(root: etree._Element, url: str) -> Item:
    """What a page's <meta> tags (Open Graph, Twitter, Dublin Core) and <title> say about
    the page itself, under schema.org-like names; the first value of each wins."""
    found: Item = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or "").strip().lower()
        name = _META_NAMES.get(key)
        value = " ".join((meta.get("content") or "").split())
        if name and value and name not in found:
            found[name] = urljoin(url, value) if name in ("image", "url") else value
    if "name" not in found:
        title = next(root.iter("title"), None)
        if title is not None and text_of(title):
            found["name"] = text_of(title)
    canonical = next((ln for ln in root.iter("link") if ln.get("rel") == "canonical"), None)
    if "url" not in found and canonical is not None and canonical.get("href"):
        found["url"] = urljoin(url, canonical.get("href") or "")
    return found


# ---------------------------------------------------------------- microdata and RDFa

_VALUE_ATTR: Final = {
    "meta": "content", "a": "href", "link": "href", "area": "href", "img": "src",
    "audio": "src", "video": "src", "source": "src", "iframe": "src", "embed": "src",
    "object": "data", "time": "datetime", "data": "value", "meter": "value",
}  # fmt: skip
_URL_ATTRS: Final = frozenset({"href", "src", "data", "resource"})
_MAX_NESTING: Final = 5


class _Flavor(NamedTuple):
    scope: str  # the attribute that opens an item
    prop: str  # the attribute that names a property
    kind: str  # the attribute that names the item's type


_FLAVORS: Final = (
    _Flavor("itemscope", "itemprop", "itemtype"),
    _Flavor("typeof", "property", "typeof"),
)


def _microdata(root: etree._Element, url: str) -> Iterator[Item]:
    """Microdata items, then RDFa Lite ones (Drupal, many government sites), top level."""
    for flavor in _FLAVORS:
        for element in root.iter():
            if element.get(flavor.scope) is not None and element.get(flavor.prop) is None:
                yield _micro_item(element, url, flavor, 0)


def _micro_item(scope: etree._Element, url: str, flavor: _Flavor, depth: int) -> Item:
    item: Item = {}
    kind = (scope.get(flavor.kind) or "").split()
    if kind:
        item["@type"] = re.split(r"[/:#]", kind[0].rstrip("/"))[-1]
    for element in _props(scope, flavor):
        value: Any
        if element.get(flavor.scope) is not None and depth < _MAX_NESTING:
            value = _micro_item(element, url, flavor, depth + 1)
        else:
            value = _micro_value(element, url)
        for name in (element.get(flavor.prop) or "").split():
            name = name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]  # "schema:name", "dc:title"
            if name in item:
                previous = item[name]
                item[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                item[name] = value
    return item


def _props(scope: etree._Element, flavor: _Flavor) -> Iterator[etree._Element]:
    """The property elements of a scope, in document order, not those of the items
    nested in it."""
    stack = list(reversed([c for c in scope if isinstance(c.tag, str)]))
    while stack:
        child = stack.pop()
        if child.get(flavor.prop) is not None:
            yield child
        if child.get(flavor.scope) is None:
            stack.extend(reversed([c for c in child if isinstance(c.tag, str)]))


def _micro_value(element: etree._Element, url: str) -> str:
    for attr in ("content", "resource", _VALUE_ATTR.get(str(element.tag))):
        if attr is not None and element.get(attr) is not None:
            value = (element.get(attr) or "").strip()
            return urljoin(url, value) if attr in _URL_ATTRS else value
    return text_of(element)


# ---------------------------------------------------------------- tables


def _cells(row: etree._Element) -> list[etree._Element]:
    return [c for c in row.iterchildren("td", "th")]


def _rows(table: etree._Element) -> list[etree._Element]:
    """The rows of this table, not of tables nested in it."""
    rows: list[etree._Element] = []
    for child in table.iterchildren():
        if child.tag == "tr":
            rows.append(child)
        elif child.tag in ("thead", "tbody", "tfoot"):
            rows.extend(child.iterchildren("tr"))
    return rows


def _table_items(
    table: etree._Element, item: Mapping[str, Any], url: str
) -> tuple[tuple[str, ...], list[Item]]:
    """(the table's normalized headers, an item per row) for a table with a header row."""
    rows = _rows(table)
    if len(rows) < 2:
        return (), []
    first = _cells(rows[0])
    if len({c.tag for c in first}) > 1:
        return (), []  # a row header and its value: a two-column description
    headers = [text_of(c) for c in first]
    props: dict[str, Any] = item["properties"]
    column = _columns(headers, list(props))
    if not column:
        return (), []
    link_prop = next((p for p in props if norm(p) in _URL_PROPS and p not in column.values()), None)
    items: list[Item] = []
    for row in rows[1:]:
        cells = _cells(row)
        if not cells or (all(c.tag == "th" for c in cells) and len(rows) > 2 and row is rows[1]):
            continue
        raw: Item = {}
        for index, prop in column.items():
            if index < len(cells):
                cell = cells[index]
                raw[prop] = _cell_value(cell, props[prop], prop, url)
        if link_prop is not None:
            href = next((a.get("href") for a in row.iter("a") if a.get("href")), None)
            if href:
                raw[link_prop] = urljoin(url, href)
        mapped = map_item(raw, item)
        if mapped is not None:
            items.append(mapped)
    return tuple(norm(h) for h in headers), items


def _columns(headers: list[str], props: list[str]) -> dict[int, str]:
    """Which property each column holds: a header equal to the property's name or one of
    its synonyms first, then a header with that name as one of its words ("Item name",
    "Price (EUR)")."""
    whole = [norm(h) for h in headers]
    words = [{norm(w) for w in re.split(r"[\W_]+", h)} for h in headers]
    column: dict[int, str] = {}
    for match in (lambda i, n: whole[i] == n, lambda i, n: n in words[i]):
        for prop in props:
            if prop in column.values():
                continue
            for name in names_for(prop):
                index = next(
                    (i for i in range(len(headers)) if i not in column and match(i, name)), None
                )
                if index is not None:
                    column[index] = prop
                    break
    return column


def _table_pairs(table: etree._Element) -> list[tuple[etree._Element, etree._Element]]:
    """(label cell, value cell) of a two-column table that describes one thing."""
    rows = [_cells(r) for r in _rows(table)]
    if len(rows) < 2 or any(len(cells) != 2 for cells in rows):
        return []
    return [(cells[0], cells[1]) for cells in rows]


def _dl_pairs(dl: etree._Element) -> list[tuple[etree._Element, etree._Element]]:
    pairs: list[tuple[etree._Element, etree._Element]] = []
    term: etree._Element | None = None
    for child in dl.iter("dt", "dd"):
        if child.tag == "dt":
            term = child
        elif term is not None:
            pairs.append((term, child))
            term = None
    return pairs


def _pairs_item(
    pairs: list[tuple[etree._Element, etree._Element]], item: Mapping[str, Any], url: str
) -> list[Item]:
    """One item from label/value pairs ("Price: 12 EUR"), labels matched to properties."""
    if len(pairs) < 2:
        return []
    props: dict[str, Any] = item["properties"]
    labels = [text_of(label).rstrip(":").strip() for label, _ in pairs]
    column = _columns(labels, list(props))
    raw = {prop: _cell_value(pairs[i][1], props[prop], prop, url) for i, prop in column.items()}
    mapped = map_item(raw, item) if raw else None
    return [mapped] if mapped is not None else []


def _cell_value(cell: etree._Element, prop_schema: Any, prop: str, url: str) -> Any:
    if norm(prop) in _URL_PROPS:
        href = next((a.get("href") for a in cell.iter("a") if a.get("href")), None)
        if href:
            return urljoin(url, href)
    return text_of(cell)


# ---------------------------------------------------------------- fit


def _fit(items: list[Item], item: Mapping[str, Any]) -> tuple[list[Item], float]:
    """The items that fill the schema well enough, and how well they fill it."""
    props = item.get("properties") or {}
    required = [r for r in item.get("required", []) if r in props]
    complete = [i for i in items if all(r in i for r in required)]
    if not complete:
        return [], 0.0
    # Half the properties at least (a page's Organization that only has a name is not one
    # of its products); without required ones, also near the best item.
    need = max(1, len(required), (len(props) + 1) // 2)
    if not required:
        need = max(need, max(map(len, complete)) - len(props) // 4)
    kept = [i for i in complete if len(i) >= need]
    if not kept:
        return [], 0.0
    score = sum(len(i) for i in kept) / (len(kept) * len(props))
    return kept, score + min(len(kept), 100) / 1000  # ties go to the source with more items
