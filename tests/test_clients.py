"""Clients cannot crowd each other out or learn about each other: per-key queue limit, ids
that cannot be guessed, error messages without server paths."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.models import new_id
from tests.conftest import Daemon, submit

Client = TestClient[web.Request, web.Application]
PROMPT = "board meeting minutes from 2024"
ALICE = {"Authorization": "Bearer sk-alice"}
BOB = {"X-API-Key": "sk-bob"}


@pytest.fixture
async def stuck_site(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> AsyncIterator[str]:
    """A start page that answers only when the test ends: its job keeps running."""
    release = asyncio.Event()

    async def home(_: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="<html></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", home)
    server = await aiohttp_server(app, host="127.0.0.1")
    yield str(server.make_url("/"))
    release.set()


async def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body: dict[str, Any] = await resp.json()
    assert set(body) == {"error", "message", "status_code", "path", "timestamp"}
    assert body["error"] is True and body["status_code"] == status
    return body


async def test_each_key_may_queue_only_so_many_jobs(
    daemon_factory: Callable[..., Awaitable[Daemon]], stuck_site: str
) -> None:
    d = await daemon_factory(
        server={"api_keys": ["sk-alice", "sk-bob"]},
        jobs={"max_concurrent_jobs": 1, "max_queued_per_key": 2},
        crawler={"request_timeout_s": 30.0},
    )
    c = d.client
    assert c is not None
    running = await submit(c, stuck_site, PROMPT, headers=ALICE)  # runs: not queued
    for _ in range(50):
        if (await (await c.get(f"/scrape/status/{running}", headers=ALICE)).json())[
            "status"
        ] == "in_progress":
            break
        await asyncio.sleep(0.05)
    pending = [await submit(c, stuck_site, PROMPT, headers=ALICE) for _ in range(2)]
    refused = await c.post("/scrape", json={"website": stuck_site, "prompt": PROMPT}, headers=ALICE)
    body = await _error(refused, 429)
    assert int(refused.headers["Retry-After"]) > 0
    assert "jobs.max_queued_per_key" in body["message"]
    assert "sk-" not in body["message"] and "bob" not in body["message"]

    # Another key is not held back by Alice's queue.
    for _ in range(2):
        await submit(c, stuck_site, PROMPT, headers=BOB)
    await _error(
        await c.post("/scrape", json={"website": stuck_site, "prompt": PROMPT}, headers=BOB), 429
    )

    # A cancelled pending job frees its place.
    cancelled = await c.post(f"/scrape/cancel/{pending[0]}", headers=ALICE)
    assert cancelled.status == 200
    await submit(c, stuck_site, PROMPT, headers=ALICE)
    for job_id in [running, *pending]:
        await c.post(f"/scrape/cancel/{job_id}", headers=ALICE)


def test_job_ids_cannot_be_guessed() -> None:
    ids = [new_id("job") for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"job_[a-z0-9]{16}", i) for i in ids)
    # No shared prefix or counter: consecutive ids differ from their first characters on.
    prefixes = {i[:7] for i in ids}
    assert len(prefixes) > 1500


async def test_another_keys_job_looks_like_no_job_at_all(
    daemon_factory: Callable[..., Awaitable[Daemon]], stuck_site: str
) -> None:
    d = await daemon_factory(server={"api_keys": ["sk-alice", "sk-bob"]})
    c = d.client
    assert c is not None
    alices = await submit(c, stuck_site, PROMPT, headers=ALICE)
    missing = "job_" + "0" * 16
    theirs = await _error(await c.get(f"/scrape/status/{alices}", headers=BOB), 404)
    nothing = await _error(await c.get(f"/scrape/status/{missing}", headers=BOB), 404)
    assert theirs["message"].replace(alices, "X") == nothing["message"].replace(missing, "X")
    await c.post(f"/scrape/cancel/{alices}", headers=ALICE)
