"""A slow fixture website for crash-safety tests: a crawl of it takes a few seconds, so a
daemon can be killed in the middle of one.

``make_slowsite()`` returns a fresh aiohttp app; ``app[HITS]`` counts requests per
``path_qs`` of its pages and documents (robots.txt and the sitemap are not counted).

  /                         links /s/0 ... /s/{SECTIONS-1}
  /s/{i}                    links its pages /s/{i}/p/{j} and back to /
  /s/{i}/p/{j}              links the previous and next page of its section; some link a
                            relevant report ("Annual budget report 2024, part N") and some an
                            unrelated leaflet ("Cafeteria menu, week N")
  /docs/report-{n}.pdf      RELEVANT documents; /docs/menu-{n}.pdf UNRELATED ones. Each is
                            streamed in DOC_CHUNKS chunks, DOC_CHUNK_DELAY_S apart, so a
                            download can be cut off half way
  /sitemap.xml              a sitemap index of /sitemap-1.xml (the sections) and
                            /sitemap-2.xml (every third page, and APPENDIX, a relevant text
                            document no page links); with `hold_sitemap`, /sitemap-2.xml
                            answers only once `app[SITEMAP_GATE]` is set

With `hold_document=path`, that document sends its first half, sets `app[HALF_SENT]` and
sends the rest only once `app[DOCUMENT_GATE]` is set: a download can be cut off in the
middle, at a moment the test knows.

Every page answers after PAGE_DELAY_S. Every document's bytes are distinct, so no download
is a duplicate of another and the same documents come back whatever the crawl's order.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Final

from aiohttp import web

HITS: Final = web.AppKey[collections.Counter[str]]("slowsite_hits")
SITEMAP_GATE: Final = web.AppKey[asyncio.Event]("slowsite_sitemap_gate")
HALF_SENT: Final = web.AppKey[asyncio.Event]("slowsite_half_sent")
DOCUMENT_GATE: Final = web.AppKey[asyncio.Event]("slowsite_document_gate")

SECTIONS: Final = 8
PAGES_PER_SECTION: Final = 10
PAGE_DELAY_S: Final = 0.06
DOC_CHUNKS: Final = 4
DOC_CHUNK_BYTES: Final = 8192
DOC_CHUNK_DELAY_S: Final = 0.05
PROMPT: Final = "annual budget report 2024"

# Page (section, page) -> the documents it links: every third page a report, every fourth
# a menu (a page may link both).
REPORTS: Final = {
    (i, j): f"/docs/report-{i * PAGES_PER_SECTION + j}.pdf"
    for i in range(SECTIONS)
    for j in range(PAGES_PER_SECTION)
    if (i * PAGES_PER_SECTION + j) % 3 == 0
}
MENUS: Final = {
    (i, j): f"/docs/menu-{i * PAGES_PER_SECTION + j}.pdf"
    for i in range(SECTIONS)
    for j in range(PAGES_PER_SECTION)
    if (i * PAGES_PER_SECTION + j) % 4 == 1
}
APPENDIX: Final = "/docs/annual-budget-report-2024-appendix.txt"
RELEVANT: Final = frozenset({*REPORTS.values(), APPENDIX})
UNRELATED: Final = frozenset(MENUS.values())
PAGES: Final = 1 + SECTIONS + SECTIONS * PAGES_PER_SECTION


def document_bytes(path: str) -> bytes:
    """A small valid-looking PDF (or text), different for every path."""
    if path.endswith(".txt"):
        return b"Annual budget report 2024: appendix\n\n" + b"Tables of the budget.\n" * 40
    body = (f"%PDF-1.4\n% {path}\n".encode()).ljust(DOC_CHUNK_BYTES * DOC_CHUNKS - 7, b".")
    return body + b"\n%%EOF\n"


def _html(title: str, body: str) -> str:
    return f"<!doctype html><html><head><title>{title}</title></head><body>{body}</body></html>"


def make_slowsite(hold_sitemap: bool = False, hold_document: str = "") -> web.Application:
    hits: collections.Counter[str] = collections.Counter()
    gate = asyncio.Event()
    if not hold_sitemap:
        gate.set()
    half_sent, document_gate = asyncio.Event(), asyncio.Event()

    async def home(request: web.Request) -> web.Response:
        hits[request.path_qs] += 1
        await asyncio.sleep(PAGE_DELAY_S)
        links = "".join(
            f'<li><a href="/s/{i}">Department {i} publications</a></li>' for i in range(SECTIONS)
        )
        return web.Response(text=_html("Town hall", f"<ul>{links}</ul>"), content_type="text/html")

    async def section(request: web.Request) -> web.Response:
        hits[request.path_qs] += 1
        i = int(request.match_info["i"])
        await asyncio.sleep(PAGE_DELAY_S)
        links = "".join(
            f'<li><a href="/s/{i}/p/{j}">Department {i} notice {j}</a></li>'
            for j in range(PAGES_PER_SECTION)
        )
        body = f'<h1>Department {i}</h1><ul>{links}</ul><a href="/">Home</a>'
        return web.Response(text=_html(f"Department {i}", body), content_type="text/html")

    async def page(request: web.Request) -> web.Response:
        hits[request.path_qs] += 1
        i, j = int(request.match_info["i"]), int(request.match_info["j"])
        await asyncio.sleep(PAGE_DELAY_S)
        n = i * PAGES_PER_SECTION + j
        parts = [f"<h1>Department {i}, notice {j}</h1>"]
        if (i, j) in REPORTS:
            parts.append(
                f'<p><a href="{REPORTS[i, j]}">Annual budget report 2024, part {n}</a></p>'
            )
        if (i, j) in MENUS:
            parts.append(f'<p><a href="{MENUS[i, j]}">Cafeteria menu, week {n}</a></p>')
        nav = [j - 1, j + 1]
        parts += [
            f'<a href="/s/{i}/p/{k}">Next notice {k}</a>' for k in nav if 0 <= k < PAGES_PER_SECTION
        ]
        parts.append(f'<a href="/s/{i}">Back to department {i}</a>')
        return web.Response(text=_html(f"Notice {n}", "".join(parts)), content_type="text/html")

    async def document(request: web.Request) -> web.StreamResponse:
        hits[request.path_qs] += 1
        data = document_bytes(request.path)
        ctype = "text/plain" if request.path.endswith(".txt") else "application/pdf"
        resp = web.StreamResponse(headers={"Content-Type": ctype})
        resp.content_length = len(data)
        await resp.prepare(request)
        for start in range(0, len(data), DOC_CHUNK_BYTES):
            if request.path == hold_document and start == len(data) // 2:
                half_sent.set()
                await document_gate.wait()
            await asyncio.sleep(DOC_CHUNK_DELAY_S)
            await resp.write(data[start : start + DOC_CHUNK_BYTES])
        await resp.write_eof()
        return resp

    def xml(kind: str, tag: str, base: str, paths: list[str]) -> web.Response:
        entries = "".join(f"<{tag}><loc>{base}{p}</loc></{tag}>" for p in paths)
        return web.Response(
            text='<?xml version="1.0" encoding="UTF-8"?>'
            f'<{kind} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{kind}>',
            content_type="application/xml",
        )

    async def sitemap_index(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return xml("sitemapindex", "sitemap", base, ["/sitemap-1.xml", "/sitemap-2.xml"])

    async def sitemap_1(request: web.Request) -> web.Response:
        base = f"{request.scheme}://{request.host}"
        return xml("urlset", "url", base, [f"/s/{i}" for i in range(SECTIONS)])

    async def sitemap_2(request: web.Request) -> web.Response:
        await gate.wait()
        base = f"{request.scheme}://{request.host}"
        paths = [
            f"/s/{i}/p/{j}"
            for i in range(SECTIONS)
            for j in range(PAGES_PER_SECTION)
            if (i + j) % 3 == 0
        ]
        return xml("urlset", "url", base, [*paths, APPENDIX])

    app = web.Application()
    app[HITS] = hits
    app[SITEMAP_GATE] = gate
    app[HALF_SENT] = half_sent
    app[DOCUMENT_GATE] = document_gate
    app.router.add_get("/", home)
    app.router.add_get("/s/{i:\\d+}", section)
    app.router.add_get("/s/{i:\\d+}/p/{j:\\d+}", page)
    app.router.add_get("/docs/{name}", document)
    app.router.add_get("/sitemap.xml", sitemap_index)
    app.router.add_get("/sitemap-1.xml", sitemap_1)
    app.router.add_get("/sitemap-2.xml", sitemap_2)
    return app
