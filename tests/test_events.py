"""The live event stream: lossless resume, replay of ended jobs, tokens, isolation, shutdown."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd.crawl.recorder import Recorder
from skopd.events import Batch, EventBus, Subscription
from skopd.models import Job, JobStatus, Parameters, utcnow
from skopd.store import ProgressBatch, Store
from tests.conftest import Daemon, submit, wait_done

Client = TestClient[web.Request, web.Application]
DaemonFactory = Callable[..., Awaitable[Daemon]]
PROMPT = "board meeting minutes from 2024"


async def sse(resp: aiohttp.ClientResponse) -> AsyncIterator[dict[str, Any]]:
    """Parse a text/event-stream as a browser does: id, event, data; comments skipped."""
    fields: dict[str, Any] = {}
    data: list[str] = []
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield {**fields, "data": json.loads("\n".join(data))}
            fields, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "id":
            fields["id"] = int(value)
        elif name in ("event", "retry"):
            fields[name] = value


async def collect(
    client: Client, path: str, headers: dict[str, str] | None = None, stop_after: int = 0
) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    async with client.get(path, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        async for event in sse(resp):
            events.append(event)
            if stop_after and len(events) == stop_after:
                break
    return events


@pytest.fixture
async def keyed(daemon_factory: DaemonFactory) -> Client:
    d = await daemon_factory(
        server={"api_keys": ["sk-alice", "sk-bob"]}, crawler={"request_timeout_s": 2.0}
    )
    assert d.client is not None
    return d.client


ALICE = {"X-API-Key": "sk-alice"}
BOB = {"X-API-Key": "sk-bob"}


async def test_a_job_stream_tells_the_whole_story(keyed: Client, docsite: TestServer) -> None:
    job_id = await submit(
        keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, max_depth=10, max_file_size_mb=1
    )
    events = await collect(keyed, f"/scrape/events/{job_id}", ALICE)
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(ids) + 1))
    assert events[0]["event"] == "status"
    assert events[0]["data"]["status"] == "pending"
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["status"] == "completed"
    names = {e["event"] for e in events}
    assert {"status", "page", "document", "error", "warning", "done"} <= names

    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses.index("in_progress") < statuses.index("completed")
    pages = [e["data"] for e in events if e["event"] == "page"]
    assert set(pages[0]) == {"url", "status", "depth", "links", "elapsed_ms", "fetched_at"}

    results = await (await keyed.get(f"/scrape/results/{job_id}", headers=ALICE)).json()
    downloaded = [
        e["data"]
        for e in events
        if e["event"] == "document" and e["data"]["decision"] == "downloaded"
    ]
    assert sorted(d["document_id"] for d in downloaded) == sorted(
        d["document_id"] for d in results["documents"]
    )
    assert {e["data"]["decision"] for e in events if e["event"] == "document"} >= {
        "downloaded",
        "too_large",
        "below_threshold",
    }
    assert len(pages) == results["total_pages_crawled"]
    assert events[-1]["data"]["total_documents_found"] == results["total_documents_found"]


async def test_resume_with_last_event_id_has_no_gap_and_no_duplicate(
    keyed: Client, docsite: TestServer
) -> None:
    job_id = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, max_depth=10)
    first = await collect(keyed, f"/scrape/events/{job_id}", ALICE, stop_after=5)
    rest = await collect(
        keyed, f"/scrape/events/{job_id}", {**ALICE, "Last-Event-ID": str(first[-1]["id"])}
    )
    ids = [e["id"] for e in first + rest]
    assert ids == list(range(1, len(ids) + 1))
    assert rest[-1]["event"] == "done"
    # The same through the query parameter, from the middle of an ended job's history.
    tail = await collect(keyed, f"/scrape/events/{job_id}?last_event_id=10", ALICE)
    assert [e["id"] for e in tail] == list(range(11, ids[-1] + 1))


async def test_an_ended_job_replays_its_history_and_done(
    keyed: Client, docsite: TestServer
) -> None:
    job_id = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, max_depth=10)
    live = await collect(keyed, f"/scrape/events/{job_id}", ALICE)
    replayed = await collect(keyed, f"/scrape/events/{job_id}", ALICE)
    assert replayed == live
    done = await collect(
        keyed, f"/scrape/events/{job_id}", {**ALICE, "Last-Event-ID": str(live[-1]["id"])}
    )
    assert done == []  # nothing after done: the stream just ends


async def test_streams_are_isolated_and_validated(keyed: Client, docsite: TestServer) -> None:
    job_id = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE)
    resp = await keyed.get(f"/scrape/events/{job_id}", headers=BOB)
    assert resp.status == 404
    assert (await resp.json())["error"] is True
    resp = await keyed.get(f"/scrape/events/{job_id}")
    assert resp.status == 401
    resp = await keyed.get(f"/scrape/events/{job_id}?last_event_id=-3", headers=ALICE)
    assert resp.status == 400
    assert "last_event_id" in (await resp.json())["message"]
    await keyed.post(f"/scrape/cancel/{job_id}", headers=ALICE)


async def test_stream_tokens_keep_keys_out_of_urls(keyed: Client, docsite: TestServer) -> None:
    job_id = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, max_depth=10)
    resp = await keyed.post("/scrape/events/token", json={"job_id": job_id}, headers=ALICE)
    assert resp.status == 201
    minted = await resp.json()
    assert set(minted) == {"token", "expires_at", "job_id"}
    assert "sk-alice" not in minted["token"]
    token = minted["token"]

    events = await collect(keyed, f"/scrape/events/{job_id}?token={token}")
    assert events[-1]["event"] == "done"
    # Scoped: not another job, not the all-jobs stream, not the rest of the API.
    other = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE)
    assert (await keyed.get(f"/scrape/events/{other}?token={token}")).status == 404
    assert (await keyed.get(f"/scrape/events?token={token}")).status == 401
    assert (await keyed.get(f"/scrape/status/{job_id}?token={token}")).status == 401
    assert (await keyed.get(f"/scrape/events/{job_id}?token={token[:-2]}xx")).status == 401
    # Bob cannot mint for Alice's job.
    resp = await keyed.post("/scrape/events/token", json={"job_id": job_id}, headers=BOB)
    assert resp.status == 404
    assert (await keyed.post("/scrape/events/token", json={"job": 1}, headers=ALICE)).status == 400
    await keyed.post(f"/scrape/cancel/{other}", headers=ALICE)


async def test_all_jobs_stream_carries_only_the_callers_statuses(
    keyed: Client, docsite: TestServer
) -> None:
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        async with keyed.get("/scrape/events", headers=ALICE) as resp:
            assert resp.status == 200
            async for event in sse(resp):
                seen.append(event)
                if event["data"]["status"] == "completed":
                    return

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    bobs = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=BOB, single_page=True)
    alices = await submit(
        keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, single_page=True
    )
    await asyncio.wait_for(watcher, 30)
    assert {e["event"] for e in seen} == {"status"}
    assert {e["data"]["job_id"] for e in seen} == {alices}
    assert "id" not in seen[0]
    await wait_done(keyed, bobs, headers=BOB)


async def test_shutdown_ends_open_streams_at_once(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    async def forever(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", forever)
    server = await aiohttp_server(app, host="127.0.0.1")
    d = await daemon_factory(crawler={"request_timeout_s": 60.0})
    assert d.client is not None
    job_id = await submit(d.client, str(server.make_url("/")), PROMPT)
    url = d.client.make_url(f"/scrape/events/{job_id}")
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        assert resp.status == 200
        await resp.content.readline()
        loop = asyncio.get_running_loop()
        began = loop.time()
        await d.stop()
        await asyncio.wait_for(resp.content.read(), 5)
        assert loop.time() - began < 5


async def test_a_subscriber_that_falls_behind_is_dropped() -> None:
    # While its stream replays the store, batches wait, up to a bound.
    replaying = Subscription("job_x", size=2)
    for n in range(3):
        replaying.offer(Batch(n + 1, b"x"))
    assert replaying.dropped
    assert replaying.ended.done()  # the stream ends; the client resumes from the store

    # Live: a client that takes no more is cut off at once.
    written: list[bytes] = []

    def slow(payload: bytes) -> bool:
        written.append(payload)
        return len(written) < 2

    live = Subscription("job_y")
    live.go_live(slow, last=0)
    for n, payload in enumerate((b"a", b"b", b"c"), 1):
        live.offer(Batch(n, payload))
    assert written == [b"a", b"b"]
    assert live.dropped


async def test_live_delivery_skips_what_the_replay_sent_and_ends_at_done() -> None:
    bus = EventBus()
    sub = bus.subscribe_job("job_z")
    sub.offer(Batch(3, b"replayed"))  # published while the stream was reading the store
    sub.offer(Batch(5, b"new"))
    written: list[bytes] = []
    sub.go_live(lambda p: written.append(p) is None, last=3)
    sub.offer(Batch(6, b"done", done=True))
    sub.offer(Batch(7, b"after"))
    assert written == [b"new", b"done"]
    assert sub.ended.done() and not sub.dropped
    bus.unsubscribe(sub)
    assert bus.subscribers() == 0


async def test_a_flush_cancelled_mid_write_still_publishes_in_order(tmp_path: Path) -> None:
    """The periodic flusher is cancelled when a job ends, perhaps in the middle of a write:
    what it committed must still reach live streams, before the final flush's events."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        bus = EventBus()
        job = Job(
            job_id="job_flush", owner="", website="http://x.org/", prompt="minutes of 2024",
            parameters=Parameters(), status=JobStatus.PENDING, message="", created_at=utcnow(),
        )  # fmt: skip
        await store.insert_job(job)
        rec = Recorder(store, bus, job, next_seq=1)
        sub = bus.subscribe_job(job.job_id)
        seen: list[int] = []
        sub.go_live(lambda p: seen.extend(int(x) for x in re.findall(rb"id: (\d+)", p)) is None, 0)

        release = asyncio.Event()
        real = store.record_progress

        async def slow(job_id: str, batch: ProgressBatch) -> None:
            await release.wait()
            await real(job_id, batch)

        store.record_progress = slow  # type: ignore[method-assign]
        rec.warning("first")
        flusher = asyncio.create_task(rec.flush())
        await asyncio.sleep(0.05)
        flusher.cancel()
        rec.update(status=JobStatus.COMPLETED, message="done")
        final = asyncio.create_task(rec.flush())
        await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(flusher, return_exceptions=True)
        await final
        assert seen == list(range(1, len(seen) + 1))
        assert len(seen) >= 3  # warning, status, done
        assert [seq for seq, _, _ in await store.events_after(job.job_id, 0)] == seen
    finally:
        await store.close()


async def test_replay_reads_are_never_stale_while_a_snapshot_is_open(tmp_path: Path) -> None:
    """A status request's snapshot holds a read transaction; a stream's replay running at the
    same moment must still see every event committed before it (a stale view left a gap)."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        job = Job(
            job_id="job_snap", owner="", website="http://x.org/", prompt="minutes of 2024",
            parameters=Parameters(), status=JobStatus.PENDING, message="", created_at=utcnow(),
        )  # fmt: skip
        await store.insert_job(job)
        rec = Recorder(store, EventBus(), job, next_seq=1)
        rec.warning("one")
        await rec.flush()
        pause, resume = asyncio.Event(), asyncio.Event()
        real_errors = store.errors

        async def slow_errors(job_id: str, conn: Any = None) -> Any:
            pause.set()
            await resume.wait()
            return await real_errors(job_id, conn)

        store.errors = slow_errors  # type: ignore[method-assign]
        snapshot = asyncio.create_task(store.snapshot(job.job_id))
        await pause.wait()  # the snapshot's transaction is open now
        rec.warning("two")
        await rec.flush()
        seqs = [seq for seq, _, _ in await store.events_after(job.job_id, 0)]
        resume.set()
        await snapshot
        assert seqs == [1, 2, 3]  # warning, status, then the warning committed meanwhile
    finally:
        await store.close()
