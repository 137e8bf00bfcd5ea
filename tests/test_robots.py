"""robots.txt against real servers on 127.0.0.1: rules, Crawl-delay, failures, the switch."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

from aiohttp import web

from skopd.crawl.robots import origin_of, parse_robots
from tests.test_polite import (
    DaemonFactory,
    Responder,
    ServerFactory,
    Site,
    answer,
    crawl,
    doc_paths,
    events,
    gaps,
    html,
    pdf,
    sequence,
    serve,
)

AGENT = "skopd/0.1.0 (+self-hosted document discovery)"
RULES = """
User-agent: *
Disallow: /

User-agent: skopd
Disallow: /private/
Allow: /private/open/
Crawl-delay: 1
"""


def text(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/plain")


def robots(body: str) -> Responder:
    async def respond(_: web.Request) -> web.StreamResponse:
        return text(body)

    return respond


def test_our_group_decides_and_its_crawl_delay_applies() -> None:
    rules = parse_robots("http://h", RULES.encode(), AGENT)
    assert not rules.allows("http://h/private/a")
    assert rules.allows("http://h/private/open/b")
    assert rules.allows("http://h/public/")  # the * group's "Disallow: /" is not ours
    assert rules.crawl_delay == 1.0
    other = parse_robots("http://h", RULES.encode(), "otherbot/1.0")
    assert not other.allows("http://h/public/")


def test_a_file_without_disallow_allows_everything_and_lists_sitemaps() -> None:
    rules = parse_robots("http://h", b"User-agent: *\nSitemap: http://h/s.xml\n", AGENT)
    assert rules.parser is None  # no rule to check per URL
    assert rules.allows("http://h/anything")
    assert rules.sitemaps == ("http://h/s.xml",)
    assert rules.crawl_delay == 0.0


def test_origin_of() -> None:
    assert origin_of("HTTP://Example.ORG:8080/a/b?c#d") == "http://example.org:8080"
    assert origin_of("https://example.org?x=1") == "https://example.org"


async def test_disallowed_urls_are_skipped_counted_and_shown(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    links = [
        "/private/a",
        "/private/b",
        "/private/open/c",
        "/public/d",
        "/private/minutes-2024.pdf",
        "/public/minutes-2024.pdf",
    ]
    site = Site(
        {
            "/robots.txt": robots(RULES),
            "/": html("".join(f'<a href="{p}">Board meeting minutes {p}</a>' for p in links)),
            "/private/minutes-2024.pdf": pdf(),
            "/public/minutes-2024.pdf": pdf(),
        },
        default=html("<p>a page</p>"),
    )
    server = await serve(aiohttp_server, site)
    d = await daemon_factory()
    status, results = await crawl(d, server)
    assert status["status"] == "completed"
    assert site.hits("/robots.txt") == 1
    assert site.hits("/private/a") == site.hits("/private/b") == 0
    assert site.hits("/private/minutes-2024.pdf") == 0
    assert site.hits("/private/open/c") == 1
    assert doc_paths(results) == {"/public/minutes-2024.pdf"}
    assert "3 URLs were skipped: disallowed by robots.txt" in results["warnings"]
    listed = {
        urlsplit(e["page_url"]).path
        for e in results["errors"]
        if e["error_type"] == "robots_disallowed"
    }
    assert listed == {"/private/a", "/private/b"}
    history = await events(d, status["job_id"])
    decisions = {
        urlsplit(e["data"]["url"]).path: e["data"]["decision"]
        for e in history
        if e["event"] == "document"
    }
    assert decisions["/private/minutes-2024.pdf"] == "disallowed"
    pages = {urlsplit(e["data"]["url"]).path: e["data"] for e in history if e["event"] == "page"}
    for path in ("/private/a", "/private/b"):  # skipped: a page event says so, no status
        assert pages[path]["skipped"] == "disallowed", pages[path]
        assert pages[path]["status"] is None
    assert "skipped" not in pages["/private/open/c"] and pages["/private/open/c"]["status"] == 200
    assert results["total_pages_crawled"] == 3  # /, /private/open/c, /public/d
    # Crawl-delay: 1 spaced every request after robots.txt itself.
    after = [t for t, p in site.log if p != "/robots.txt"]
    assert len(after) >= 4
    assert min(gaps(after)) >= 0.75, gaps(after)  # 1 s apart when sent; stamped on arrival
    assert any("Crawl-delay of 1 s" in w for w in results["warnings"])


async def test_robots_404_allows_everything_and_is_fetched_once(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    pages = {f"/p{i}": html(f"<p>page {i}</p>") for i in range(10)}
    site = Site({"/": html("".join(f'<a href="/p{i}">page {i}</a>' for i in range(10))), **pages})
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(), server)
    assert status["total_pages_crawled"] == 11
    assert site.hits("/robots.txt") == 1
    assert not [w for w in results["warnings"] if "robots" in w]


async def test_robots_500_then_200_is_retried_and_obeyed(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site(
        {
            "/robots.txt": sequence(answer(500), robots("User-agent: *\nDisallow: /private/\n")),
            "/": html('<a href="/private/x">x</a><a href="/public/y">y</a>'),
        },
        default=html("<p>a page</p>"),
    )
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    assert site.hits("/robots.txt") == 2
    assert site.hits("/private/x") == 0
    assert site.hits("/public/y") == 1
    assert "1 URLs were skipped: disallowed by robots.txt" in results["warnings"]


async def test_robots_that_never_answers_keeps_the_crawler_out(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    async def hang(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return text("")

    site = Site({"/robots.txt": hang}, default=html("<p>a page</p>"))
    server = await serve(aiohttp_server, site)
    d = await daemon_factory(crawler={"request_timeout_s": 0.5})
    started = asyncio.get_running_loop().time()
    status, _ = await crawl(d, server)
    assert asyncio.get_running_loop().time() - started < 10
    assert status["status"] == "failed"
    assert site.hits("/robots.txt") == 3  # two retries
    assert site.hits("/") == 0
    assert status["errors"][-1]["error_type"] == "robots_unavailable"
    assert any("robots.txt of" in w and "could not be fetched" in w for w in status["warnings"])


async def test_a_disallowed_start_page_fails_the_job(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site({"/robots.txt": robots("User-agent: *\nDisallow: /\n")}, default=html("x"))
    server = await serve(aiohttp_server, site)
    status, _ = await crawl(await daemon_factory(), server)
    assert status["status"] == "failed"
    assert "disallowed by robots.txt" in status["message"]
    assert site.hits("/") == 0


async def test_ignoring_robots_needs_the_daemon_to_allow_it(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site(
        {
            "/robots.txt": robots("User-agent: *\nDisallow: /private/\n"),
            "/": html('<a href="/private/x">x</a>'),
        },
        default=html("<p>a page</p>"),
    )
    server = await serve(aiohttp_server, site)
    strict = await daemon_factory()
    assert strict.client is not None
    refused = await strict.client.post(
        "/scrape",
        json={
            "website": str(server.make_url("/")),
            "prompt": "meeting minutes from 2024",
            "parameters": {"respect_robots": False},
        },
    )
    assert refused.status == 400
    assert "allow_ignore_robots is false" in (await refused.json())["message"]

    lenient = await daemon_factory(crawler={"allow_ignore_robots": True})
    _, results = await crawl(lenient, server)  # the parameter defaults to obeying
    assert site.hits("/private/x") == 0
    _, results = await crawl(lenient, server, respect_robots=False)
    assert site.hits("/private/x") == 1
    assert "robots.txt is not obeyed for this job (respect_robots: false)" in results["warnings"]

    off = await daemon_factory(crawler={"respect_robots": False})
    await crawl(off, server)
    assert site.hits("/private/x") == 2


async def test_disallowed_pages_get_at_most_max_pages_page_events(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    """A page linking 40 disallowed pages: the first 10 are errors, max_pages (5) of them
    are page events, all 40 are counted."""
    links = "".join(f'<a href="/private/{i}">Board meeting minutes {i}</a>' for i in range(40))
    site = Site({"/robots.txt": robots("User-agent: *\nDisallow: /private/\n"), "/": html(links)})
    server = await serve(aiohttp_server, site)
    d = await daemon_factory()
    status, results = await crawl(d, server, max_pages=5)
    assert status["status"] == "completed"
    assert "40 URLs were skipped: disallowed by robots.txt" in results["warnings"]
    assert sum(e["error_type"] == "robots_disallowed" for e in results["errors"]) == 10
    history = await events(d, status["job_id"])
    skipped = [e["data"] for e in history if e["event"] == "page" and e["data"].get("skipped")]
    assert len(skipped) == 5
    assert all(urlsplit(p["url"]).path.startswith("/private/") for p in skipped)
