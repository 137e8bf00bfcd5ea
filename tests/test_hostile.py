"""Hostile answers end their own request with a recoverable error; nothing else suffers.

Each case of the hostile site (tests/sites/hostile.py) is crawled by one job while a calm
job on another site runs at the same time. For every case: the hostile job ends
`completed` with the expected error or warning for that URL, the calm job finds and
downloads its document, the Python heap's peak stays far below what the hostile answer
would take to hold, and no partial file is left in the job's folder.
"""

from __future__ import annotations

import asyncio
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.web.state import CONFIG
from tests.conftest import Daemon, submit, wait_done
from tests.sites import hostile
from tests.sites.hostile import HostileSite

Client = TestClient[web.Request, web.Application]
PROMPT = "board meeting minutes 2024"
MAX_PAGE_BYTES = 1024 * 1024
# Every bomb and endless body decodes to far more than this; what the crawler holds is
# bounded by max_page_bytes (1 MB here) and max_file_size_mb (1 MB), read in small chunks.
HEAP_PEAK_LIMIT = 48 * 1024 * 1024


class Expect(NamedTuple):
    error: str | None = None  # the error_type recorded for the case's first URL
    warning: str | None = None  # a fragment of a job warning
    downloaded: int = 0
    found: int = 0
    message: str = ""  # a fragment of the error message


CASES: dict[str, Expect] = {
    "gzip_page": Expect(error="page_too_large", warning="crawler.max_page_bytes"),
    "deflate_page": Expect(error="page_too_large", warning="crawler.max_page_bytes"),
    "gzip_document": Expect(error="file_too_large", warning="max_file_size_mb", found=1),
    "br_page": Expect(error="bad_response", message="br"),
    "broken_gzip": Expect(error="bad_response"),
    "endless_page": Expect(error="page_too_large", warning="crawler.max_page_bytes"),
    "endless_doc": Expect(error="file_too_large", warning="max_file_size_mb", found=1),
    "drip_page": Expect(error="timeout", message="timed out"),
    "drip_doc": Expect(error="timeout", message="crawler.download_timeout_s"),
    "drip_headers": Expect(error="timeout", message="timed out"),
    "huge_header": Expect(error="bad_response"),
    "many_headers": Expect(error="bad_response", message="headers"),
    "bad_headers": Expect(error="bad_response"),
    "bad_status": Expect(error="bad_response"),
    "bad_chunks": Expect(error="bad_response"),
    "short_body": Expect(error="bad_response"),
    "endless_redirect": Expect(error="too_many_redirects"),
    "bad_charset": Expect(downloaded=1, found=1),
    "deep_html": Expect(downloaded=1, found=1),
    "nul_html": Expect(downloaded=1, found=1),
    "retry_after": Expect(error="http_429", downloaded=1, found=1),
}


@pytest.fixture
async def site() -> AsyncIterator[HostileSite]:
    s = HostileSite()
    await s.start()
    yield s
    await s.close()


@pytest.fixture
async def crawler(daemon_factory: Callable[..., Awaitable[Daemon]]) -> Client:
    d = await daemon_factory(
        crawler={
            "request_timeout_s": 2.0,
            "download_timeout_s": 3.0,
            "max_page_bytes": MAX_PAGE_BYTES,
            "max_redirects": 5,
            "max_retries": 0,
        }
    )
    assert d.client is not None
    return d.client


async def _results(client: Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = await (await client.get(f"/scrape/results/{job_id}")).json()
    return body


@pytest.mark.parametrize("case", list(CASES))
async def test_a_hostile_answer_ends_only_its_own_request(
    case: str, crawler: Client, site: HostileSite, minutes_site: str
) -> None:
    expect = CASES[case]
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        job_id = await submit(crawler, site.url(f"/index/{case}"), PROMPT, max_file_size_mb=1)
        other_id = await submit(crawler, minutes_site, PROMPT, max_file_size_mb=1)
        status = await wait_done(crawler, job_id, timeout=40)
        other = await wait_done(crawler, other_id, timeout=40)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if tracing:
            tracemalloc.stop()

    results = await _results(crawler, job_id)
    assert status["status"] == "completed", status
    assert peak < HEAP_PEAK_LIMIT, f"heap peak {peak / 1e6:.1f} MB"
    first_url = site.url(hostile.CASES[case][0][0])
    errors = {e["page_url"]: e for e in results["errors"]}
    if expect.error is None:
        assert results["errors"] == [], results["errors"]
    else:
        error = errors.get(first_url)
        assert error is not None, results["errors"]
        assert error["error_type"] == expect.error, error
        assert error["is_recoverable"] is True
        assert expect.message in error["error_message"], error
    if expect.warning is not None:
        assert any(expect.warning in w for w in results["warnings"]), results["warnings"]
    assert results["total_documents_downloaded"] == expect.downloaded, results
    assert results["total_documents_found"] == expect.found, results

    # Nothing half-written stays behind; what was kept is a whole file.
    folder = crawler.server.app[CONFIG].documents_path / job_id
    files = sorted(p.name for p in folder.iterdir())
    assert len(files) == expect.downloaded, files
    assert not any(name.startswith(".part") for name in files)
    for message in [e["error_message"] for e in results["errors"]] + results["warnings"]:
        assert str(crawler.server.app[CONFIG].documents_path) not in message

    # The calm job, crawled at the same time, is untouched.
    assert other["status"] == "completed", other
    calm_results = await _results(crawler, other_id)
    assert calm_results["total_documents_downloaded"] == 1, calm_results
    assert calm_results["errors"] == []


async def test_an_endless_redirect_is_followed_max_redirects_times(
    crawler: Client, site: HostileSite
) -> None:
    job_id = await submit(crawler, site.url("/index/endless_redirect"), PROMPT)
    await wait_done(crawler, job_id)
    hops = sum(n for path, n in site.hits.items() if path.startswith("/redirect/"))
    assert hops == 6  # the first request and max_redirects (5) more


@pytest.mark.parametrize("filler", ["comment", "urls"])
async def test_a_sitemap_bomb_is_read_in_part(
    filler: str, crawler: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """/sitemap.xml is a gzip file decoding to an endless comment, or endless <url> entries."""

    async def home(_: web.Request) -> web.Response:
        return web.Response(text="<html><body>board</body></html>", content_type="text/html")

    async def sitemap(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-gzip"})
        await resp.prepare(request)
        comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        await resp.write(
            comp.compress(
                b'<?xml version="1.0"?><urlset><!--' if filler == "comment" else b"<urlset>"
            )
        )
        for i in range(100_000):  # far more than any limit; stops when the reader goes
            if filler == "comment":
                block = b"\0" * 1024 * 1024
            else:
                block = b"".join(b"<url><loc>/p/%d/%d</loc></url>" % (i, j) for j in range(2000))
            await resp.write(comp.compress(block) + comp.flush(zlib.Z_SYNC_FLUSH))
            await asyncio.sleep(0)
        return resp

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/sitemap.xml", sitemap)
    server = await aiohttp_server(app, host="127.0.0.1")
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        job_id = await submit(crawler, str(server.make_url("/")), PROMPT, max_pages=3)
        status = await wait_done(crawler, job_id, timeout=60)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if tracing:
            tracemalloc.stop()
    assert status["status"] == "completed", status
    assert peak < HEAP_PEAK_LIMIT, f"heap peak {peak / 1e6:.1f} MB"
    results = await _results(crawler, job_id)
    told = results["warnings"] + [e["error_message"] for e in results["errors"]]
    assert any("sitemap" in m for m in told), told


async def test_a_retry_after_that_is_no_number_ends_only_its_request(
    crawler: Client, site: HostileSite
) -> None:
    """Each 429/503 whose Retry-After is a superscript, other scripts' digits or a date in
    them is that page's error; the crawl goes on and fetches the rest."""
    job_id = await submit(crawler, site.url("/index/retry_after"), PROMPT)
    status = await wait_done(crawler, job_id, timeout=40)
    assert status["status"] == "completed", status
    results = await _results(crawler, job_id)
    errors = {e["page_url"]: e for e in results["errors"]}
    for path, (answer, _) in hostile.HOSTILE_RETRY_AFTER.items():
        error = errors.get(site.url(path))
        assert error is not None, results["errors"]
        assert error["error_type"] == f"http_{answer.split()[0].decode()}", error
        assert error["is_recoverable"] is True
    assert results["total_documents_downloaded"] == 1, results


async def test_a_robots_txt_with_a_retry_after_that_is_no_number_is_unavailable(
    crawler: Client, site: HostileSite
) -> None:
    """robots.txt answering 503 with such a Retry-After is retried, then the origin is
    unavailable: the job fails saying so (not with an internal error)."""
    site.hostile_robots = True
    job_id = await submit(crawler, site.url("/index/retry_after"), PROMPT)
    status = await wait_done(crawler, job_id, timeout=40)
    assert status["status"] == "failed", status
    results = await _results(crawler, job_id)
    assert [e["error_type"] for e in results["errors"]] == ["robots_unavailable"], results
    assert "robots.txt" in results["errors"][0]["error_message"]
    assert site.hits["/robots.txt"] == 3  # asked again twice, then given up


@pytest.mark.parametrize(
    "header", [b"X-API-Key: \xff\xfe\x80key", b"Authorization: Bearer k\xc3\x28\xffey"]
)
async def test_an_api_key_that_is_not_utf8_is_refused_with_401(
    header: bytes, daemon_factory: Callable[..., Awaitable[Daemon]]
) -> None:
    """Raw bytes in the key's header: 401 in the JSON error shape, not a 500."""
    d = await daemon_factory(server={"api_keys": ["right-key"]})
    assert d.client is not None
    port = d.client.server.port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /scrape/status/job_x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + header
        + b"\r\n\r\n"
    )
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"401", answer
    error = json.loads(body)
    assert error["error"] is True and error["status_code"] == 401, error
    assert "API key" in error["message"]
