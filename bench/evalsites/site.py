"""What an evaluation site is made of, the document builders, and the aiohttp app serving one.

A site is plain data: HTML pages and documents keyed by ``path[?query]``, redirects, copies
of documents at a second address, and labels (a prompt and the exact set of document paths
that answer it). The file builders are tests/sites/docsite.py's, so the documents are the
same valid PDF / DOCX / XLSX / ODT files the crawler tests use.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape

from aiohttp import web

from tests.sites.docsite import make_docx, make_odt, make_pdf, make_xlsx

PDF = "application/pdf"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"


@dataclass(frozen=True)
class Doc:
    body: bytes
    content_type: str
    disposition: str | None = None


def pdf(title: str, *sentences: str) -> Doc:
    """A PDF titled ``title`` whose text is the title followed by real sentences."""
    return Doc(make_pdf(title, " ".join((title, *sentences))), PDF)


def coded_pdf(code: str, *sentences: str) -> Doc:
    """A PDF whose metadata title is a file code: only its text says what it is."""
    return Doc(make_pdf(code, " ".join(sentences)), PDF)


def docx(title: str, *paragraphs: str) -> Doc:
    return Doc(make_docx(title, list(paragraphs)), DOCX)


def odt(title: str, *paragraphs: str) -> Doc:
    return Doc(make_odt(title, list(paragraphs)), ODT)


def xlsx(title: str, rows: list[tuple[str, int]]) -> Doc:
    return Doc(make_xlsx(title, rows), XLSX)


@dataclass(frozen=True)
class Label:
    """A prompt and the paths (canonical ``path[?query]``) of every document answering it."""

    prompt: str
    relevant: frozenset[str]


@dataclass(frozen=True)
class Site:
    name: str
    pages: Mapping[str, str]  # path_qs -> HTML
    documents: Mapping[str, Doc]  # canonical path_qs -> document
    labels: tuple[Label, ...]
    redirects: Mapping[str, str] = field(default_factory=dict)  # path_qs -> 302 target
    copies: Mapping[str, str] = field(default_factory=dict)  # path_qs -> canonical path_qs
    charset: str = "utf-8"

    def __post_init__(self) -> None:
        # A label naming a document the site does not serve, or two documents with the same
        # bytes (the daemon keeps one of them), would make every figure for the site wrong.
        for label in self.labels:
            unknown = sorted(label.relevant - self.documents.keys())
            if unknown:
                raise ValueError(f"{self.name}: {label.prompt!r} names unknown {unknown}")
        bodies = Counter(doc.body for doc in self.documents.values())
        if max(bodies.values(), default=1) > 1:
            raise ValueError(f"{self.name}: two documents have the same bytes")
        stray = sorted(set(self.copies.values()) - self.documents.keys())
        if stray:
            raise ValueError(f"{self.name}: copies of unknown documents {stray}")

    def canonical(self, path_qs: str) -> str:
        """The document a returned URL stands for: redirect sources and copies map onto it."""
        for _ in range(10):
            if path_qs not in self.redirects:
                break
            path_qs = self.redirects[path_qs]
        return self.copies.get(path_qs, path_qs)


def html_page(
    title: str, header: str, body: str, footer: str, lang: str = "en", charset: str = "utf-8"
) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="{lang}"><head><meta charset="{charset}">'
        f"<title>{escape(title)}</title></head><body><header>{header}</header>"
        f"<main>{body}</main><footer>{footer}</footer></body></html>"
    )


def make_app(site: Site) -> web.Application:
    """Serve ``site``: pages, documents (and their copies) and redirects, by ``path_qs``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        key = request.path_qs
        if key in site.redirects:
            raise web.HTTPFound(site.redirects[key])
        page = site.pages.get(key)
        if page is not None:
            body = page.encode(site.charset, errors="xmlcharrefreplace")
            return web.Response(body=body, content_type="text/html", charset=site.charset)
        doc = site.documents.get(site.copies.get(key, key))
        if doc is None:
            raise web.HTTPNotFound()
        headers = {"Content-Type": doc.content_type}
        if doc.disposition:
            headers["Content-Disposition"] = doc.disposition
        return web.Response(body=doc.body, headers=headers)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    return app
