"""A synthetic website for the crawl benchmark: N linked pages of realistic size.

Page 0 is "/", page i > 0 is "/p/{i}". Every page is 15-30 KB of HTML (navigation, a link
list, paragraphs, a table) with 20-40 links to other pages; page i always links page i+1,
so the whole site is reachable breadth-first from "/". About one page in ten links 1-3 PDFs
under "/docs/"; half of those match PROMPT by link text and section heading. Every body is
generated once, deterministically from (n_pages, seed), before the app serves a request.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from aiohttp import web

PROMPT: Final = "annual budget report 2024"

_VOCABULARY: Final = (
    "council residents street planning committee service public library park water road "
    "transport school health community housing permit licence district river bridge market "
    "festival museum garden heritage tenant business waste recycling energy climate safety "
    "police fire harbour museum youth senior volunteer consultation survey proposal notice "
    "meeting agenda decision policy strategy programme funding grant project contract works "
    "maintenance repair lighting pavement cycle lane bus tram station parking traffic noise"
)
_WORDS: Final = tuple(_VOCABULARY.split())
_UNRELATED: Final = (
    "Parking permit application form",
    "Tree planting leaflet",
    "Swimming pool timetable",
    "Library membership form",
    "Street party guidance",
    "Allotment waiting list form",
)
_NAV: Final = ("Home", "Council", "Services", "News", "Events", "Planning", "Waste", "Contact")
_PAGES_PER_DOC_PAGE: Final = 10


@dataclass(frozen=True)
class DocLink:
    path: str
    text: str
    matching: bool


def page_path(i: int) -> str:
    return "/" if i == 0 else f"/p/{i}"


def documents_on(i: int, seed: int = 1) -> list[DocLink]:
    """The document links of page i (empty on most pages)."""
    rng = random.Random(f"{seed}:documents:{i}")
    if rng.randrange(_PAGES_PER_DOC_PAGE):
        return []
    links = []
    for k in range(rng.randint(1, 3)):
        matching = (i + k) % 2 == 0
        text = f"Annual budget report 2024, part {i}.{k}" if matching else rng.choice(_UNRELATED)
        links.append(DocLink(f"/docs/{i}-{k}.pdf", text, matching))
    return links


def all_documents(n_pages: int, seed: int = 1) -> Iterator[DocLink]:
    for i in range(n_pages):
        yield from documents_on(i, seed)


def _pdf(title: str) -> bytes:
    """A small valid one-page PDF; the benchmark only needs plausible document bytes."""
    stream = b"BT /F1 12 Tf 72 720 Td (" + title.encode("ascii") + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 6\n0000000000 65535 f \n" + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size 6 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % xref
    # A comment after the trailer pads the file to a realistic size without breaking it.
    return bytes(out) + b"%" + b"-" * 6000 + b"\n"


def _paragraphs(rng: random.Random, count: int) -> list[str]:
    return [
        "<p>" + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(60, 140))) + ".</p>"
        for _ in range(count)
    ]


def _document_block(docs: list[DocLink]) -> str:
    block = ""
    for heading, matching in (("Annual budget report 2024", True), ("Forms and leaflets", False)):
        items = "".join(
            f'<li><a href="{d.path}">{d.text}</a></li>' for d in docs if d.matching == matching
        )
        block += f"<h2>{heading}</h2><ul>{items}</ul>" if items else ""
    return block


def _page(i: int, n_pages: int, seed: int, pool: list[str]) -> bytes:
    rng = random.Random(f"{seed}:page:{i}")
    nav = "".join(
        f'<a href="{page_path(k)}">{name}</a> ' for k, name in enumerate(_NAV) if k < n_pages
    )
    targets = [(i + 1) % n_pages, *(rng.randrange(n_pages) for _ in range(rng.randint(8, 18)))]
    items = "".join(
        f'<li><a href="{page_path(t)}">{rng.choice(_WORDS)} {t}</a></li>' for t in targets
    )
    rows = "".join(
        f'<tr><td><a href="{page_path(rng.randrange(n_pages))}">{rng.choice(_WORDS)}</a></td>'
        + "".join(f"<td>{rng.randint(100, 99999)}</td>" for _ in range(3))
        + "</tr>"
        for _ in range(rng.randint(4, 14))
    )
    text = "".join(rng.choices(pool, k=rng.randint(20, 38)))
    title = f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS)} — page {i}"
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"</head><body><header><nav>{nav}</nav></header><aside><ul>{items}</ul></aside>"
        f"<main><h1>{title}</h1>{text}{_document_block(documents_on(i, seed))}"
        f"<table><tr><th>Item</th><th>2022</th><th>2023</th><th>2024</th></tr>{rows}</table>"
        "</main><footer>City of Benchford</footer></body></html>"
    ).encode()


def make_bench_site(n_pages: int, seed: int = 1) -> web.Application:
    """Serve the n_pages-page site; all bodies are built here, so requests only copy bytes."""
    pool = _paragraphs(random.Random(seed), 400)
    pages = [_page(i, n_pages, seed, pool) for i in range(n_pages)]
    bodies = {True: _pdf("Annual budget report 2024"), False: _pdf("Municipal leaflet")}
    documents = {d.path: bodies[d.matching] + d.path.encode() for d in all_documents(n_pages, seed)}

    async def page(request: web.Request) -> web.StreamResponse:
        number = request.match_info.get("number", "0")
        if not number.isdigit() or not 0 <= int(number) < n_pages:
            raise web.HTTPNotFound()
        return web.Response(body=pages[int(number)], content_type="text/html", charset="utf-8")

    async def document(request: web.Request) -> web.StreamResponse:
        body = documents.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        return web.Response(body=body, content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{number}", page)
    app.router.add_get("/docs/{name}", document)
    return app
