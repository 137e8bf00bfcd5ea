"""Parsing one HTML page into its title, language, visible text size and outgoing links."""

from __future__ import annotations

import codecs
import re
import threading
from collections.abc import Sequence

import msgspec
from lxml import etree

from skopd.crawl.urls import join_link

_TEXT_MAX = 300
_TITLE_MAX = 300
_HEADING_MAX = 200
_CONTEXT_MAX = 400

_LINK_ATTRS = {
    "a": "href",
    "area": "href",
    "iframe": "src",
    "frame": "src",
    "embed": "src",
    "object": "data",
}
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_LABELLED = frozenset({"details", "table", "dl", "fieldset"})  # containers named by a child
_SOURCE_TAGS = (*_LINK_ATTRS, "meta", "base", "title")  # what parse_page needs
_SCAN_TAGS = (*_LINK_ATTRS, "meta", *_HEADINGS, *_LABELLED)  # what describe needs
# The context of a link is the text of the nearest of these around it.
_ROWS = _HEADINGS | {"tr", "li", "dd", "dt", "p", "figure", "caption", "summary", "legend"}
_BLOCKS = frozenset(
    {
        "div", "td", "th", "section", "article", "main", "header", "footer", "nav", "aside",
        "body", "form", "fieldset", "details", "blockquote", "address", "center", "table",
        "ul", "ol", "dl", "figcaption", "pre",
    }
)  # fmt: skip
# Elements whose boundaries separate words, as a browser's rendering would.
_BREAKS = _ROWS | _BLOCKS | {"br", "hr", "td", "th", "option", "img"}
_INVISIBLE = ("script", "style", "template")

_HEADER_CHARSET = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:\-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta[^>]*?charset\s*=\s*[\"']?\s*([\w.:\-]+)", re.IGNORECASE)
_XML_CHARSET = re.compile(rb"\s*<\?xml[^>]*?encoding\s*=\s*[\"']([\w.:\-]+)")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Browsers (WHATWG Encoding) read these labels as the supersets real pages are written in.
_SUPERSETS = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
    "big5": "big5hkscs",
}
_ALIASES = {"x-sjis": "cp932", "windows-31j": "cp932", "x-user-defined": "cp1252"}
_META_SCAN_BYTES = 8192
_MAX_DEPTH = 200
_REFRESH = re.compile(r"^\s*[\d.]*\s*[;,]?\s*(?:url\s*=\s*)?(.*)$", re.IGNORECASE | re.DOTALL)


_NAMED_BY = {"details": "summary", "table": "caption", "fieldset": "legend"}
# Labels of the containers around an element: (container's document position, label element).
_Labels = tuple[tuple[int, etree._Element], ...]
# (nearest row-like element, nearest block element, enclosing heading, container labels)
_Ancestry = tuple[etree._Element | None, etree._Element | None, etree._Element | None, _Labels]
_NO_ANCESTRY: _Ancestry = (None, None, None, ())


class Link(msgspec.Struct, gc=False):
    """One distinct link target of a page, with the words a reader sees around it.

    url: absolute, fragment removed, otherwise as the page wrote it. text: the link's text
    with image alts; texts of later links to the same url are merged in, " | "-separated.
    heading: the labels over the link, most specific first: <summary>, <caption>, <dt>,
    <legend> of its containers and the nearest preceding h1-h6. context: the text of the
    enclosing row, list item or paragraph (a window of it when long). tag: the element.
    heading and context stay "" until Page.describe fills them.
    """

    url: str
    text: str
    title: str
    heading: str
    context: str
    tag: str


class Page:
    """A parsed page and its links, holding the parsed tree until describe() or release().

    Most links of a page were seen on earlier pages, so their heading and context are
    computed only by describe(), for the links the caller keeps.
    """

    __slots__ = ("_root", "_sources", "_text", "base_url", "lang", "links", "title", "url")

    def __init__(
        self,
        url: str,
        base_url: str,
        title: str,
        lang: str,
        links: list[Link],
        root: etree._Element | None = None,
        sources: dict[str, etree._Element] | None = None,
    ) -> None:
        self.url = url
        self.base_url = base_url
        self.title = title
        self.lang = lang
        self.links = links
        self._root = root
        self._sources = sources or {}  # link url -> the first element linking it
        self._text: int | None = None if root is not None else 0

    @property
    def text_chars(self) -> int:
        """Visible text characters of the body, to tell JavaScript shells apart.

        Computed on first read, which must come before describe() or release().
        """
        if self._text is None:
            if self._root is None:
                raise RuntimeError(f"text_chars of {self.url} read after its tree was released")
            self._text = _text_chars(self._root)
        return self._text

    def describe(self, links: Sequence[Link]) -> None:
        """Fill heading and context of `links`, links of this page, then release the tree."""
        if links:
            if self._root is None:
                raise RuntimeError(f"{self.url} was released before describe()")
            _Description(self._root, self._elements(links)).fill()
        self.release()

    def release(self) -> None:
        """Drop the parsed tree; describe() and a first read of text_chars need it."""
        self._root = None
        self._sources = {}

    def _elements(self, links: Sequence[Link]) -> dict[etree._Element, Link]:
        found: dict[etree._Element, Link] = {}
        for link in links:
            element = self._sources.get(link.url)
            if element is None:
                raise ValueError(f"{link.url} is not a link of {self.url}")
            found[element] = link
        return found


def parse_page(body: bytes, url: str, content_type: str | None = None) -> Page:
    """Parse an HTML body into a Page; empty or unparseable bodies give a Page without links.

    The charset comes from a BOM, then the Content-Type header, then a <meta> or XML
    declaration, then UTF-8 if the bytes are valid UTF-8, else windows-1252.
    """
    root = _parse(body, content_type)
    if root is None:
        return Page(url, url, "", "", [])
    etree.strip_elements(root, *_INVISIBLE, with_tail=False)
    found, base_href, title_element = _sources(root)
    base = url
    if base_href:
        base = join_link(url, base_href) or url
    if title_element is None:
        title_element = next(root.iter("h1"), None)
    title = _text(title_element)[:_TITLE_MAX] if title_element is not None else ""
    lang = (root.get("lang") or root.get("xml:lang") or "").strip()
    links, sources = _links(found, base)
    return Page(url, base, title, lang, links, root, sources)


def _parse(body: bytes, content_type: str | None) -> etree._Element | None:
    text = _as_utf8(body, content_type)
    if b"\0" in text:  # libxml2 stops at a NUL; browsers read it as U+FFFD and go on
        text = text.replace(b"\0", "\ufffd".encode())
    try:
        return etree.fromstring(text, _parser())
    except (etree.LxmlError, ValueError):
        return None


_local = threading.local()


def _parser() -> etree.HTMLParser:
    # lxml parsers must not be shared between threads; the engine may parse in a pool.
    parser: etree.HTMLParser | None = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.HTMLParser(
            encoding="utf-8",
            recover=True,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
            huge_tree=True,  # else libxml2 drops everything nested deeper than 256
        )
        _local.parser = parser
    return parser


def _as_utf8(body: bytes, content_type: str | None) -> bytes:
    """The body re-encoded as UTF-8, so that lxml never guesses."""
    encoding = None
    for bom, bom_encoding in _BOMS:
        if body.startswith(bom):
            body, encoding = body[len(bom) :], bom_encoding
            break
    if encoding is None and content_type:
        declared = _HEADER_CHARSET.search(content_type)
        if declared is not None:
            encoding = _codec(declared.group(1))
    if encoding is None:
        head = body[:_META_SCAN_BYTES]
        meta = _XML_CHARSET.match(head) or _META_CHARSET.search(head)
        if meta is not None:
            encoding = _codec(meta.group(1).decode("ascii", "replace"), from_meta=True)
    if encoding is None or encoding == "utf-8":
        if encoding == "utf-8" or body.isascii():
            return body  # lxml 6's libxml2 reads invalid UTF-8 as U+FFFD, as Python would
        try:
            body.decode("utf-8")
            return body
        except UnicodeDecodeError:
            encoding = "cp1252"
    return body.decode(encoding, "replace").encode("utf-8")


def _codec(label: str, from_meta: bool = False) -> str | None:
    try:
        name = codecs.lookup(_ALIASES.get(label.lower(), label)).name
    except LookupError:
        return None
    if from_meta and name.startswith("utf-16"):
        return "utf-8"  # a page that could declare this in ASCII is not UTF-16
    return _SUPERSETS.get(name, name)


def _sources(
    root: etree._Element,
) -> tuple[list[tuple[etree._Element, str]], str | None, etree._Element | None]:
    """Link elements with their targets in document order, the <base> href, the <title>."""
    found: list[tuple[etree._Element, str]] = []
    base_href: str | None = None
    title_element: etree._Element | None = None
    for element in root.iter(*_SOURCE_TAGS):
        tag = element.tag
        attr = _LINK_ATTRS.get(tag)  # type: ignore[call-overload]
        if attr is not None:
            target = element.get(attr)
            if target:
                found.append((element, target))
        elif tag == "meta":
            target = _refresh_target(element)
            if target:
                found.append((element, target))
        elif tag == "base":
            if base_href is None:
                base_href = element.get("href") or None
        elif title_element is None and next(element.iterancestors("svg"), None) is None:
            # an <svg>'s <title> names the image, not the page
            title_element = element
    return found, base_href, title_element


def _links(
    found: list[tuple[etree._Element, str]], base: str
) -> tuple[list[Link], dict[str, etree._Element]]:
    """The distinct links of `found`, and for each url the first element linking it."""
    joined_cache: dict[str, str | None] = {}
    links: dict[str, Link] = {}
    sources: dict[str, etree._Element] = {}
    merged: dict[str, list[str]] = {}  # texts of urls linked more than once
    for element, target in found:
        if target in joined_cache:
            url = joined_cache[target]
        else:
            url = joined_cache[target] = join_link(base, target)
        if url is None:
            continue
        tag: str = element.tag  # type: ignore[assignment]
        text = _link_text(element, tag)
        link = links.get(url)
        if link is None:
            title = _collapse(element.get("title"))
            links[url] = Link(url, text[:_TEXT_MAX], title, "", "", tag)
            sources[url] = element
            continue
        parts = merged.get(url)
        if parts is None:
            parts = merged[url] = [link.text] if link.text else []
        if text and text.casefold() not in (part.casefold() for part in parts):
            parts.append(text)
        if not link.title:
            link.title = _collapse(element.get("title"))
    for url, parts in merged.items():
        if len(parts) > 1:
            links[url].text = " | ".join(parts)[:_TEXT_MAX]
    return list(links.values()), sources


class _Description:
    """Headings and contexts of some links of one page; holds the per-page caches."""

    def __init__(self, root: etree._Element, wanted: dict[etree._Element, Link]) -> None:
        self.root = root
        self.wanted = wanted
        self.positions: dict[etree._Element, int] = {}
        self.heading_before: dict[etree._Element, etree._Element | None] = {}
        self.texts: dict[etree._Element, str] = {}
        self.blocks: dict[etree._Element, tuple[str, dict[etree._Element, int]]] = {}
        self.labels: dict[etree._Element, etree._Element | None] = {}
        self.ancestry: dict[etree._Element, _Ancestry] = {}
        self.headings: dict[tuple[_Labels, etree._Element | None], str] = {}

    def fill(self) -> None:
        for element, heading in self._scan().items():
            self._describe(self.wanted[element], element, heading)

    def _scan(self) -> dict[etree._Element, etree._Element | None]:
        """One pass in document order: the heading before each wanted link.

        It stops at the last wanted link: the containers and headings that describe a
        link all start before it.
        """
        wanted = self.wanted
        before: dict[etree._Element, etree._Element | None] = {}
        positions = self.positions
        heading: etree._Element | None = None
        for order, element in enumerate(self.root.iter(*_SCAN_TAGS)):
            tag = element.tag
            if tag in _HEADINGS:
                positions[element] = order
                self.heading_before[element] = heading
                heading = element
            elif tag in _LABELLED:
                positions[element] = order
            if element in wanted:
                before[element] = heading
                if len(before) == len(wanted):
                    break
        return before

    def _describe(
        self, link: Link, element: etree._Element, heading: etree._Element | None
    ) -> None:
        row, block, in_heading, labels = self._ancestry(element)
        if in_heading is not None:
            # A heading that is itself the link says nothing new; the one before it does.
            heading = self.heading_before.get(in_heading)
        block = row if row is not None else block
        text = _link_text(element, link.tag)
        link.heading = self._heading(labels, heading)
        link.context = self._context(block, element, text) if block is not None else text

    def _ancestry(self, element: etree._Element) -> _Ancestry:
        """What the ancestors of `element` tell about it, memoised along the whole path."""
        known = self.ancestry
        chain: list[etree._Element] = []
        info = _NO_ANCESTRY
        node: etree._Element | None = element
        while node is not None:
            cached = known.get(node)
            if cached is not None:
                info = cached
                break
            chain.append(node)
            node = node.getparent()
        for node in reversed(chain):
            info = known[node] = self._descend(info, node)
        return info

    def _descend(self, info: _Ancestry, node: etree._Element) -> _Ancestry:
        row, block, heading, labels = info
        tag = node.tag
        if tag in _ROWS:
            row = node
        elif tag in _BLOCKS:
            block = node
        if tag in _HEADINGS:
            heading = node
        parent = node.getparent()
        if parent is None:
            return row, block, heading, labels
        name_tag = _NAMED_BY.get(parent.tag)  # type: ignore[call-overload]
        if name_tag is not None and tag != name_tag:
            if parent not in self.labels:
                self.labels[parent] = parent.find(name_tag)
            label = self.labels[parent]
            if label is not None:
                labels = (*labels, (self.positions.get(parent, -1), label))
        elif tag == "dd":
            term = _term(parent, node)
            if term is not None:
                labels = (*labels, (self.positions.get(term[0], -1), term[1]))
        return row, block, heading, labels

    def _heading(self, labels: _Labels, heading: etree._Element | None) -> str:
        key = (labels, heading)
        cached = self.headings.get(key)
        if cached is not None:
            return cached
        if heading is not None:
            labels = (*labels, (self.positions[heading], heading))
        parts: list[str] = []
        # A label that starts later in the document is nested deeper: the most specific.
        for _, label in sorted(labels, key=lambda item: item[0], reverse=True):
            text = self.text(label)
            if text and text not in parts:
                parts.append(text)
        cached = self.headings[key] = " / ".join(parts)[:_HEADING_MAX]
        return cached

    def _context(self, block: etree._Element, element: etree._Element, text: str) -> str:
        cached = self.blocks.get(block)
        if cached is None:
            parts: list[str] = []
            marks: dict[etree._Element, int] = {}
            _gather(block, parts, marks)
            full = " ".join("".join(parts).split())
            if len(full) > _CONTEXT_MAX:
                full, offsets = _collapse_marked(parts, marks)
            else:
                offsets = {}
            cached = self.blocks[block] = (full, offsets)
        full, offsets = cached
        if len(full) <= _CONTEXT_MAX:
            return full
        # Long blocks (a layout table's row, a div of links) give a window around a link.
        middle = offsets.get(element, 0) + len(text) // 2
        start = max(0, min(middle - _CONTEXT_MAX // 2, len(full) - _CONTEXT_MAX))
        window = full[start : start + _CONTEXT_MAX]
        # Cut at word boundaries, unless a single word fills the window.
        if start > 0 and " " in window[:40]:
            window = window[window.index(" ") + 1 :]
        if start + _CONTEXT_MAX < len(full) and " " in window[-40:]:
            window = window[: window.rindex(" ")]
        return window

    def text(self, element: etree._Element) -> str:
        """Visible text of `element`, with image alt texts, whitespace collapsed."""
        cached = self.texts.get(element)
        if cached is None:
            cached = self.texts[element] = _text(element)
        return cached


def _link_text(element: etree._Element, tag: str) -> str:
    if tag == "a":
        return _text(element)
    if tag == "area":
        return _collapse(element.get("alt"))
    return ""


def _text(element: etree._Element) -> str:
    """Visible text of `element`, with image alt texts, whitespace collapsed."""
    return _flatten(element) if len(element) else _collapse(element.text)


def _text_chars(root: etree._Element) -> int:
    """The length of the body's whitespace-collapsed text, without <noscript> text."""
    count = root.xpath("string-length(normalize-space(//body))")
    total = int(count) if isinstance(count, float) else 0
    for noscript in root.iter("noscript"):
        total -= len(_text(noscript))
    return max(total, 0)


def _term(
    parent: etree._Element, description: etree._Element
) -> tuple[etree._Element, etree._Element] | None:
    """(the <dl>, the <dt> naming it) for a <dd> that is a child of `parent`."""
    container: etree._Element | None = parent
    if parent.tag == "div":  # <dl><div><dt/><dd/></div></dl> groups are allowed
        container = parent.getparent()
    if container is None or container.tag != "dl":
        return None
    term = next(description.itersiblings("dt", preceding=True), None)
    return None if term is None else (container, term)


def _refresh_target(meta: etree._Element) -> str | None:
    if (meta.get("http-equiv") or "").strip().lower() != "refresh":
        return None
    match = _REFRESH.match(meta.get("content") or "")
    if match is None:
        return None
    return match.group(1).strip().strip("'\"").strip() or None


def _collapse(text: str | None) -> str:
    return " ".join(text.split()) if text else ""


def _collapse_marked(
    parts: list[str], marks: dict[etree._Element, int]
) -> tuple[str, dict[etree._Element, int]]:
    """The collapsed text of `parts` and where each marked link's first word lands in it."""
    by_index: dict[int, list[etree._Element]] = {}
    for element, index in marks.items():
        by_index.setdefault(index, []).append(element)
    boundaries = sorted(by_index.keys() | {0})
    out: list[str] = []
    offsets: dict[etree._Element, int] = {}
    waiting: list[etree._Element] = []  # links whose first word is still to come
    length = 0
    space = False  # whether whitespace separates the text so far from the next word
    # Collapsing the pieces between two links at once gives the same text, in C.
    for start, end in zip(boundaries, [*boundaries[1:], len(parts)], strict=True):
        waiting.extend(by_index.get(start, ()))
        chunk = "".join(parts[start:end])
        collapsed = " ".join(chunk.split())
        if not collapsed:
            space = space or bool(chunk)
            continue
        if length and (space or chunk[0].isspace()):
            out.append(" ")
            length += 1
        for element in waiting:
            offsets[element] = length
        waiting.clear()
        out.append(collapsed)
        length += len(collapsed)
        space = chunk[-1].isspace()
    return "".join(out), offsets


def _flatten(root: etree._Element) -> str:
    """The visible text below `root` with image alt texts, whitespace collapsed."""
    parts: list[str] = []
    _gather(root, parts, None)
    return " ".join("".join(parts).split())


def _gather(
    element: etree._Element,
    parts: list[str],
    marks: dict[etree._Element, int] | None,
    depth: int = 0,
) -> None:
    """Append the raw text pieces below `element` to `parts`, a space at block boundaries.

    `marks` receives, for each link below, the number of pieces before it.
    """
    if depth > _MAX_DEPTH:  # broken pages nest unclosed <font>s deeper than Python recurses
        parts.append(etree.tostring(element, method="text", encoding="unicode", with_tail=False))
        return
    text = element.text
    if text:
        parts.append(text)
    for child in element:
        tag = child.tag
        boundary = tag in _BREAKS
        if boundary:
            parts.append(" ")
        if marks is not None and tag in _LINK_ATTRS:
            marks[child] = len(parts)
        if tag == "img":
            parts.append(child.get("alt") or "")
        elif len(child):
            _gather(child, parts, marks, depth + 1)
        else:
            text = child.text
            if text:
                parts.append(text)
        if boundary:
            parts.append(" ")
        text = child.tail
        if text:
            parts.append(text)
