"""The live event stream: lossless resume, replay of ended jobs, tokens, isolation, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd import events
from skopd.crawl import recorder
from skopd.crawl.recorder import Recorder
from skopd.events import Batch, Event, EventBus, Subscription, make_event
from skopd.models import Job, JobStatus, Parameters, utcnow
from skopd.store import ProgressBatch, Store
from skopd.web.middleware import SIGNER_KEY
from skopd.web.state import BUS, SCHEDULER, STORE
from skopd.web.tokens import TOKEN_TTL_S
from tests.conftest import Daemon, submit, wait_done
from tests.sites import slowsite

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
    async with keyed.get(f"/scrape/events/{job_id}", headers=ALICE) as resp:
        assert await resp.content.readline() == b"retry: 2000\n"  # EventSource's reconnect delay
    assert events[0]["data"]["status"] == "pending"
    assert events[-1]["event"] == "done"
    assert events[-1]["data"]["status"] == "completed"
    names = {e["event"] for e in events}
    assert {"status", "page", "document", "error", "warning", "done"} <= names

    statuses = [e["data"]["status"] for e in events if e["event"] == "status"]
    assert statuses.index("in_progress") < statuses.index("completed")
    pages = [e["data"] for e in events if e["event"] == "page"]
    assert set(pages[0]) == {
        "url", "status", "depth", "links", "elapsed_ms", "fetched_at", "engine", "screenshot_url",
    }  # fmt: skip
    assert {page["engine"] for page in pages} == {"http"}

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
    for bad in ("-3", "%C2%B2", "%D9%A3", "1e3", "9" * 19):  # '²' and '٣' are str.isdigit()
        resp = await keyed.get(f"/scrape/events/{job_id}?last_event_id={bad}", headers=ALICE)
        assert resp.status == 400, bad
        assert "last_event_id" in (await resp.json())["message"]
    # The same superscript two, as UTF-8 bytes in the header (a raw request: clients encode).
    port = keyed.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /scrape/events/{job_id} HTTP/1.1\r\nHost: x\r\nX-API-Key: sk-alice\r\n".encode()
        + b"Last-Event-ID: \xc2\xb2\r\nConnection: close\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"last_event_id" in answer
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
    forged = [f"x.{chr(233)}", f"{token[:-1]}{chr(233)}", f"{chr(233)}.{chr(233)}"]
    for bad in [quote(f) for f in forged] + ["x.%FF", "%ED%A0%80.x", "x.%ED%A0%80"]:
        resp = await keyed.get(f"/scrape/events/{job_id}?token={bad}")
        assert resp.status == 401, bad  # not a 500: non-ASCII is just a bad signature
        assert "token" in (await resp.json())["message"]
    # Bob cannot mint for Alice's job.
    resp = await keyed.post("/scrape/events/token", json={"job_id": job_id}, headers=BOB)
    assert resp.status == 404
    assert (await keyed.post("/scrape/events/token", json={"job": 1}, headers=ALICE)).status == 400
    await keyed.post(f"/scrape/cancel/{other}", headers=ALICE)


async def test_a_stream_token_is_refused_once_it_has_expired(
    keyed: Client, docsite: TestServer
) -> None:
    job_id = await submit(keyed, str(docsite.make_url("/")), PROMPT, headers=ALICE, max_depth=10)
    signer = keyed.app[SIGNER_KEY]
    now = [time.time()]
    signer.clock = lambda: now[0]
    tokens = {}
    for scope in (job_id, None):
        resp = await keyed.post("/scrape/events/token", json={"job_id": scope}, headers=ALICE)
        assert resp.status == 201
        minted = await resp.json()
        expires = datetime.fromisoformat(minted["expires_at"]).timestamp()
        assert expires == pytest.approx(now[0] + TOKEN_TTL_S, abs=1)
        tokens[scope] = minted["token"]
    paths = {job_id: f"/scrape/events/{job_id}", None: "/scrape/events"}
    now[0] += TOKEN_TTL_S - 5  # still valid near the end of its life
    for scope, token in tokens.items():
        async with keyed.get(paths[scope], params={"token": token}) as resp:
            assert resp.status == 200
    now[0] += 10  # past it
    for scope, token in tokens.items():
        resp = await keyed.get(paths[scope], params={"token": token})
        assert resp.status == 401
        assert "expired" in (await resp.json())["message"]
    await keyed.post(f"/scrape/cancel/{job_id}", headers=ALICE)


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


async def stored_job(store: Store, job_id: str, status: JobStatus = JobStatus.PENDING) -> Job:
    """A job of no one's, inserted in `store`, for tests that drive a Recorder by hand."""
    job = Job(
        job_id=job_id, owner="", website="http://x.org/", prompt="minutes of 2024",
        parameters=Parameters(), status=status, message="", created_at=utcnow(),
    )  # fmt: skip
    await store.insert_job(job)
    return job


def frames(events: range, name: str = "warning") -> list[Event]:
    return [make_event(seq, name, {"message": f"m{seq}"}) for seq in events]


def batch(events: range, name: str = "warning") -> Batch:
    return Batch.of(frames(events, name))


def ids(data: bytes) -> list[int]:
    return [int(x) for x in re.findall(rb"^id: (\d+)$", data, re.MULTILINE)]


async def test_a_subscriber_that_falls_behind_is_dropped() -> None:
    # While its stream replays, batches wait, up to a bound.
    replaying = Subscription("job_x", size=2)
    for n in range(3):
        replaying.offer(batch(range(n + 1, n + 2)))
    assert replaying.dropped
    assert replaying.ended.done()  # the stream ends; the client resumes with Last-Event-ID

    # Live: a client that takes no more is cut off at once.
    written: list[bytes] = []

    def slow(chunk: bytes) -> bool:
        written.append(chunk)
        return len(written) < 2

    live = Subscription("job_y")
    live.go_live(slow, last=0)
    for n in (1, 2, 3):
        live.offer(batch(range(n, n + 1)))
    assert [ids(chunk) for chunk in written] == [[1], [2]]
    assert live.dropped


async def test_live_delivery_skips_what_the_replay_sent_and_ends_at_done() -> None:
    bus = EventBus()
    sub = bus.subscribe_job("job_z")
    sub.offer(batch(range(1, 4)))  # published while the stream was replaying 1-3
    sub.offer(batch(range(4, 8)))  # the replay had 4 and 5 of it (a page of the store)
    sub.offer(batch(range(8, 9)))
    written: list[bytes] = []
    sub.go_live(lambda chunk: written.append(chunk) is None, last=5)
    sub.offer(Batch.of(frames(range(9, 10), "done")))
    sub.offer(batch(range(10, 11)))
    assert [ids(chunk) for chunk in written] == [[6, 7], [8], [9]]
    # Each write is one HTTP chunk holding whole frames, after a `: published` comment.
    size, _, rest = written[0].partition(b"\r\n")
    assert int(size, 16) == len(rest) - 2 and rest.endswith(b"\n\n\r\n")
    assert rest.startswith(b": published ")
    assert sub.ended.done() and not sub.dropped
    bus.unsubscribe(sub)
    assert bus.subscribers() == 0


async def test_a_job_committing_often_is_fanned_out_at_a_bounded_rate() -> None:
    """A crawl commits before each request; its streams get one write per interval, holding
    every event in order, and `done` at once."""
    bus = EventBus()
    sub = bus.subscribe_job("job_f")
    written: list[bytes] = []
    sub.go_live(lambda chunk: written.append(chunk) is None, last=0)
    for first in range(1, 31, 3):
        bus.publish("job_f", "", frames(range(first, first + 3)))
    assert [ids(chunk) for chunk in written] == [[1, 2, 3]]  # the first at once
    await asyncio.sleep(events.FANOUT_INTERVAL_S * 1.5)
    assert [ids(chunk) for chunk in written] == [[1, 2, 3], list(range(4, 31))]
    bus.publish("job_f", "", frames(range(31, 33)))
    bus.publish("job_f", "", frames(range(33, 34), "done"))  # not held back
    assert [i for chunk in written for i in ids(chunk)] == list(range(1, 34))
    assert sub.ended.done() and not sub.dropped
    assert bus.recent("job_f", 0) is None  # ended: no ring left


async def test_fan_out_backs_off_when_writing_the_streams_costs_too_much(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """So many subscribers that writing to them all takes more than its share of the time:
    the job's streams are written less often (the crawl keeps its CPU), still losslessly."""
    monkeypatch.setattr(events, "FANOUT_SHARE", 1e-9)  # any write costs more than its share
    monkeypatch.setattr(events, "FANOUT_MAX_INTERVAL_S", 30.0)
    bus = EventBus()
    sub = bus.subscribe_job("job_b")
    written: list[bytes] = []
    sub.go_live(lambda chunk: written.append(chunk) is None, last=0)
    bus.publish("job_b", "", frames(range(1, 3)))
    bus.publish("job_b", "", frames(range(3, 5)))
    await asyncio.sleep(events.FANOUT_INTERVAL_S * 3)
    assert [ids(chunk) for chunk in written] == [[1, 2]]  # held past the usual interval
    bus.publish("job_b", "", frames(range(5, 6), "done"))
    assert [ids(chunk) for chunk in written] == [[1, 2], [3, 4, 5]]
    assert sub.ended.done()


async def test_the_ring_holds_a_live_jobs_recent_events_within_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "RING_BYTES", 12 * len(frames(range(40, 41))[0].frame))
    monkeypatch.setattr(events, "FANOUT_INTERVAL_S", 0.0)  # each batch to the ring at once
    bus = EventBus()
    assert bus.recent("job_r", 0) is None  # nothing published: the store answers
    for first in range(1, 40, 4):
        bus.publish("job_r", "", frames(range(first, first + 4)))
    # The newest batches that fit (ids 29-40), each whole.
    assert bus.recent("job_r", 27) is None
    for after in (28, 29, 33, 39):  # a batch edge, the middle of a batch, the last one
        recent = bus.recent("job_r", after)
        assert recent is not None
        data, last = recent
        assert ids(data) == list(range(after + 1, 41)) and last == 40
    assert bus.recent("job_r", 40) == (b"", 40)
    # A gap (a flush that failed to commit is never published) starts the ring afresh.
    bus.publish("job_r", "", frames(range(45, 47)))
    assert bus.recent("job_r", 40) is None
    assert bus.recent("job_r", 44) == (b"".join(e.frame for e in frames(range(45, 47))), 46)
    # Ended: the ring is gone, streams replay the store.
    bus.publish("job_r", "", frames(range(47, 48), "done"))
    assert bus.recent("job_r", 44) is None


async def test_a_flush_cancelled_mid_write_still_publishes_in_order(tmp_path: Path) -> None:
    """The periodic flusher is cancelled when a job ends, perhaps in the middle of a write:
    what it committed must still reach live streams, before the final flush's events."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        bus = EventBus()
        job = await stored_job(store, "job_flush")
        rec = Recorder(store, bus, job, next_seq=1)
        sub = bus.subscribe_job(job.job_id)
        seen: list[int] = []
        sub.go_live(lambda p: seen.extend(int(x) for x in re.findall(rb"id: (\d+)", p)) is None, 0)

        # Another connection holds the database's write lock: the flush's transaction waits
        # for it inside the writer's thread (busy_timeout), i.e. it is cancelled mid-write.
        blocker = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            rec.warning("first")
            flusher = asyncio.create_task(rec.flush())
            await asyncio.sleep(0.05)
            flusher.cancel()
            rec.update(status=JobStatus.COMPLETED, message="done")
            final = asyncio.create_task(rec.flush())
            await asyncio.sleep(0.05)
            assert not flusher.done() and seen == []  # the write is still waiting for the lock
        finally:
            blocker.execute("COMMIT")
            blocker.close()
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
        job = await stored_job(store, "job_snap")
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


async def test_streams_joining_a_live_job_get_every_event_once_from_ring_or_store(
    daemon_factory: DaemonFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Streams join a running job with ids inside the ring, older than it, and none, while
    its events keep coming: each gets every later event exactly once, in order, then `done`;
    one that joins within the ring reads nothing from the store (the earlier joins may still
    be paging through it: only a read from where the last one starts would be its own)."""
    # ~20 page events (a 0.1 s batch holds ~8, ~1.5 KB): older ids are out, and the last
    # batches, whatever their sizes, are in.
    monkeypatch.setattr(events, "RING_BYTES", 4000)
    chain, hanging, release = 60, asyncio.Event(), asyncio.Event()

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        if n == chain:
            hanging.set()
            await release.wait()  # the job stays live until the test has joined
        await asyncio.sleep(0.01)
        body = f'<html><body><p>page {n}</p><a href="/p/{n + 1}">next</a></body></html>'
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    site = await aiohttp_server(app, host="127.0.0.1")
    d = await daemon_factory(crawler={"per_host_delay_ms": 0})
    client = d.client
    assert client is not None
    store = client.app[STORE]
    reads: list[int] = []  # the `after` of each store read
    real_events_after = store.events_after

    async def counted(job: str, after: int, *args: Any, **kwargs: Any) -> Any:
        reads.append(after)
        return await real_events_after(job, after, *args, **kwargs)

    monkeypatch.setattr(store, "events_after", counted)
    job_id = await submit(
        client, str(site.make_url("/")), PROMPT, max_depth=chain + 5, max_pages=chain + 5
    )
    path = f"/scrape/events/{job_id}"

    async def join(after: int) -> tuple[int, list[dict[str, Any]]]:
        headers = {"Last-Event-ID": str(after)} if after else None
        return after, await collect(client, path, headers)

    joins: list[asyncio.Task[tuple[int, list[dict[str, Any]]]]] = []
    while len(joins) < 12:  # while pages keep coming, every ~0.1 s, mixed ids
        last = await store.last_event_seq(job_id)
        if last >= 3:
            after = (0, last, max(1, last - 3), 1)[len(joins) % 4]
            joins.append(asyncio.create_task(join(after)))
        await asyncio.sleep(0.1)
    # One more within the ring, alone, once the crawl waits on the last page.
    await asyncio.wait_for(hanging.wait(), 30)
    await asyncio.sleep(0.3)  # the page events before the hanging page are flushed
    reads_before, last = len(reads), await store.last_event_seq(job_id)
    async with client.get(path, headers={"Last-Event-ID": str(last - 2)}) as resp:
        seen = []
        async for event in sse(resp):
            seen.append(event["id"])
            if len(seen) == 2:
                break
    assert seen == [last - 1, last]
    assert last - 2 not in reads[reads_before:]  # the ring answered
    release.set()
    results = await asyncio.gather(*joins)
    total = results[0][1][-1]["id"]
    for after, got in results:
        assert [e["id"] for e in got] == list(range(after + 1, total + 1)), after
        assert got[-1]["event"] == "done"


async def held_site(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> tuple[TestServer, asyncio.Event, asyncio.Event]:
    """A one-page site whose page answers only once `release` is set (`hanging`: asked)."""
    hanging, release = asyncio.Event(), asyncio.Event()

    async def page(_: web.Request) -> web.Response:
        hanging.set()
        await release.wait()
        return web.Response(text="<p>late</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    return await aiohttp_server(app, host="127.0.0.1"), hanging, release


async def test_a_running_jobs_stream_is_still_only_its_owners(
    keyed: Client, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """Streams of a job running here skip the store's ownership lookup; never for others."""
    site, hanging, release = await held_site(aiohttp_server)
    job_id = await submit(keyed, str(site.make_url("/")), PROMPT, headers=ALICE)
    await asyncio.wait_for(hanging.wait(), 30)
    await asyncio.sleep(0.3)  # its first events are published: the job is live on the bus
    assert keyed.app[BUS].live_owner(job_id) is not None
    resp = await keyed.get(f"/scrape/events/{job_id}", headers=BOB)
    assert resp.status == 404
    assert (await resp.json())["error"] is True
    assert (await keyed.get(f"/scrape/events/{job_id}")).status == 401
    watcher = asyncio.create_task(collect(keyed, f"/scrape/events/{job_id}", ALICE))
    await asyncio.sleep(0.1)
    release.set()
    events = await asyncio.wait_for(watcher, 30)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["event"] == "done"


async def test_cancels_at_once_end_the_job_once_with_one_history(
    client: Client, docsite: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two cancels in flight cancel the job's task twice; its last flush outlives the task
    # and the second cancel must not write a second ending over it. A slow disk (every
    # write 0.3 s late) holds the last flush open while the second cancel arrives.
    store = client.app[STORE]
    job_id = await submit(client, str(docsite.make_url("/")), "annual report 2023", max_depth=10)
    for _ in range(500):
        if (await (await client.get(f"/scrape/status/{job_id}")).json())["status"] != "pending":
            break
        await asyncio.sleep(0.01)
    record = store.record_progress

    async def slow_record(
        job: str, batch: ProgressBatch, committed: Callable[[], None] | None = None
    ) -> None:
        await record(job, batch, committed)
        await asyncio.sleep(0.3)  # the flush returns late: it holds its recorder that long

    monkeypatch.setattr(store, "record_progress", slow_record)
    first = asyncio.create_task(client.post(f"/scrape/cancel/{job_id}"))
    await asyncio.sleep(0.4)  # the task is cancelled and now in its last, slow flush
    second = await client.post(f"/scrape/cancel/{job_id}")
    answers = [await first, second]
    assert [r.status for r in answers] in ([200, 200], [200, 409])
    for resp in answers:
        body = await resp.json()
        assert body.get("status") == "cancelled" or "already ended" in body["message"]
    monkeypatch.undo()
    history = await collect(client, f"/scrape/events/{job_id}")
    assert [e["id"] for e in history] == list(range(1, len(history) + 1))
    assert [e["event"] for e in history].count("done") == 1
    assert history[-1]["data"]["status"] == "cancelled"


async def test_a_changing_job_sends_a_status_at_least_once_a_second_as_clients_see_it(
    tmp_path: Path,
) -> None:
    """A status is due at the first flush once STATUS_INTERVAL_S passed with a change (not at
    every flush); the fan-out may hold it up to its longest interval: the sum stays within
    the one second the stream promises. Driven by a clock the test sets, not by sleeping."""
    assert (
        recorder.STATUS_INTERVAL_S + recorder.FLUSH_INTERVAL_S + events.FANOUT_MAX_INTERVAL_S <= 1.0
    )
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        job = await stored_job(store, "job_beat", JobStatus.IN_PROGRESS)
        rec = Recorder(store, EventBus(), job, next_seq=1)
        now = [1000.0]
        rec.clock = lambda: now[0]
        statuses: list[float] = []  # the clock at each flush that wrote a status
        flushes = 0
        step = recorder.FLUSH_INTERVAL_S
        for n in range(60):  # 6 s of a crawl fetching a page every flush
            now[0] = 1000.0 + n * step
            rec.page(f"http://x.org/{n}", 200, 1, 3, 12)
            before = await store.last_event_seq(job.job_id)
            await rec.flush()
            flushes += 1
            names = [name for _, name, _ in await store.events_after(job.job_id, before)]
            if "status" in names:
                statuses.append(now[0])
        gaps = [b - a for a, b in itertools.pairwise(statuses)]
        assert statuses[0] == 1000.0  # the first flush announces the job's state
        assert max(gaps) <= recorder.STATUS_INTERVAL_S + step + 1e-6
        assert min(gaps) >= recorder.STATUS_INTERVAL_S - 1e-6  # rate-limited, not every flush
        assert len(statuses) < flushes / 3

        # Nothing changes: no flush writes anything, so no status either.
        last = await store.last_event_seq(job.job_id)
        now[0] += 5.0
        await rec.flush()
        assert await store.last_event_seq(job.job_id) == last
        rec.page("http://x.org/again", 200, 1, 3, 12)
        await rec.flush()  # a change after 5 s: a status with it
        names = [name for _, name, _ in await store.events_after(job.job_id, last)]
        assert names == ["page", "status"]
        last = await store.last_event_seq(job.job_id)
        # A state change is announced at once, however recent the last status.
        rec.update(message="Downloading documents")
        await rec.flush()
        names = [name for _, name, _ in await store.events_after(job.job_id, last)]
        assert names == ["status"]
    finally:
        await store.close()


async def test_the_stream_never_shows_fewer_documents_than_results_and_status(
    daemon_factory: DaemonFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While a job runs, a results or status read is answered only once the job's streams
    have been handed every event it reflects. Here the job's fan-out interval stretches to
    30 s once its stream is on (as if it had thousands): a stream still gets every document
    a read shows before it could get them on its own (it is given two seconds to read what
    its socket holds; the job runs several)."""
    monkeypatch.setattr(slowsite, "PAGE_DELAY_S", 0.15)
    monkeypatch.setattr(events, "FANOUT_PER_STREAM_S", 30.0)
    monkeypatch.setattr(events, "FANOUT_MAX_INTERVAL_S", 30.0)
    site = await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")
    d = await daemon_factory()
    client = d.client
    assert client is not None
    job_id = await submit(client, str(site.make_url("/")), slowsite.PROMPT, max_depth=10)
    downloaded: set[str] = set()
    found = [0]
    started = asyncio.Event()

    async def watch() -> None:
        async with client.get(f"/scrape/events/{job_id}") as resp:
            async for event in sse(resp):
                started.set()
                if event["event"] == "document":
                    decision = event["data"]["decision"]
                    if decision == "downloaded":
                        downloaded.add(event["data"]["document_id"])
                    if decision in ("downloaded", "too_large", "not_downloaded"):
                        found[0] += 1

    async def streamed(shown: set[str], shown_found: int) -> None:
        for _ in range(200):  # 2 s, far less than the fan-out's 30 s
            if shown <= downloaded and found[0] >= shown_found:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the stream lacks {shown - downloaded} ({found[0]}/{shown_found})")

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(started.wait(), 10)
        mid_run = 0
        while True:
            results = await (await client.get(f"/scrape/results/{job_id}")).json()
            shown = {doc["document_id"] for doc in results["documents"]}
            await streamed(shown, results["total_documents_found"])
            status = await (await client.get(f"/scrape/status/{job_id}")).json()
            await streamed(set(), status["total_documents_found"])
            if not status["is_active"]:
                break
            mid_run += bool(shown) and results["status"] == "in_progress"
            await asyncio.sleep(0.05)
        await asyncio.wait_for(watcher, 10)
    finally:
        watcher.cancel()
    assert status["status"] == "completed"
    assert mid_run >= 3, "too few reads while documents were coming in"


async def test_a_jobs_ring_is_freed_when_its_task_ends_even_if_its_last_flush_fails(
    daemon_factory: DaemonFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ring (up to RING_BYTES) and outbox of a job were freed only when `done` went out:
    a job whose final flush fails never sends it, and kept them for the life of the daemon."""
    site, hanging, release = await held_site(aiohttp_server)
    d = await daemon_factory()
    client = d.client
    assert client is not None
    bus, store, scheduler = client.app[BUS], client.app[STORE], client.app[SCHEDULER]
    job_id = await submit(client, str(site.make_url("/")), PROMPT)
    await asyncio.wait_for(hanging.wait(), 30)
    for _ in range(300):
        if bus.live_owner(job_id) is not None:
            break
        await asyncio.sleep(0.01)
    assert bus.holds(job_id)
    record = store.record_progress

    async def failing(
        job: str, batch: ProgressBatch, committed: Callable[[], None] | None = None
    ) -> None:
        status = batch.job_fields.get("status") if batch.job_fields else None
        if isinstance(status, JobStatus) and not status.is_active:
            raise sqlite3.OperationalError("disk I/O error")  # the job's end is never stored
        await record(job, batch, committed)

    monkeypatch.setattr(store, "record_progress", failing)
    release.set()
    for _ in range(3000):
        if not scheduler.running():
            break
        await asyncio.sleep(0.01)
    assert not scheduler.running()
    assert (await (await client.get(f"/scrape/status/{job_id}")).json())["is_active"]
    assert not bus.holds(job_id)
    assert bus.live_owner(job_id) is None and bus.recent(job_id, 0) is None


async def test_a_read_waits_until_the_streams_were_handed_what_it_shows() -> None:
    bus = EventBus()
    sub = bus.subscribe_job("job_c")
    written: list[int] = []
    sub.go_live(lambda chunk: written.extend(ids(chunk)) is None, last=0)
    await asyncio.wait_for(bus.caught_up("job_unknown", 5), 1)  # not live here: no wait
    bus.publish("job_c", "", frames(range(1, 4)))  # the first batch goes at once
    bus.publish("job_c", "", frames(range(4, 7)))  # held for the interval
    assert written == [1, 2, 3]
    await asyncio.wait_for(bus.caught_up("job_c", 6), 1)  # hurried to the least interval
    assert written == list(range(1, 7))
    # A read saw a commit whose publish has not reached the loop yet: it waits for it.
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, bus.publish, "job_c", "", frames(range(7, 9)))
    await asyncio.wait_for(bus.caught_up("job_c", 8), 1)
    assert written == list(range(1, 9))
    bus.job_ended("job_c")
    assert not bus.holds("job_c")


async def test_shutdown_ends_a_stream_still_replaying_at_once(
    daemon_factory: DaemonFactory, docsite: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream replaying an ended job's history from a store that hangs (a slow disk)
    must not hold shutdown up either: it is cut and its handler stopped."""
    d = await daemon_factory()
    client = d.client
    assert client is not None
    job_id = await submit(client, str(docsite.make_url("/")), PROMPT, single_page=True)
    await wait_done(client, job_id)
    store = client.app[STORE]
    reading = asyncio.Event()

    async def stuck(*_: Any, **__: Any) -> Any:
        reading.set()
        await asyncio.sleep(60)

    monkeypatch.setattr(store, "events_after", stuck)
    url = client.make_url(f"/scrape/events/{job_id}")
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(session.get(url))
        await asyncio.wait_for(reading.wait(), 10)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await d.stop()
        assert loop.time() - began < 5  # not the replay's 60 s
        with pytest.raises(aiohttp.ClientError):  # cut before a byte was sent
            await asyncio.wait_for(request, 5)


async def test_every_error_a_recorder_stores_and_logs_goes_through_its_redaction(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whoever wrote the message (a library, the engine), the scheduler's redaction takes
    server paths out once, in the recorder: what clients read and what the log says."""
    store = Store(tmp_path / "x.db")
    await store.open()
    try:
        job = await stored_job(store, "job_redact", JobStatus.IN_PROGRESS)
        rec = Recorder(store, EventBus(), job, next_seq=1)
        rec.redact = lambda message: message.replace(str(tmp_path), "<documents_dir>")
        rec.error("unreadable_document", f"cannot open {tmp_path}/job_redact/.part-1", None)
        await rec.flush()
        [stored] = await store.errors(job.job_id)
        assert stored.error_message == "cannot open <documents_dir>/job_redact/.part-1"
        assert str(tmp_path) not in caplog.text
    finally:
        await store.close()
