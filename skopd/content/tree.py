"""Parsing a page for the content modules, with the crawler's parser and charset rules."""

from __future__ import annotations

from typing import Final

from lxml import etree

from skopd.crawl.extract import _as_utf8, _parse

# C0 controls but tab, line feed and carriage return: libxml2 keeps them in text that
# lxml then refuses to set back. In UTF-8 these bytes are never part of another character.
_CONTROLS: Final = bytes(b for b in range(32) if b not in (9, 10, 13)) + b"\x7f"
_UTF8: Final = "text/html; charset=utf-8"


def parse(html: bytes | str) -> etree._Element | None:
    """The page's tree; None for an empty or unparseable page. Text is taken as UTF-8."""
    body = html.encode("utf-8") if isinstance(html, str) else _as_utf8(html, None)
    return _parse(body.translate(None, _CONTROLS), _UTF8)


def text_of(element: etree._Element) -> str:
    """The element's text, whitespace collapsed."""
    return " ".join(etree.tostring(element, method="text", encoding="unicode").split())
