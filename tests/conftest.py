"""Shared fixtures: a daemon on 127.0.0.1 with its own database, and the fixture website."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.config import Config
from skopd.web.app import make_app
from tests.fake_ollama import FakeOllama
from tests.sites.docsite import make_docsite
from tests.sites.facesite import RELEASE, make_facesite


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    raw: dict[str, Any] = {
        "crawler": {"allow_private_networks": True, "request_timeout_s": 10.0},
        # Deterministic by default: a developer's own Ollama must not change test results.
        "relevance": {"backend": "lexical"},
        "base_dir": str(tmp_path),
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return msgspec.convert(raw, Config)


class Daemon:
    """A skopd app on a real loopback port that a test can stop and start again."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.client: TestClient[web.Request, web.Application] | None = None

    async def start(self) -> TestClient[web.Request, web.Application]:
        server = TestServer(make_app(self.cfg), host="127.0.0.1")
        self.client = TestClient(server)
        await self.client.start_server()
        return self.client

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None


DaemonFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def daemon_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Daemon]]]:
    daemons: list[Daemon] = []

    async def factory(**sections: dict[str, Any]) -> Daemon:
        d = Daemon(make_config(tmp_path, **sections))
        await d.start()
        daemons.append(d)
        return d

    yield factory
    for d in daemons:
        await d.stop()


@pytest.fixture
async def client(
    daemon_factory: Callable[..., Awaitable[Daemon]],
) -> TestClient[web.Request, web.Application]:
    d = await daemon_factory()
    assert d.client is not None
    return d.client


@pytest.fixture
async def fake() -> AsyncIterator[FakeOllama]:
    """A fake Ollama on 127.0.0.1, driven through the real client."""
    server = FakeOllama()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def docsite() -> AsyncIterator[TestServer]:
    server = TestServer(make_docsite(), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


@pytest.fixture
async def minutes_site() -> AsyncIterator[str]:
    """A well-behaved site: one page linking one relevant PDF. Yields its home URL."""
    pdf = b"%PDF-1.4\n% minutes\n" + b"x" * 5000 + b"\n%%EOF\n"

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text='<html><body><a href="/minutes-2024.pdf">Board meeting minutes 2024</a>'
            "</body></html>",
            content_type="text/html",
        )

    async def minutes(_: web.Request) -> web.Response:
        return web.Response(body=pdf, content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/minutes-2024.pdf", minutes)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


@pytest.fixture
async def facesite() -> AsyncIterator[TestServer]:
    server = TestServer(make_facesite(), host="127.0.0.1")
    await server.start_server()
    yield server
    server.app[RELEASE].set()  # no request left hanging on /slow
    await server.close()


async def wait_done(
    client: TestClient[web.Request, web.Application],
    job_id: str,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Poll the status route, as a script would, until the job is no longer active."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        resp = await client.get(f"/scrape/status/{job_id}", headers=headers)
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
        if not body["is_active"]:
            return body
        if loop.time() > deadline:
            raise AssertionError(f"job {job_id} still active after {timeout} s: {body}")
        await asyncio.sleep(0.05)


async def submit(
    client: TestClient[web.Request, web.Application],
    website: str,
    prompt: str,
    headers: dict[str, str] | None = None,
    **parameters: Any,
) -> str:
    resp = await client.post(
        "/scrape",
        json={"website": website, "prompt": prompt, "parameters": parameters},
        headers=headers,
    )
    assert resp.status == 201, await resp.text()
    job_id: str = (await resp.json())["job_id"]
    return job_id
