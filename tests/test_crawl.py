"""Crawling the messy fixture website end to end, through the HTTP API."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.web.state import CONFIG
from tests.conftest import Daemon, submit, wait_done
from tests.sites import docsite as site

Client = TestClient[web.Request, web.Application]
DaemonFactory = Callable[..., Awaitable[Daemon]]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def _crawl(
    client: Client, server: TestServer, prompt: str, **params: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    params.setdefault("max_depth", 10)
    params.setdefault("max_file_size_mb", 1)
    job_id = await submit(client, str(server.make_url("/")), prompt, **params)
    status = await wait_done(client, job_id, timeout=90)
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    return status, results


@pytest.fixture
async def crawler(daemon_factory: DaemonFactory) -> Client:
    d = await daemon_factory(crawler={"request_timeout_s": 2.0})
    assert d.client is not None
    return d.client


async def test_minutes_2024_are_found_on_a_messy_site(crawler: Client, docsite: TestServer) -> None:
    status, results = await _crawl(crawler, docsite, "board meeting minutes from 2024")
    assert status["status"] == "completed", status
    docs = results["documents"]
    found = {site.canonical(_path(d["url"])) for d in docs}
    by_path = {site.canonical(_path(d["url"])): d for d in docs}

    # Every kind of link the site hides them behind: uppercase and query extensions,
    # Content-Type only, Content-Disposition only, magic bytes only, redirects, base href,
    # iframes, embed/object, meta refresh, sibling-cell titles, <summary> and <h2> years.
    assert found >= site.MINUTES_2024, sorted(site.MINUTES_2024 - found)
    assert not found & site.UNRELATED
    assert not any(urlsplit(d["url"]).hostname != "127.0.0.1" for d in docs)

    # The right year ranks first.
    lowest_2024 = min(by_path[p]["confidence_score"] for p in site.MINUTES_2024)
    for path in site.MINUTES_2023 & found:
        assert by_path[path]["confidence_score"] < lowest_2024, path

    # The same bytes at two URLs are one document.
    assert len({d["sha256"] for d in docs}) == len(docs)

    # Names are readable titles, never the link text "PDF" or "Download".
    for d in docs:
        assert d["name"].strip().lower() not in ("pdf", "[pdf]", "download", "")

    # The oversized file is found but not downloaded, with a warning.
    assert site.HUGE_PDF not in found
    assert results["total_documents_found"] == results["total_documents_downloaded"] + 1
    assert any("max_file_size_mb" in w for w in results["warnings"])
    assert any(
        e["error_type"] == "file_too_large" and e["page_url"].endswith(site.HUGE_PDF)
        for e in results["errors"]
    ), results["errors"]

    # Per-page problems are recoverable errors; the job went on.
    errors = {(e["error_type"], _path(e["page_url"] or "")) for e in results["errors"]}
    assert all(e["is_recoverable"] for e in results["errors"])
    assert ("timeout", "/slow") in errors
    assert ("redirect_loop", "/loop/a") in errors or ("redirect_loop", "/loop/b") in errors
    assert ("http_404", "/council/gone/") in errors

    # Stored files match what the results say.
    first = docs[0]
    body = await (await crawler.get(first["download_url"])).read()
    assert (
        len(body) == round(first["file_size_mb"] * 1024 * 1024)
        or abs(len(body) / (1024 * 1024) - first["file_size_mb"]) < 0.001
    )


async def test_each_url_is_fetched_once(crawler: Client, docsite: TestServer) -> None:
    await _crawl(crawler, docsite, "board meeting minutes from 2024")
    hits = docsite.app[site.HITS]
    repeated = {path: n for path, n in hits.items() if n > 1 and path not in site.REDIRECT_LOOP}
    assert repeated == {}


async def test_prompt_year_decides_the_ranking(crawler: Client, docsite: TestServer) -> None:
    _, results = await _crawl(crawler, docsite, "board meeting minutes from 2023")
    by_path = {site.canonical(_path(d["url"])): d for d in results["documents"]}
    assert set(by_path) >= site.MINUTES_2023
    lowest_2023 = min(by_path[p]["confidence_score"] for p in site.MINUTES_2023)
    for path in site.MINUTES_2024 & set(by_path):
        assert by_path[path]["confidence_score"] < lowest_2023, path


async def test_non_utf8_pages_are_read_in_their_encoding(
    crawler: Client, docsite: TestServer
) -> None:
    _, results = await _crawl(crawler, docsite, "Protokoll März 2024")
    by_path = {_path(d["url"]): d for d in results["documents"]}
    assert set(by_path) >= site.PROTOKOLL_2024
    name = by_path["/de/protokoll-2024-03.pdf"]["name"]
    assert "März" in name


async def test_max_pages_ends_completed_with_a_warning(
    crawler: Client, docsite: TestServer
) -> None:
    status, results = await _crawl(crawler, docsite, "board meeting minutes from 2024", max_pages=5)
    assert status["status"] == "completed"
    assert status["total_pages_crawled"] <= 5
    assert any("max_pages" in w for w in results["warnings"])
    assert "max_pages" in status["message"]


async def test_max_depth_and_single_page(crawler: Client, docsite: TestServer) -> None:
    hits = docsite.app[site.HITS]
    status, _ = await _crawl(crawler, docsite, "news about the town council", max_depth=1)
    assert status["status"] == "completed"
    assert hits["/news/"] == 1  # depth 1
    assert hits["/news/1"] == 0  # depth 2: linked, not fetched
    status, results = await _crawl(
        crawler, docsite, "board meeting minutes from 2024", single_page=True
    )
    assert status["total_pages_crawled"] == 1
    assert all(d["source_page"] == str(docsite.make_url("/")) for d in results["documents"])


async def test_exclude_paths_keep_the_crawl_out(crawler: Client, docsite: TestServer) -> None:
    hits = docsite.app[site.HITS]
    _, results = await _crawl(
        crawler, docsite, "board meeting minutes from 2024", exclude_paths=["/council/*"]
    )
    assert not [p for p in hits if p.startswith("/council/")]
    assert not [d for d in results["documents"] if "/council/" in d["source_page"]]


async def test_document_types_filter(crawler: Client, docsite: TestServer) -> None:
    _, results = await _crawl(
        crawler, docsite, "board meeting minutes from 2024", document_types=["docx", "odt"]
    )
    types = {d["document_type"] for d in results["documents"]}
    assert types and types <= {"docx", "odt"}


async def test_unreachable_start_page_fails_the_job(crawler: Client) -> None:
    job_id = await submit(crawler, "http://127.0.0.1:9/", "board meeting minutes from 2024")
    status = await wait_done(crawler, job_id)
    assert status["status"] == "failed"
    assert status["has_errors"] is True
    [error] = status["errors"]
    assert error["is_recoverable"] is False
    assert error["agent_name"] == "coordinator"
    assert "127.0.0.1:9" in error["error_message"]


async def test_start_page_404_fails_the_job(crawler: Client, docsite: TestServer) -> None:
    job_id = await submit(
        crawler, str(docsite.make_url("/council/gone/")), "board meeting minutes from 2024"
    )
    status = await wait_done(crawler, job_id)
    assert status["status"] == "failed"
    assert "404" in status["message"]


async def test_private_targets_are_refused_by_default(
    daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    d = await daemon_factory(crawler={"allow_private_networks": False})
    assert d.client is not None
    # An address is refused at once; a name when the job resolves it.
    body = {"website": str(docsite.make_url("/")), "prompt": "board meeting minutes from 2024"}
    resp = await d.client.post("/scrape", json=body)
    assert resp.status == 400
    assert "website: 127.0.0.1 is a private" in (await resp.json())["message"]
    job_id = await submit(
        d.client, f"http://localhost:{docsite.port}/", "board meeting minutes from 2024"
    )
    status = await wait_done(d.client, job_id)
    assert status["status"] == "failed"
    assert "allow_private_networks" in status["errors"][0]["error_message"]
    assert sum(docsite.app[site.HITS].values()) == 0


async def test_results_grow_while_the_job_runs(crawler: Client, docsite: TestServer) -> None:
    job_id = await submit(
        crawler, str(docsite.make_url("/")), "board meeting minutes from 2024", max_depth=10
    )
    seen_running_with_documents = False
    for _ in range(400):
        results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
        # Documents and their counters are written together: never one without the other.
        assert results["total_documents_downloaded"] == len(results["documents"])
        if results["status"] == "in_progress" and results["documents"]:
            seen_running_with_documents = True
            assert results["metadata"]["final_status"] is None
        if results["status"] != "in_progress" and results["status"] != "pending":
            break
        await asyncio.sleep(0.05)
    assert seen_running_with_documents  # the slow page keeps the job running for 2 s


async def test_restart_resumes_running_jobs_before_pending_ones(
    daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    d = await daemon_factory(jobs={"max_concurrent_jobs": 1}, crawler={"request_timeout_s": 10})
    assert d.client is not None
    url = str(docsite.make_url("/"))
    running = await submit(d.client, url, "board meeting minutes from 2024", max_depth=10)
    pending = await submit(d.client, url, "board meeting minutes from 2024", single_page=True)
    for _ in range(400):
        status = await (await d.client.get(f"/scrape/status/{running}")).json()
        if status["total_pages_crawled"] >= 5:
            break
        await asyncio.sleep(0.02)
    await d.stop()
    client = await d.start()
    status = await (await client.get(f"/scrape/status/{running}")).json()
    assert status["status"] == "in_progress", status  # resuming, not failed
    assert status["total_pages_crawled"] >= 5
    assert (await (await client.get(f"/scrape/status/{pending}")).json())["status"] == "pending"
    status = await wait_done(client, running, timeout=90)
    assert status["status"] == "completed", status
    assert any(w.startswith("resumed after daemon restart: ") for w in status["warnings"])
    assert not any(e["error_type"] == "daemon_restart" for e in status["errors"])
    results = await (await client.get(f"/scrape/results/{running}")).json()
    found = [site.canonical(_path(doc["url"])) for doc in results["documents"]]
    assert len(found) == len(set(found)) and set(found) >= site.MINUTES_2024, found
    assert len({doc["sha256"] for doc in results["documents"]}) == len(found)
    assert (await wait_done(client, pending))["status"] == "completed"


async def test_timeout_ends_completed_with_what_was_found(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """An endless, slow, branching site: the job's timeout (60 s, the least allowed) ends it."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        await asyncio.sleep(0.5)
        return web.Response(
            text=f'<a href="/p/{2 * n + 1}">one</a> <a href="/p/{2 * n + 2}">two</a> '
            f'<a href="/minutes-2024-{n}.pdf">Board minutes 2024 no. {n}</a>',
            content_type="text/html",
        )

    async def pdf(_: web.Request) -> web.Response:
        return web.Response(
            body=b"%PDF-1.4\n" + bytes(_.path, "ascii"), content_type="application/pdf"
        )

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    app.router.add_get("/{name}.pdf", pdf)
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await submit(
        crawler,
        str(server.make_url("/")),
        "board meeting minutes from 2024",
        timeout=60,
        max_depth=100,
    )
    status = await wait_done(crawler, job_id, timeout=90)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    assert status["status"] == "completed"
    assert "timeout" in status["message"]
    assert any("timeout of 60 s" in w for w in status["warnings"])
    assert 59 <= results["total_runtime_seconds"] < 70
    assert results["documents"]


def _linking_site(pages: dict[str, str], stamps: list[float] | None = None) -> web.Application:
    """A site of literal pages; `stamps` collects the arrival time of every request."""

    async def handler(request: web.Request) -> web.Response:
        if stamps is not None:
            stamps.append(asyncio.get_running_loop().time())
        body = pages.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        if request.path.endswith(".pdf"):
            return web.Response(
                body=b"%PDF-1.4\n" + request.path.encode(), content_type="application/pdf"
            )
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


async def test_best_first_reaches_the_relevant_section_first(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    pages = {"/": "".join(f'<a href="/news/{i}">Street festival report {i}</a>' for i in range(30))}
    pages["/"] += '<a href="/council/minutes/">Board meeting minutes</a>'
    pages["/council/minutes/"] = '<a href="/m-2024.pdf">Board meeting minutes 2024</a>'
    pages["/m-2024.pdf"] = ""
    for i in range(30):
        pages[f"/news/{i}"] = "<p>festival</p>"
    server = await aiohttp_server(_linking_site(pages), host="127.0.0.1")
    job_id = await submit(
        crawler, str(server.make_url("/")), "board meeting minutes from 2024", max_pages=2
    )
    await wait_done(crawler, job_id)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    assert [_path(d["url"]) for d in results["documents"]] == ["/m-2024.pdf"]


async def test_include_paths_limit_the_crawl(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    stamps: list[float] = []
    pages = {
        "/": '<a href="/a/1">a</a><a href="/b/1">b</a>',
        "/a/1": '<a href="/a/minutes-2024.pdf">Minutes 2024</a>',
        "/b/1": '<a href="/b/minutes-2024.pdf">Minutes 2024</a>',
        "/a/minutes-2024.pdf": "",
        "/b/minutes-2024.pdf": "",
    }
    server = await aiohttp_server(_linking_site(pages, stamps), host="127.0.0.1")
    job_id = await submit(
        crawler, str(server.make_url("/")), "meeting minutes from 2024", include_paths=["/a/*"]
    )
    status = await wait_done(crawler, job_id)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    assert status["total_pages_crawled"] == 2
    assert [_path(d["url"]) for d in results["documents"]] == ["/a/minutes-2024.pdf"]


async def test_links_to_images_scripts_and_archives_are_not_fetched(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    assets = ["/photo.jpg", "/style.css", "/app.js", "/backup.zip", "/clip.mp4", "/feed.rss"]
    pages = {"/": "".join(f'<a href="{a}">Board meeting minutes {a}</a>' for a in assets)}
    pages["/"] += '<a href="/meetings/">Meetings</a>'
    pages["/meetings/"] = '<a href="/m-2024.pdf">Board meeting minutes 2024</a>'
    pages.update({a: "<p>not a page</p>" for a in assets})
    pages["/m-2024.pdf"] = ""
    asked: list[str] = []
    app = _linking_site(pages)
    app.middlewares.append(_recording(asked))
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await submit(crawler, str(server.make_url("/")), "meeting minutes from 2024")
    await wait_done(crawler, job_id)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    assert [_path(d["url"]) for d in results["documents"]] == ["/m-2024.pdf"]
    assert "/meetings/" in asked
    assert not set(assets) & set(asked), asked


def _recording(asked: list[str]) -> Any:
    @web.middleware
    async def record(request: web.Request, handler: Any) -> web.StreamResponse:
        asked.append(request.path)
        return await handler(request)

    return record


async def test_per_host_delay_spaces_requests(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    stamps: list[float] = []
    pages = {"/": "".join(f'<a href="/p{i}">page {i}</a>' for i in range(5))}
    pages.update({f"/p{i}": "<p>x</p>" for i in range(5)})
    server = await aiohttp_server(_linking_site(pages, stamps), host="127.0.0.1")
    d = await daemon_factory(crawler={"per_host_delay_ms": 200})
    assert d.client is not None
    job_id = await submit(d.client, str(server.make_url("/")), "meeting minutes from 2024")
    await wait_done(d.client, job_id)
    assert len(stamps) == 8  # robots.txt, sitemap.xml, six pages
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.15, gaps  # 0.2 s apart when sent; the server stamps them on a loaded box


async def test_document_text_decides_when_the_link_says_nothing(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """Code-named links: the PDF's own text is the only evidence, kept or dropped by it."""
    files = {
        "/f/DOC-2024-117.pdf": site.make_pdf(
            "Board meeting minutes, 12 March 2024",
            "Minutes of the board meeting held on 12 March 2024",
        ),
        "/f/DOC-2024-118.pdf": site.make_pdf(
            "Parking permit", "Application form for a residents parking permit"
        ),
    }

    async def handler(request: web.Request) -> web.Response:
        if request.path in files:
            return web.Response(body=files[request.path], content_type="application/pdf")
        links = "".join(f'<li><a href="{p}">{p.rsplit("/", 1)[1]}</a></li>' for p in files)
        return web.Response(text=f"<ul>{links}</ul>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await submit(crawler, str(server.make_url("/")), "board meeting minutes from 2024")
    await wait_done(crawler, job_id)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    [doc] = results["documents"]
    assert _path(doc["url"]) == "/f/DOC-2024-117.pdf"
    assert doc["name"] == "Board meeting minutes, 12 March 2024"  # from the PDF's title
    assert doc["confidence_score"] >= 0.1
    documents_dir = crawler.server.app[CONFIG].documents_path / job_id
    stored = list(documents_dir.iterdir())  # the irrelevant file was removed, no part files
    assert len(stored) == 1
    assert stored[0].read_bytes() == files["/f/DOC-2024-117.pdf"]


async def test_the_start_page_may_itself_be_a_document(
    crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    async def pdf(_: web.Request) -> web.Response:
        return web.Response(
            body=site.make_pdf("Board meeting minutes 2024"), content_type="application/pdf"
        )

    async def png(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\0" * 64, content_type="image/png")

    app = web.Application()
    app.router.add_get("/board-minutes-2024.pdf", pdf)
    app.router.add_get("/logo", png)
    server = await aiohttp_server(app, host="127.0.0.1")
    job_id = await submit(
        crawler, str(server.make_url("/board-minutes-2024.pdf")), "board meeting minutes from 2024"
    )
    status = await wait_done(crawler, job_id)
    results = await (await crawler.get(f"/scrape/results/{job_id}")).json()
    assert status["status"] == "completed"
    assert [_path(d["url"]) for d in results["documents"]] == ["/board-minutes-2024.pdf"]

    job_id = await submit(crawler, str(server.make_url("/logo")), "board meeting minutes 2024")
    status = await wait_done(crawler, job_id)
    assert status["status"] == "failed"
    assert "image/png" in status["message"]


async def test_requests_per_host_are_bounded(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    in_flight = 0
    most = 0

    async def page(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        try:
            await asyncio.sleep(0.05)
        finally:
            in_flight -= 1
        links = "".join(f'<a href="/p{i}">page {i}</a>' for i in range(30))
        return web.Response(text=links, content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    server = await aiohttp_server(app, host="127.0.0.1")
    d = await daemon_factory(crawler={"concurrency": 16, "per_host_concurrency": 3})
    assert d.client is not None
    job_id = await submit(d.client, str(server.make_url("/")), "meeting minutes from 2024")
    status = await wait_done(d.client, job_id)
    assert status["total_pages_crawled"] == 31
    assert most == 3
