"""Retries against real servers on 127.0.0.1: Retry-After, backoff, bounds; and the small
fixture-site toolkit the robots, sitemap and trap tests share."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.test_utils import TestServer

from skopd.crawl.fetch import retry_after
from tests.conftest import Daemon, submit, wait_done

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]
DaemonFactory = Callable[..., Awaitable[Daemon]]
PROMPT = "board meeting minutes from 2024"


def html(body: str) -> Responder:
    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(text=f"<html><body>{body}</body></html>", content_type="text/html")

    return respond


def pdf(text: str = "") -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        body = b"%PDF-1.4\n" + (text or request.path).encode()
        return web.Response(body=body, content_type="application/pdf")

    return respond


def answer(status: int, headers: dict[str, str] | None = None, text: str = "") -> Responder:
    async def respond(_: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers, text=text)

    return respond


def sequence(*responders: Responder) -> Responder:
    """The n-th request gets the n-th responder; the last one answers all later requests."""
    queue = list(responders)

    async def respond(request: web.Request) -> web.StreamResponse:
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        return await current(request)

    return respond


class Site:
    """A fixture website: responders by path (`default` for the rest, else 404), and every
    request logged as (arrival time, path with query)."""

    def __init__(self, routes: dict[str, Responder], default: Responder | None = None) -> None:
        self.routes = routes
        self.default = default
        self.log: list[tuple[float, str]] = []

    def hits(self, path: str) -> int:
        return sum(1 for _, p in self.log if p == path)

    def times(self, path: str) -> list[float]:
        return [t for t, p in self.log if p == path]

    def paths(self) -> list[str]:
        return [p for _, p in self.log]

    def app(self) -> web.Application:
        async def handle(request: web.Request) -> web.StreamResponse:
            self.log.append((asyncio.get_running_loop().time(), request.path_qs))
            responder = self.routes.get(request.path_qs) or self.routes.get(request.path)
            if responder is None:
                responder = self.default
            if responder is None:
                raise web.HTTPNotFound()
            return await responder(request)

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        return app


async def serve(aiohttp_server: ServerFactory, site: Site) -> TestServer:
    return await aiohttp_server(site.app(), host="127.0.0.1")


async def crawl(
    daemon: Daemon, server: TestServer, prompt: str = PROMPT, timeout: float = 60, **params: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    assert daemon.client is not None
    params.setdefault("max_depth", 10)
    job_id = await submit(daemon.client, str(server.make_url("/")), prompt, **params)
    status = await wait_done(daemon.client, job_id, timeout=timeout)
    results = await (await daemon.client.get(f"/scrape/results/{job_id}")).json()
    return status, results


async def events(daemon: Daemon, job_id: str) -> list[dict[str, Any]]:
    """An ended job's whole event history, replayed by its SSE stream: (event, data)."""
    assert daemon.client is not None
    out: list[dict[str, Any]] = []
    name = ""
    async with daemon.client.get(f"/scrape/events/{job_id}") as resp:
        assert resp.status == 200
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                out.append({"event": name, "data": json.loads(line.partition(":")[2])})
    return out


def doc_paths(results: dict[str, Any]) -> set[str]:
    return {urlsplit(d["url"]).path for d in results["documents"]}


def gaps(times: Sequence[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# -- Retry-After ----------------------------------------------------------------------


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    assert retry_after("120") == 120.0
    assert retry_after(" 0 ") == 0.0
    later = (now + timedelta(seconds=90)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after(later, now=now) == 90.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # in the past
    assert retry_after("soon", now=now) is None
    assert retry_after("-5") is None
    assert retry_after(None) is None


async def test_429_waits_for_retry_after_then_slows_the_host(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site(
        {
            "/": html('<a href="/minutes/">Board meeting minutes</a>'),
            "/minutes/": sequence(
                answer(429, {"Retry-After": "1"}),
                html('<a href="/minutes-2024.pdf">Board meeting minutes 2024</a>'),
            ),
            "/minutes-2024.pdf": pdf(),
        }
    )
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    assert doc_paths(results) == {"/minutes-2024.pdf"}
    assert results["errors"] == []
    first, second = site.times("/minutes/")
    assert second - first >= 0.95  # Retry-After: 1
    # For a while after a 429 the host gets a pause between requests, though none is set.
    assert site.times("/minutes-2024.pdf")[0] - second >= 0.45


async def test_503_twice_then_200_is_retried_with_backoff(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site(
        {
            "/": html('<a href="/minutes/">Board meeting minutes</a>'),
            "/minutes/": sequence(
                answer(503),
                answer(503),
                html('<a href="/minutes-2024.pdf">Board meeting minutes 2024</a>'),
            ),
            "/minutes-2024.pdf": pdf(),
        }
    )
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    assert doc_paths(results) == {"/minutes-2024.pdf"}
    assert results["errors"] == []
    times = site.times("/minutes/")
    assert len(times) == 3
    assert all(gap >= 0.24 for gap in gaps(times)), gaps(times)  # 0.5 s x 2^n, jitter 0.5-1.5


async def test_retries_are_bounded_and_client_errors_are_not_retried(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    links = ["/always-503", "/gone", "/broken", "/slow-down"]
    site = Site(
        {
            "/": html("".join(f'<a href="{p}">{p}</a>' for p in links)),
            "/always-503": answer(503),
            "/gone": answer(404),
            "/broken": answer(500),
            "/slow-down": answer(502),
        }
    )
    server = await serve(aiohttp_server, site)
    d = await daemon_factory(crawler={"max_retries": 1})
    started = asyncio.get_running_loop().time()
    status, results = await crawl(d, server)
    assert asyncio.get_running_loop().time() - started < 30
    assert status["status"] == "completed"
    assert site.hits("/always-503") == 2  # 1 + crawler.max_retries
    assert site.hits("/slow-down") == 2
    assert site.hits("/gone") == 1
    assert site.hits("/broken") == 1  # 500 is a bug, not a busy server
    errors = {(e["error_type"], urlsplit(e["page_url"]).path) for e in results["errors"]}
    assert errors == {
        ("http_503", "/always-503"),
        ("http_404", "/gone"),
        ("http_500", "/broken"),
        ("http_502", "/slow-down"),
    }


async def test_a_retry_after_longer_than_a_minute_is_not_waited_for(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site(
        {
            "/": html('<a href="/later">Board meeting minutes</a>'),
            "/later": answer(429, {"Retry-After": "3600"}),
        }
    )
    server = await serve(aiohttp_server, site)
    started = asyncio.get_running_loop().time()
    status, results = await crawl(await daemon_factory(), server)
    assert asyncio.get_running_loop().time() - started < 15
    assert status["status"] == "completed"
    assert site.hits("/later") == 1
    assert [e["error_type"] for e in results["errors"]] == ["http_429"]


async def test_a_reset_connection_is_retried(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    resets = 0

    async def reset_twice(request: web.Request) -> web.StreamResponse:
        nonlocal resets
        if resets < 2:
            resets += 1
            assert request.transport is not None
            request.transport.abort()  # the connection dies before any answer
            return web.Response()
        return await html('<a href="/minutes-2024.pdf">Board meeting minutes 2024</a>')(request)

    site = Site(
        {
            "/": html('<a href="/minutes/">Board meeting minutes</a>'),
            "/minutes/": reset_twice,
            "/minutes-2024.pdf": pdf(),
        }
    )
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(), server)
    assert status["status"] == "completed"
    assert doc_paths(results) == {"/minutes-2024.pdf"}
    assert results["errors"] == []


async def test_max_retries_zero_means_one_try(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = Site({"/": html('<a href="/busy">busy</a>'), "/busy": answer(503, {"Retry-After": "0"})})
    server = await serve(aiohttp_server, site)
    status, results = await crawl(await daemon_factory(crawler={"max_retries": 0}), server)
    assert status["status"] == "completed"
    assert site.hits("/busy") == 1
    assert [e["error_type"] for e in results["errors"]] == ["http_503"]
