"""Parsing a page for the content modules, with the crawler's parser and charset rules."""

from __future__ import annotations

from lxml import etree

from skopd.crawl.extract import _parse


def parse(html: bytes | str) -> etree._Element | None:
    """The page's tree; None for an empty or unparseable page. Text is taken as UTF-8."""
    if isinstance(html, str):
        return _parse(html.encode("utf-8"), "text/html; charset=utf-8")
    return _parse(html, None)


def text_of(element: etree._Element) -> str:
    """The element's text, whitespace collapsed."""
    return " ".join(etree.tostring(element, method="text", encoding="unicode").split())
