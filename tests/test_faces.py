"""The three other faces together: one scheduler (its limits), one listing, one all-jobs
event stream, and the same crash safety as Skop's jobs."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestServer

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
