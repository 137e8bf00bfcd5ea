"""The three other faces together: one scheduler (its limits), one listing, one all-jobs
event stream, and the same crash safety as Skop's jobs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from skopd.events import make_event
from skopd.kinds.specs import job_for
from skopd.models import JobOutput, JobStatus, PageContent, PagesSpec, utcnow
from skopd.store import ProgressBatch, Store
from tests.conftest import Daemon
from tests.face_clients import (
    KEY_A,
    KEYS,
    Client,
    aitronos_wait,
    docs_wait,
    skop_listing,
    spidra_wait_for_result,
)
from tests.sites.facesite import RELEASE

A = {"X-API-Key": KEY_A}
DaemonFactory = Callable[..., Awaitable[Daemon]]
SCHEMA = {"type": "object", "properties": {"name": "string"}}


async def submit_all(client: Client, site: TestServer, path: str) -> dict[str, Any]:
    """One job through each face; their answers to the submission."""
    url = str(site.make_url(path))
    session = str(uuid.uuid4())
    spidra = await client.post("/api/scrape", json={"urls": [{"url": url}]}, headers=A)
    aitronos = await client.post("/api/v1/scrape", json={"url": url, "schema": SCHEMA}, headers=A)
    docs = await client.post(
        f"/api/v1/scrape/{session}/scrape",
        json={"starterLinks": [url], "applicationName": "Widgetron"},
        headers=A,
    )
    return {
        "spidra": (spidra.status, await spidra.json()),
        "aitronos": (aitronos.status, await aitronos.json()),
        "docs": (docs.status, await docs.json(), session),
    }


async def test_one_listing_and_one_stream_for_all_faces(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    d = await daemon_factory(server=KEYS)
    client = d.client
    assert client is not None
    stream = await client.get("/scrape/events", headers=A)
    assert stream.status == 200
    got = await submit_all(client, facesite, "/products?page=1")
    ids = {
        got["spidra"][1]["jobId"],
        got["aitronos"][1]["job_id"],
        got["docs"][1]["jobId"],
    }
    await spidra_wait_for_result(client, got["spidra"][1]["jobId"], KEY_A)
    await aitronos_wait(client, got["aitronos"][1]["job_id"], KEY_A)
    await docs_wait(client, got["docs"][2], KEY_A)
    listing = await skop_listing(client, KEY_A)
    assert ids <= set(listing)
    assert {listing[i]["status"] for i in ids} == {"completed"}
    # The all-jobs stream carried the status of each, in Skop's words, up to its end.
    seen: dict[str, str] = {}
    buffer = ""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while any(seen.get(i) != "completed" for i in ids) and loop.time() < deadline:
        chunk = await asyncio.wait_for(stream.content.readany(), 30)
        buffer += chunk.decode()
        *frames, buffer = buffer.split("\n\n")
        for frame in frames:
            if "event: status" in frame:
                status = json.loads(frame.split("data: ", 1)[1])
                seen[status["job_id"]] = status["status"]
    stream.close()
    assert all(seen.get(i) == "completed" for i in ids), seen


async def test_the_queue_limit_holds_for_every_face(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    d = await daemon_factory(server=KEYS, jobs={"max_concurrent_jobs": 1, "max_queued_jobs": 1})
    client = d.client
    assert client is not None
    slow = str(facesite.make_url("/slow"))
    first = await client.post("/api/scrape", json={"urls": [{"url": slow}]}, headers=A)
    assert first.status == 202
    running = (await first.json())["jobId"]
    for _ in range(200):  # running, so the queue is empty again
        if (await skop_listing(client, KEY_A))[running]["status"] == "in_progress":
            break
        await asyncio.sleep(0.05)
    queued = await client.post("/api/scrape", json={"urls": [{"url": slow}]}, headers=A)
    assert queued.status == 202
    got = await submit_all(client, facesite, "/article")
    status, body = got["spidra"]
    assert status == 429 and body["status"] == "error" and "queue is full" in body["message"]
    assert body["code"] == "TOO_MANY_PENDING_JOBS"
    status, body = got["aitronos"]
    assert status == 429 and body["error"]["code"] == "too_many_requests"
    status, body, _ = got["docs"]
    assert status == 429 and "queue is full" in body["error"]["message"]
    facesite.app[RELEASE].set()


async def test_addresses_the_crawler_may_not_visit_are_refused_naming_the_field(
    daemon_factory: DaemonFactory,
) -> None:
    d = await daemon_factory(server=KEYS, crawler={"allow_private_networks": False})
    client = d.client
    assert client is not None
    inside = "http://127.0.0.1:9/"
    res = await client.post(
        "/api/scrape",
        json={"urls": [{"url": "http://example.org/"}, {"url": inside}]},
        headers=A,
    )
    assert res.status == 400 and (await res.json())["message"].startswith("urls[1].url: ")
    res = await client.post("/api/v1/scrape", json={"url": inside, "schema": SCHEMA}, headers=A)
    assert res.status == 400 and (await res.json())["error"]["message"].startswith("url: ")
    res = await client.post(
        f"/api/v1/scrape/{uuid.uuid4()}/scrape",
        json={"starterLinks": [inside], "applicationName": "Widgetron"},
        headers=A,
    )
    assert res.status == 400
    assert (await res.json())["error"]["message"].startswith("starterLinks[0]: ")
    assert await skop_listing(client, KEY_A) == {}


async def test_a_cache_hit_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    """A hit's row, its pages and its answer are one transaction: when a part of it cannot
    be written, nothing of it is there (a restart would otherwise queue a half-copied hit
    and crawl over its copied pages)."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        spec = PagesSpec(urls=["http://a.test/"])
        source = job_for("o", spec, "key")
        source.status = JobStatus.COMPLETED
        await store.insert_job(source)
        page = PageContent(0, "http://a.test/", "A", "# A", [], True, None, utcnow())
        await store.save_page(source.job_id, page)
        answer = JobOutput(content="# A")
        await store.save_output(source.job_id, answer)

        hit = job_for("o", spec)
        hit.status = JobStatus.COMPLETED
        done = ProgressBatch(events=[make_event(1, "done", {})])
        await store.insert_job(
            hit, done, also=store.stored_answer(source.job_id, hit.job_id, answer)
        )
        assert (await store.get_job(hit.job_id)) is not None
        assert [p.markdown for p in await store.pages_of(hit.job_id)] == ["# A"]
        assert await store.output(hit.job_id) == answer
        assert await store.last_event_seq(hit.job_id) == 1

        # A page already stored under the new job's id makes the copy fail half way.
        broken = job_for("o", spec)
        broken.status = JobStatus.COMPLETED
        await store.save_page(broken.job_id, page)
        with pytest.raises(sqlite3.IntegrityError):
            await store.insert_job(
                broken, done, also=store.stored_answer(source.job_id, broken.job_id, answer)
            )
        assert await store.get_job(broken.job_id) is None
        assert await store.output(broken.job_id) is None
        assert await store.last_event_seq(broken.job_id) == 0
    finally:
        await store.close()
