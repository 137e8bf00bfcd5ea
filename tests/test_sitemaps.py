"""Sitemaps: the reader's bounds and formats, and seeding a crawl from real servers."""

from __future__ import annotations

import asyncio
import gzip
from urllib.parse import urlsplit

import pytest
from aiohttp import web

from skopd.crawl.sitemaps import MAX_BYTES, MAX_FILES, SitemapError, SitemapReader
from tests.test_polite import (
    DaemonFactory,
    Responder,
    ServerFactory,
    Site,
    answer,
    crawl,
    doc_paths,
    html,
    pdf,
    serve,
)

NS = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'


def urlset(*urls: str) -> bytes:
    entries = "".join(f"<url><loc>{u}</loc><lastmod>2024-01-01</lastmod></url>" for u in urls)
    return f'<?xml version="1.0" encoding="UTF-8"?><urlset {NS}>{entries}</urlset>'.encode()


def index(*urls: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{u}</loc></sitemap>" for u in urls)
    return f'<?xml version="1.0"?><sitemapindex {NS}>{entries}</sitemapindex>'.encode()


def read(data: bytes, limit: int = 5000, chunk: int = 7) -> SitemapReader:
    reader = SitemapReader(limit)
    for i in range(0, len(data), chunk):
        reader.feed(data[i : i + chunk])
    reader.close()
    return reader


def test_reader_reads_urlsets_indexes_and_gzip_in_any_chunking() -> None:
    plain = urlset("http://h/a", "http://h/b.pdf")
    assert read(plain).locs == ["http://h/a", "http://h/b.pdf"]
    assert read(plain).kind == "urlset"
    assert read(gzip.compress(plain), chunk=1).locs == ["http://h/a", "http://h/b.pdf"]
    assert read(index("http://h/s1.xml")).kind == "sitemapindex"
    assert read(index("http://h/s1.xml")).locs == ["http://h/s1.xml"]


def test_reader_ignores_image_locs_and_entities() -> None:
    data = (
        b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        b'xmlns:image="http://www.google.com/schemas/sitemap-image/1.1">'
        b"<url><loc>&e;</loc></url>"
        b"<url><loc> http://h/page </loc><image:image><image:loc>http://h/i.jpg</image:loc>"
        b"</image:image></url></urlset>"
    )
    assert read(data).locs == ["http://h/page"]


def test_reader_stops_at_its_limits() -> None:
    many = read(urlset(*(f"http://h/{i}" for i in range(100))), limit=10)
    assert len(many.locs) == 10
    assert many.cut
    bomb = gzip.compress(b"<urlset>" + b" " * (4 * MAX_BYTES) + b"</urlset>")
    reader = SitemapReader(10)
    reader.feed(bomb)
    assert reader.cut  # decoding stopped at MAX_BYTES, not at 64 MiB


@pytest.mark.parametrize("data", [b"<html><body>Not found</body></html>", b"", b"\x1f\x8bjunk"])
def test_what_is_not_a_sitemap_is_refused(data: bytes) -> None:
    with pytest.raises(SitemapError):
        read(data)


def xml(data: bytes, **headers: str) -> Responder:
    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(body=data, headers=headers, content_type="application/xml")

    return respond


def gz(data: bytes) -> Responder:
    """A .xml.gz file served as it is on disk: gzip bytes, no Content-Encoding."""

    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(data), content_type="application/x-gzip")

    return respond


def robots(body: str) -> Responder:
    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(text=body, content_type="text/plain")

    return respond


async def test_sitemaps_reveal_what_no_link_reaches(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site({})
    server = await serve(aiohttp_server, site)
    origin = str(server.make_url("")).rstrip("/")
    site.routes.update(
        {
            "/robots.txt": robots(f"User-agent: *\nSitemap: {origin}/sitemap_index.xml\n"),
            "/": html("<p>Welcome to the town hall. Nothing is linked here.</p>"),
            "/sitemap_index.xml": xml(
                index(
                    f"{origin}/maps/pages.xml.gz",
                    f"{origin}/maps/files.xml",
                    "http://offsite.invalid/sitemap.xml",
                )
            ),
            "/maps/pages.xml.gz": gz(urlset(f"{origin}/council/minutes/")),
            # Content-Encoding: gzip, decoded by the HTTP client.
            "/maps/files.xml": xml(
                gzip.compress(
                    urlset(f"{origin}/files/board-minutes-2024-03.pdf", "http://offsite.invalid/x")
                ),
                **{"Content-Encoding": "gzip"},
            ),
            "/council/minutes/": html(
                '<a href="/files/board-minutes-2024-05.pdf">Board meeting minutes May 2024</a>'
            ),
            "/files/board-minutes-2024-03.pdf": pdf("Board meeting minutes March 2024"),
            "/files/board-minutes-2024-05.pdf": pdf("Board meeting minutes May 2024"),
        }
    )
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    assert doc_paths(results) == {
        "/files/board-minutes-2024-03.pdf",  # listed only in a sitemap
        "/files/board-minutes-2024-05.pdf",  # on a page listed only in a sitemap
    }
    by_path = {urlsplit(d["url"]).path: d for d in results["documents"]}
    assert by_path["/files/board-minutes-2024-03.pdf"]["source_page"] == f"{origin}/maps/files.xml"
    assert site.hits("/sitemap.xml") == 0  # robots.txt named the sitemaps
    assert site.hits("/council/minutes/") == 1
    assert results["errors"] == []


def slow(responder: Responder, seconds: float) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(seconds)
        return await responder(request)

    return respond


async def test_a_page_link_beats_the_sitemap_entry_for_the_same_url(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    """The sitemap is read long before the slow page that links the same URLs: the
    document is still judged by the page's link text, and each URL is fetched once."""
    site = Site({})
    server = await serve(aiohttp_server, site)
    origin = str(server.make_url("")).rstrip("/")
    site.routes.update(
        {
            "/": html('<a href="/minutes/">Minutes</a>'),
            "/sitemap.xml": xml(urlset(f"{origin}/archive/", f"{origin}/f/DOC-17.pdf")),
            "/minutes/": slow(
                html(
                    '<a href="/archive/">Archive</a>'
                    '<a href="/f/DOC-17.pdf">Board meeting minutes 2024</a>'
                ),
                0.5,
            ),
            "/archive/": html("<p>archive</p>"),
            "/f/DOC-17.pdf": pdf("Board meeting minutes 2024"),
        }
    )
    _, results = await crawl(await daemon_factory(), server)
    [doc] = results["documents"]
    assert doc["source_page"] == f"{origin}/minutes/"
    assert site.times("/archive/")[0] < site.times("/minutes/")[0] + 0.5  # the sitemap's turn
    assert site.hits("/archive/") == 1
    assert site.hits("/f/DOC-17.pdf") == 1


async def test_sitemap_reading_is_bounded_and_failures_are_reported(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site({})
    server = await serve(aiohttp_server, site)
    origin = str(server.make_url("")).rstrip("/")
    maps = [f"/maps/{i}.xml" for i in range(25)]
    site.routes.update(
        {
            "/robots.txt": robots(f"Sitemap: {origin}/index.xml\nSitemap: {origin}/broken.xml\n"),
            "/": html("<p>home</p>"),
            "/index.xml": xml(index(*(origin + m for m in maps))),
            "/broken.xml": answer(500),
            **{m: xml(urlset(f"{origin}/page-{i}")) for i, m in enumerate(maps)},
        },
        default=html("<p>a page</p>"),
    )
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    fetched = [p for p in site.paths() if p.startswith("/maps/")]
    assert len(fetched) == MAX_FILES - 2  # the index and broken.xml count too
    assert any("sitemaps were read in part" in w for w in results["warnings"])
    [error] = [e for e in results["errors"] if e["error_type"] == "sitemap_unreadable"]
    assert error["page_url"] == f"{origin}/broken.xml"


async def test_single_page_jobs_read_no_sitemap(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site({"/": html("<p>home</p>")})
    server = await serve(aiohttp_server, site)
    await crawl(await daemon_factory(), server, single_page=True)
    assert site.hits("/sitemap.xml") == 0
