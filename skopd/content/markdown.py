"""A page's main content as Markdown: boilerplate out, structure kept.

lxml finds the main content and removes what is not (navigation, header and footer bars,
sidebars, cookie banners, share bars, menus of links outside the text), in one pass over
the tree; html-to-markdown (a maintained Rust converter) turns what is left into Markdown:
ATX headings, GFM tables, fenced code with its language, nested lists. Every link and image
is made absolute against the page's URL (or its <base href>). Lists of links to documents
are content here, never navigation: they are what this daemon looks for.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import urljoin

import msgspec
from html_to_markdown import ConversionOptions, convert
from lxml import etree

from skopd.content.tree import parse, text_of


class PageContent(msgspec.Struct, frozen=True):
    url: str
    title: str
    markdown: str
    lang: str | None = None


# Never content: removed wherever they are, with their text.
_DROP_TAGS: Final = (
    "script", "style", "noscript", "template", "svg", "canvas", "iframe", "frame", "object",
    "embed", "button", "select", "input", "textarea", "dialog", "map", "link", "meta",
)  # fmt: skip
_CHROME_TAGS: Final = frozenset({"nav", "header", "footer", "aside", "form", "menu"})
_CHROME_ROLES: Final = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "search", "menu", "menubar",
     "dialog", "alertdialog", "toolbar", "tablist"}
)  # fmt: skip
# Words of a class or id that mark page furniture.
_CHROME_WORDS: Final = re.compile(
    r"(?:^|[\s_-])(?:nav|navbar|navigation|menu|mainmenu|submenu|subnav|menubar|sidebar|"
    r"side-?bar|breadcrumbs?|header|footer|foot|hdr|masthead|topbar|toolbar|"
    r"banner|share|sharing|social|related|skip|skiplink|advert|ads|sponsor|"
    r"advertisement|promo|newsletter|popup|modal|overlay|pagination|pager|toc|tocs|"
    r"headerlink|comments?|disqus|print-?only|sr-only|visually-?hidden|"
    r"screen-?reader-text|noprint|rst-footer-buttons|edit-?link|back-?to-?top)(?:$|[\s_-])"
    # Only as a class of its own: page builders name every content block "*-widget".
    r"|(?:^|\s)widgets?(?:$|[\s_-])",
    re.IGNORECASE,
)
# Cookie and consent banners, by name anywhere in an id or class ("CybotCookiebotDialog").
_CONSENT: Final = re.compile(
    r"cookie|consent|gdpr|onetrust|cybot|usercentrics|didomi|borlabs|klaro|cookiebot|"
    r"cc-window|cc-banner|qc-cmp",
    re.IGNORECASE,
)
# The id or class of the element that holds a page's main content, when it has no <main>.
_MAIN_WORDS: Final = re.compile(
    r"^(?:main|content|main-?content|page-?content|primary|article|post|entry-?content|"
    r"post-?content|article-?body|body-?content|document|documentwrapper|bodywrapper|"
    r"rst-content|markdown-body|inhalt|contenido|contenu)$",
    re.IGNORECASE,
)
_HEADERLINK_TEXT: Final = frozenset({"¶", "#", "§", "🔗", "link", "permalink", ""})
_INVISIBLE_CHARS: Final = "\u200b\u200c\u200d\u2060\ufeff \xa0"
_EDIT_LINK: Final = re.compile(
    r"^(?:edit|edit (?:this|the) page|edit (?:on|in) git\w+|view (?:page )?source|"
    r"suggest (?:an )?edits?|improve this (?:page|doc))\b",
    re.IGNORECASE,
)
_HEADINGS: Final = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_HEADERISH: Final = re.compile(r"header|hdr|banner|masthead", re.IGNORECASE)
# Never furniture inside: code, and the rows of data tables (layout tables are blocks by now).
_OPAQUE: Final = frozenset({"pre", "code", "tr", "math"})
_LIST_BLOCKS: Final = frozenset({"ul", "ol", "div", "section", "table", "p", "dl"})
_LINK_DENSE: Final = 0.7  # share of a block's text inside links that makes it a link list
_HEADLINE_CHARS: Final = 35  # average link text from which a link list is content
_FILE_SUFFIX: Final = re.compile(
    r"\.(?:pdf|docx?|xlsx?|pptx?|odt|ods|odp|rtf|csv|txt|zip|epub|xml|json)(?:$|[?#])",
    re.IGNORECASE,
)
_CODE_CLASS: Final = re.compile(r"(?:^|\s)(?:lang(?:uage)?|highlight(?:-source)?)-([\w+#.-]+)")
_BLANKS: Final = re.compile(r"\n{3,}")
_TRAILING: Final = re.compile(r"[ \t]+\n")
_TITLE_MAX: Final = 300
_OPTIONS: Final = ConversionOptions(
    heading_style="atx",
    bullets="-",
    compact_tables=True,  # "| a | b |": padding only costs a model's context
    newline_style="backslash",
    extract_metadata=False,
    preprocessing=None,  # the boilerplate is gone already, and links to documents stay
    skip_images=False,
)


def page_content(html: bytes | str, url: str) -> PageContent:
    """The main content of one HTML page as Markdown. Pure and CPU-bound: run it in a
    thread in a server. An empty or unparseable page gives empty Markdown."""
    root = parse(html)
    if root is None:
        return PageContent(url=url, title="", markdown="")
    lang = _lang(root)
    base = _base(root, url)
    title = _title(root)
    etree.strip_elements(root, *_DROP_TAGS, with_tail=False)
    body = next(root.iter("body"), root)
    _unwrap_layout_tables(body)
    stats = _Stats(body)
    main = _main(body, stats)
    _strip_chrome(main, stats, _menu_zone(main, body))
    _prepare(main, base)
    markdown = _to_markdown(main)
    if not title:
        first = next(main.iter("h1"), None)
        title = text_of(first)[:_TITLE_MAX] if first is not None else ""
    return PageContent(url=url, title=title, markdown=markdown, lang=lang)


def _base(root: etree._Element, url: str) -> str:
    for base in root.iter("base"):
        href = (base.get("href") or "").strip()
        if href:
            return urljoin(url, href)
    return url


def _lang(root: etree._Element) -> str | None:
    """<html lang>, else the Content-Language or og:locale <meta>."""
    lang = (root.get("lang") or root.get("xml:lang") or "").strip()
    if lang:
        return lang
    for meta in root.iter("meta"):
        kind = (meta.get("http-equiv") or meta.get("property") or "").lower()
        if kind in ("content-language", "og:locale"):
            value = (meta.get("content") or "").split(",")[0].strip().replace("_", "-")
            if value:
                return value
    return None


def _title(root: etree._Element) -> str:
    for element in root.iter("title"):
        title = text_of(element)
        if title:
            return title[:_TITLE_MAX]
    for meta in root.iter("meta"):
        if meta.get("property") == "og:title" and (meta.get("content") or "").strip():
            return " ".join((meta.get("content") or "").split())[:_TITLE_MAX]
    return ""


_LAYOUT_INSIDE: Final = ("h1", "h2", "h3", "h4", "h5", "h6", "table", "form", "main", "article",
                         "nav", "header", "footer", "aside", "section")  # fmt: skip
_BLOCKS: Final = frozenset({"p", "div", "ul", "ol", "dl", "blockquote", "pre"})
_TABLE_PARTS: Final = ("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption")


def _unwrap_layout_tables(body: etree._Element) -> None:
    """Tables that lay out a page (a menu column beside the text, headings and tables in
    their cells) become plain blocks: as Markdown tables they would be one unreadable row."""
    layout = [table for table in body.iter("table") if _is_layout(table)]
    parts = [p for t in layout for p in t.iter(*_TABLE_PARTS[1:]) if _owner(p) is t]
    for element in layout + parts:
        element.tag = "div"


def _owner(part: etree._Element) -> etree._Element | None:
    """The table a row or cell belongs to."""
    node: etree._Element | None = part
    while node is not None and node.tag != "table":
        node = node.getparent()
    return node


def _is_layout(table: etree._Element) -> bool:
    if table.get("role") in ("presentation", "none"):
        return True
    if next(table.iterdescendants(*_LAYOUT_INSIDE), None) is not None:
        return True
    for cell in table.iter("td", "th"):
        if sum(1 for child in cell if child.tag in _BLOCKS) >= 2:
            return True
    return False


class _Stats:
    """Per element, in one pass: text characters, of them inside links, links, links to
    files, and whether a heading is inside."""

    def __init__(self, body: etree._Element) -> None:
        self.of: dict[etree._Element, tuple[int, int, int, int, bool]] = {}
        of = self.of
        # In reverse document order every element comes after all of its descendants.
        for element in reversed(list(body.iter())):
            tag = element.tag
            if not isinstance(tag, str):
                continue
            chars = _chars(element.text)
            linked = links = files = 0
            headed = tag in _HEADINGS
            for child in element:
                chars += _chars(child.tail)
                sub = of.get(child)
                if sub is not None:
                    chars += sub[0]
                    linked += sub[1]
                    links += sub[2]
                    files += sub[3]
                    headed = headed or sub[4]
            if tag == "a":
                linked, links = chars, links + 1
                files += _FILE_SUFFIX.search(element.get("href") or "") is not None
            of[element] = (chars, linked, links, files, headed)

    def chars(self, element: etree._Element) -> int:
        found = self.of.get(element)
        return found[0] if found else 0


def _chars(text: str | None) -> int:
    return len(text.strip()) if text else 0


def _classes(element: etree._Element) -> str:
    ident, cls = element.get("id"), element.get("class")
    if ident and cls:
        return f"{ident} {cls}"
    return ident or cls or ""


def _main(body: etree._Element, stats: _Stats) -> etree._Element:
    """The element holding the page's main content: <main>, else [role=main], else the one
    <article>, else a block whose id or class says it is the content, else <body>."""
    total = stats.chars(body) or 1
    mains: list[etree._Element] = []
    articles: list[etree._Element] = []
    marked: list[etree._Element] = []
    for element in body.iter("main", "article", "div", "section", "td"):
        if element.tag == "main" or element.get("role") == "main":
            mains.append(element)
        elif element.tag == "article":
            articles.append(element)
        elif any(_MAIN_WORDS.match(w) for w in _classes(element).split()):
            marked.append(element)
    candidates = mains + (articles if len(articles) == 1 else []) + marked
    for candidate in candidates:
        # A candidate must hold a fair share of the page's text.
        if stats.chars(candidate) >= 0.2 * total and not _is_chrome(candidate):
            return _innermost(candidate, stats)
    return body


def _innermost(element: etree._Element, stats: _Stats) -> etree._Element:
    """A main element that is only a wrapper around one <article> is that article."""
    articles = list(element.iter("article"))
    if len(articles) == 1 and articles[0] is not element:
        inner = articles[0]
        if stats.chars(inner) >= 0.8 * stats.chars(element):
            return inner
    return element


def _is_chrome(element: etree._Element) -> bool:
    tag = element.tag
    if tag in _CHROME_TAGS or element.get("role") in _CHROME_ROLES:
        return True
    if element.get("hidden") is not None or element.get("aria-hidden") == "true":
        return True
    style = element.get("style")
    if style:
        style = style.replace(" ", "").lower()
        if "display:none" in style or "visibility:hidden" in style:
            return True
    marks = _classes(element)
    if not marks:
        return False
    return _CHROME_WORDS.search(marks) is not None or _CONSENT.search(marks) is not None


def _menu_zone(main: etree._Element, body: etree._Element) -> set[etree._Element] | None:
    """Where a block of short links is a menu: anywhere when the page has no main element
    (None); inside one, only before its first heading (a section menu above the text), as
    a list of links below a heading there is the content (news, meetings, downloads)."""
    if main is body:
        return None
    first = next(main.iter(*_HEADINGS), None)
    if first is None:
        return set()
    zone: set[etree._Element] = set()
    for element in main.iter():
        if element is first:
            break
        zone.add(element)
    zone.difference_update(first.iterancestors())
    return zone


def _strip_chrome(
    main: etree._Element, stats: _Stats, menu_zone: set[etree._Element] | None
) -> None:
    """Remove furniture inside the main element, top down, skipping what is removed."""
    main_chars = stats.chars(main)
    stack = [main]
    while stack:
        parent = stack.pop()
        for element in list(parent):
            if not isinstance(element.tag, str):
                continue
            if _is_furniture(element, stats, main_chars, menu_zone):
                _remove(element)
            elif element.tag not in _OPAQUE:
                stack.append(element)


def _is_furniture(
    element: etree._Element,
    stats: _Stats,
    main_chars: int,
    menu_zone: set[etree._Element] | None,
) -> bool:
    tag = element.tag
    if _is_chrome(element):
        return not (_holds_title(element, stats) or _holds_content(element, stats, main_chars))
    if tag == "a":
        return _is_headerlink(element)  # or an edit button
    if tag not in _LIST_BLOCKS or (menu_zone is not None and element not in menu_zone):
        return False
    return _link_list(element, stats)


def _holds_title(element: etree._Element, stats: _Stats) -> bool:
    """A header around the article's own title (and byline) is content, not site chrome:
    it has a heading, few links, little text."""
    if element.tag != "header" and not _HEADERISH.search(_classes(element)):
        return False
    found = stats.of.get(element)
    if found is None or not found[4] or found[2] >= 3 or found[0] >= 600:
        return False
    return next(element.iter("h1", "h2", "h3"), None) is not None


def _holds_content(element: etree._Element, stats: _Stats, main_chars: int) -> bool:
    """A <form> around the whole page (ASP.NET), or a block whose class only happens to
    contain a furniture word, is kept when it holds most of the text."""
    chars = stats.chars(element)
    if element.tag == "form":
        return chars >= 500 or bool(stats.of.get(element, (0, 0, 0, 0, False))[4])
    if element.tag in _CHROME_TAGS or element.get("role") in _CHROME_ROLES:
        return False
    return chars >= 1000 and chars >= 0.5 * main_chars


def _is_headerlink(element: etree._Element) -> bool:
    """A permalink beside a heading ("¶", "#", an icon), or an "Edit this page" button."""
    label = " ".join(
        filter(None, (element.get("title"), element.get("aria-label"), text_of(element)))
    )
    if _EDIT_LINK.match(label.strip()):
        return True
    if not (element.get("href") or "").startswith("#"):
        return False
    classes = element.get("class") or ""
    if any(mark in classes for mark in ("headerlink", "anchor", "hash-link")):
        return True
    text = text_of(element).strip(_INVISIBLE_CHARS).lower()
    return text in _HEADERLINK_TEXT and element.find(".//img") is None


def _link_list(element: etree._Element, stats: _Stats) -> bool:
    """A block of only links to other HTML pages (a menu, a tag cloud, "see also"), not a
    list of documents: links to files are what this daemon is for."""
    found = stats.of.get(element)
    if found is None:
        return False
    chars, linked, links, files, headed = found
    if links < 3 or files or not chars or linked / chars < _LINK_DENSE:
        return False
    if linked / links >= _HEADLINE_CHARS:
        return False  # menus have short labels; lists of articles or meetings have titles
    return element.tag in ("ul", "ol") or not headed


def _remove(element: etree._Element) -> None:
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    if tail and tail.strip():
        previous = element.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(element)


def _prepare(main: etree._Element, base: str) -> None:
    """Absolute links and images; decorative images out; code blocks told their language;
    forms kept as content made plain blocks."""
    for a in main.iter("a"):
        href = (a.get("href") or "").strip()
        if not href or href.lower().startswith(("javascript:", "data:")):
            a.attrib.pop("href", "")
        else:
            a.set("href", urljoin(base, href))
    for img in list(main.iter("img")):
        src = (img.get("src") or img.get("data-src") or "").strip()
        if not src or src.startswith("data:") or not (img.get("alt") or "").strip():
            _remove(img)  # decorative or inline: noise for a reader and a model
        else:
            img.set("src", urljoin(base, src))
    for pre in main.iter("pre"):
        _code_language(pre)
    if _fold_whitespace(main) > _MAX_DEPTH:
        # The converter stops at its depth limit; such depth is always wrappers.
        etree.strip_tags(main, *_WRAPPERS)
    for kept in main.iter("form", "nav"):
        kept.tag = "div"  # the converter drops these; the ones still here are content
    if main.tag in ("form", "nav"):
        main.tag = "div"


_MAX_DEPTH: Final = 500  # html-to-markdown leaves out what is nested deeper than 1024
_WRAPPERS: Final = ("div", "span", "font", "section", "center", "article", "main", "small")
_SPACES: Final = re.compile(r"[ \t\r\n\f]+")  # not U+00A0: a no-break space is meant


def _fold_whitespace(main: etree._Element) -> int:
    """Line breaks of the HTML source are spaces, as a browser shows them, outside <pre>:
    a paragraph becomes one Markdown line. Returns the depth of the tree."""
    stack = [(main, 0)]
    deepest = 0
    while stack:
        element, depth = stack.pop()
        deepest = max(deepest, depth)
        if element.text and "\n" in element.text:
            element.text = _SPACES.sub(" ", element.text)
        for child in element:
            if child.tail and "\n" in child.tail:
                child.tail = _SPACES.sub(" ", child.tail)
            if isinstance(child.tag, str) and child.tag not in ("pre", "textarea", "xmp"):
                stack.append((child, depth + 1))
    return deepest


def _code_language(pre: etree._Element) -> None:
    """Sphinx and Pygments name a block's language on a wrapper: move it to the <code>."""
    code = pre.find("code")
    if code is not None and _CODE_CLASS.search(code.get("class") or ""):
        return
    node: etree._Element | None = pre
    for _ in range(3):
        if node is None:
            return
        found = _CODE_CLASS.search(node.get("class") or "")
        if found:
            if code is None:
                code = etree.Element("code")
                code.text, pre.text = pre.text, None
                for child in list(pre):
                    code.append(child)
                pre.append(code)
            code.set("class", f"language-{found.group(1)}")
            return
        node = node.getparent()


def _to_markdown(main: etree._Element) -> str:
    html = etree.tostring(main, encoding="unicode", method="html", with_tail=False)
    text = convert(html, _OPTIONS).content or ""
    text = _TRAILING.sub("\n", text)
    return _BLANKS.sub("\n\n", text).strip() + "\n" if text.strip() else ""
