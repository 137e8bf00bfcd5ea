"""Crawler traps: the checks themselves, and crawls of trap sites that must end soon."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
from typing import Any

import msgspec
from aiohttp import web

from skopd.crawl.traps import (
    CALENDAR,
    DUPLICATE_CONTENT,
    MAX_DATE_CHAIN,
    MAX_QUERIES_PER_PATH,
    MAX_SAVED_CONTENTS,
    MAX_SAVED_COUNTS,
    QUERY_VARIANTS,
    REPEATED_SEGMENTS,
    URL_LENGTH,
    TrapGuard,
    TrapState,
    date_pattern,
    repeated_segment,
    years,
)
from skopd.crawl.urls import normalize_url
from tests.test_polite import (
    DaemonFactory,
    ServerFactory,
    Site,
    crawl,
    doc_paths,
    html,
    pdf,
    serve,
)


def guard(**limits: int) -> TrapGuard:
    return TrapGuard(limits.pop("max_url_length", 2048), year_now=2025, **limits)


def link(g: TrapGuard, url: str, from_dated_page: bool = False) -> str | None:
    return g.page_link(url, normalize_url(url), from_dated_page)


def test_repeated_segments() -> None:
    assert repeated_segment("http://h/a/b/a/b/a/b")
    assert repeated_segment("http://h/x/x/x/")
    assert not repeated_segment("http://h/a/b/a/b")
    assert not repeated_segment("http://h/2024/01/01/minutes")  # "01" twice only
    assert not repeated_segment("http://h/a/a?x=/a/a/a")  # the query is not the path


def test_years_come_only_from_date_like_parts() -> None:
    assert years("http://h/events/2024/06") == [2024]
    assert years("http://h/cal?month=6&year=2031") == [2031]
    assert years("http://h/day/2024-06-12") == [2024]
    assert years("http://h/node/12345/7") == []
    assert years("http://h/minutes-2024.pdf") == []  # a year alone is no calendar
    assert date_pattern("http://h/cal/2024/06") == "http://h/cal/#/#"


def test_url_length_and_repeated_segments_stop_pages_and_documents() -> None:
    g = guard(max_url_length=300)
    assert link(g, "http://h/" + "x" * 300) == URL_LENGTH
    assert g.document_link("http://h/a/b/a/b/a/b.pdf", "http://h/a/b/a/b/a/b.pdf") == (
        REPEATED_SEGMENTS
    )
    assert g.document_link("http://h/files/a.pdf", "http://h/files/a.pdf") is None
    assert g.stopped == {URL_LENGTH: 1, REPEATED_SEGMENTS: 1}


def test_query_strings_per_path_are_capped() -> None:
    g = guard(max_queries_per_path=5)
    results = [link(g, f"http://h/list?s={i}") for i in range(8)]
    assert results == [None] * 5 + [QUERY_VARIANTS] * 3
    assert link(g, "http://h/other?s=1") is None  # another path has its own count
    assert link(g, "http://h/list") is None  # the bare path is not a variant


def test_calendar_dates_out_of_range_and_long_date_chains_are_stopped() -> None:
    g = guard(max_date_chain=3)
    assert link(g, "http://h/cal/2036/01") == CALENDAR  # > 2025 + 10
    assert link(g, "http://h/cal?year=1850&month=2") == CALENDAR
    # Dates linked from an undated page (an archive index) are never counted.
    assert all(link(g, f"http://h/minutes/2020-{m:02d}") is None for m in range(1, 13))
    # Dates linked from dated pages (next/previous month) are, per URL pattern.
    chain = [link(g, f"http://h/cal/2024/{m:02d}", from_dated_page=True) for m in range(1, 7)]
    assert chain == [None, None, None, CALENDAR, CALENDAR, CALENDAR]
    assert link(g, "http://h/week/2024-01", from_dated_page=True) is None
    assert g.dated("http://h/cal/2024/06") and not g.dated("http://h/cal/")


def test_duplicate_content_is_recognised() -> None:
    g = guard()
    assert not g.duplicate_content(b"<p>one</p>", "http://h/a")
    assert not g.duplicate_content(b"<p>two</p>", "http://h/b")
    assert g.duplicate_content(b"<p>one</p>", "http://h/c")
    # the same page read again (a resumed crawl choosing its links anew) is no copy
    assert not g.duplicate_content(b"<p>one</p>", "http://h/a")
    assert g.stopped == {}  # a check only: what the crawl stops for a copy, it counts
    g.copy_stopped()
    assert g.stopped == {DUPLICATE_CONTENT: 1}


def test_the_guard_goes_on_from_its_checkpoint_in_another_process() -> None:
    """The counters and page digests survive a restart: written by one interpreter (its
    own hash() salt), read back by this one."""
    script = (
        "import sys, msgspec\n"
        "from skopd.crawl.traps import TrapGuard\n"
        "from skopd.crawl.urls import normalize_url\n"
        "g = TrapGuard(2048, year_now=2025, max_queries_per_path=5, max_date_chain=3)\n"
        "def add(url, dated): g.page_link(url, normalize_url(url), dated)\n"
        "for i in range(5): add(f'http://h/list?s={i}', False)\n"
        "for m in (1, 2, 3): add(f'http://h/cal/2024/0{m}', True)\n"
        "g.duplicate_content(b'<p>one</p>', 'http://h/one')\n"
        "sys.stdout.buffer.write(msgspec.msgpack.encode(g.checkpoint()))\n"
    )
    saved = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, check=True, timeout=60
    ).stdout
    g = guard(max_queries_per_path=5, max_date_chain=3)
    g.restore(msgspec.msgpack.decode(saved, type=TrapState))
    assert link(g, "http://h/list?s=99") == QUERY_VARIANTS  # the sixth variant
    assert link(g, "http://h/cal/2024/04", from_dated_page=True) == CALENDAR  # the fourth
    assert g.duplicate_content(b"<p>one</p>", "http://h/copy")  # a page of the first run
    assert not g.duplicate_content(b"<p>one</p>", "http://h/one")  # that page itself
    assert not g.duplicate_content(b"<p>two</p>", "http://h/two")
    assert g.state() == msgspec.msgpack.decode(msgspec.msgpack.encode(g.state()), type=TrapState)


def test_the_checkpointed_guard_is_bounded() -> None:
    g = guard(max_queries_per_path=10**6)
    for i in range(MAX_SAVED_COUNTS + 500):
        link(g, f"http://h/p{i}?s=1")
    for _ in range(50):  # one path close to its limit
        link(g, f"http://h/hot?s={secrets.token_hex(4)}")
    for i in range(MAX_SAVED_CONTENTS + 100):
        g.duplicate_content(b"page %d" % i, f"http://h/{i}")
    state = g.state()
    assert len(state.queries) == MAX_SAVED_COUNTS
    assert state.queries["http://h/hot"] == 50  # the highest counts are kept
    assert len(state.contents) == 16 * MAX_SAVED_CONTENTS
    fresh = guard()
    fresh.restore(state)
    assert fresh.duplicate_content(b"page %d" % (MAX_SAVED_CONTENTS + 99), "http://h/copy")


# -- trap sites ---------------------------------------------------------------------


async def trap_crawl(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory, site: Site
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Crawl with limits far above what the trap should allow; it must end soon anyway."""
    server = await serve(aiohttp_server, site)
    started = asyncio.get_running_loop().time()
    status, results = await crawl(
        await daemon_factory(), server, max_depth=100, max_pages=5000, timeout=120
    )
    assert asyncio.get_running_loop().time() - started < 30
    assert status["status"] == "completed", status
    return status, results


def count_in(results: dict[str, Any], text: str) -> int:
    """The count that starts the one warning containing `text`."""
    [found] = [w for w in results["warnings"] if text in w]
    return int(found.split()[0])


async def test_an_endless_calendar_is_cut_short(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    async def month(request: web.Request) -> web.StreamResponse:
        if not request.path.startswith("/calendar/"):
            raise web.HTTPNotFound()
        y, m = (int(x) for x in request.path.split("/")[2:4])
        before = (y, m - 1) if m > 1 else (y - 1, 12)
        after = (y, m + 1) if m < 12 else (y + 1, 1)
        minutes = '<a href="/files/minutes-2024-06.pdf">Board meeting minutes June 2024</a>'
        return web.Response(
            text=f'<h1>{y}-{m}</h1><a href="/calendar/{before[0]}/{before[1]:02d}">previous</a>'
            f'<a href="/calendar/{after[0]}/{after[1]:02d}">next</a>'
            f"{minutes if (y, m) == (2024, 6) else ''}",
            content_type="text/html",
        )

    site = Site(
        {
            "/": html('<a href="/calendar/2024/06">Calendar</a>'),
            "/files/minutes-2024-06.pdf": pdf(),
        },
        default=month,
    )
    _, results = await trap_crawl(daemon_factory, aiohttp_server, site)
    assert doc_paths(results) == {"/files/minutes-2024-06.pdf"}
    months = [p for p in site.paths() if p.startswith("/calendar/")]
    assert MAX_DATE_CHAIN <= len(months) <= MAX_DATE_CHAIN + 3, len(months)
    assert count_in(results, "(a calendar trap)") >= 1


async def test_a_query_string_trap_is_capped_per_path(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    async def listing(_: web.Request) -> web.StreamResponse:
        fresh = [secrets.token_hex(8) for _ in range(3)]
        return web.Response(
            text=f'<a href="/list?token={fresh[0]}">more</a>'
            f'<a href="/list?token={fresh[1]}">sorted</a>'
            f'<a href="/item?token={fresh[2]}">item</a>',
            content_type="text/html",
        )

    site = Site({"/": html('<a href="/list?token=start">list</a>')}, default=listing)
    _, results = await trap_crawl(daemon_factory, aiohttp_server, site)
    paths = site.paths()
    assert sum(p.startswith("/list?") for p in paths) == MAX_QUERIES_PER_PATH
    assert sum(p.startswith("/item?") for p in paths) == MAX_QUERIES_PER_PATH
    assert count_in(results, "query strings on one path") >= 100


async def test_a_relative_link_loop_is_cut_at_repeated_segments(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    async def loop(request: web.Request) -> web.StreamResponse:
        return web.Response(
            text=f'<p>{request.path}</p><a href="a/">a</a><a href="b/">b</a>',
            content_type="text/html",
        )

    site = Site({}, default=loop)
    _, results = await trap_crawl(daemon_factory, aiohttp_server, site)
    pages = [p for p in site.paths() if p not in ("/robots.txt", "/sitemap.xml")]
    # Every path of a and b with no segment three times: 1 + 2 + 4 + 6 + 6.
    assert len(pages) == 19, pages
    assert "/a/b/a/b/" in pages
    assert count_in(results, "a path segment repeated") == 19 * 2 - 18


async def test_pages_with_the_same_content_are_not_followed(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    async def deeper(request: web.Request) -> web.StreamResponse:
        return web.Response(text=f"<p>{request.path}</p>", content_type="text/html")

    copies = {f"/copy/{i}/": html('<a href="deeper/">deeper</a>') for i in range(30)}
    site = Site(
        {"/": html("".join(f'<a href="{p}">{p}</a>' for p in copies)), **copies}, default=deeper
    )
    _, results = await trap_crawl(daemon_factory, aiohttp_server, site)
    assert sum(p.startswith("/copy/") and p.endswith("/deeper/") for p in site.paths()) == 1
    assert count_in(results, "pages had the same content as an earlier page") == 29


async def test_overlong_urls_are_not_followed(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    long_path = "/p/" + "x" * 3000
    site = Site(
        {"/": html(f'<a href="{long_path}">long</a><a href="/short">short</a>')},
        default=html("<p>page</p>"),
    )
    _, results = await trap_crawl(daemon_factory, aiohttp_server, site)
    assert site.hits("/short") == 1
    assert site.hits(long_path) == 0
    assert count_in(results, "links longer than crawler.max_url_length (2048") == 1
