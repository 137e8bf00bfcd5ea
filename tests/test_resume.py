"""Crash safety: `skopd serve` as a real process crawling a slow site, killed (SIGKILL) or
stopped (SIGTERM) in the middle of a job, then started again on the same database. The job
resumes where it stopped and ends with exactly the documents of a run never interrupted."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import secrets
import signal
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skopd.crawl.engine import CrawlState
from skopd.crawl.traps import MAX_QUERIES_PER_PATH
from skopd.models import utcnow
from tests.conftest import Daemon, submit, wait_done
from tests.process import SkopdProcess
from tests.sites import slowsite

CONCURRENCY = 4  # requests in flight at most: the crawler's workers
STOP_LIMIT_S = 10.0
KILL_AFTER_PAGES = 30


class Skopd(SkopdProcess):
    """The daemon with its own database and documents folder."""

    def __init__(self, workdir: Path) -> None:
        self.database = workdir / "skopd.db"
        self.documents = workdir / "documents"
        super().__init__(
            workdir,
            f'[storage]\ndatabase = "{self.database}"\ndocuments_dir = "{self.documents}"\n'
            '[relevance]\nbackend = "lexical"\n'
            "[crawler]\nallow_private_networks = true\nrequest_timeout_s = 10.0\n"
            f"concurrency = {CONCURRENCY}\nper_host_concurrency = {CONCURRENCY}\n",
        )


@pytest.fixture
async def spawn(tmp_path: Path) -> AsyncIterator[Callable[[str], Skopd]]:
    daemons: list[Skopd] = []

    def factory(name: str) -> Skopd:
        d = Skopd(tmp_path / name)
        daemons.append(d)
        return d

    yield factory
    for d in daemons:
        await d.close()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def slow_server(
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> Callable[[], Awaitable[TestServer]]:
    """A fresh slow site (fresh request counts) for each run."""

    async def make() -> TestServer:
        return await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")

    return make


async def _submit(http: aiohttp.ClientSession, d: Skopd, site: TestServer) -> str:
    body = {
        "website": str(site.make_url("/")),
        "prompt": slowsite.PROMPT,
        "parameters": {"max_depth": 10},
    }
    async with http.post(f"{d.base}/scrape", json=body) as resp:
        assert resp.status == 201, await resp.text()
        job_id: str = (await resp.json())["job_id"]
    return job_id


async def _status(http: aiohttp.ClientSession, d: Skopd, job_id: str) -> dict[str, Any]:
    async with http.get(f"{d.base}/scrape/status/{job_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def _wait_ended(http: aiohttp.ClientSession, d: Skopd, job_id: str) -> dict[str, Any]:
    for _ in range(1200):
        status = await _status(http, d, job_id)
        if not status["is_active"]:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"job still running: {status}")


async def _wait_pages(http: aiohttp.ClientSession, d: Skopd, job_id: str, pages: int) -> None:
    for _ in range(1200):
        status = await _status(http, d, job_id)
        assert status["is_active"], f"the job ended before it could be interrupted: {status}"
        if status["total_pages_crawled"] >= pages:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the job did not reach {pages} pages")


async def _results(http: aiohttp.ClientSession, d: Skopd, job_id: str) -> dict[str, Any]:
    async with http.get(f"{d.base}/scrape/results/{job_id}") as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def _events(
    http: aiohttp.ClientSession, d: Skopd, job_id: str, after: int = 0
) -> list[tuple[int, str, Any]]:
    """The ended job's event history after `after`, replayed by its stream: (id, event, data)."""
    events: list[tuple[int, str, Any]] = []
    current: dict[str, str] = {}
    headers = {"Last-Event-ID": str(after)} if after else {}
    async with http.get(f"{d.base}/scrape/events/{job_id}", headers=headers) as resp:
        assert resp.status == 200
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if not line:
                if "id" in current:
                    events.append(
                        (int(current["id"]), current["event"], json.loads(current["data"]))
                    )
                current = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            current[field] = value.removeprefix(" ")
    return events


def _path(url: str) -> str:
    """The site is served on a new port for each run: URLs compare by their path."""
    return "/" + url.split("/", 3)[3]


def _documents(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, sha256, name) of each document."""
    return sorted((_path(doc["url"]), doc["sha256"], doc["name"]) for doc in results["documents"])


async def _reference(
    http: aiohttp.ClientSession, spawn: Callable[[str], Skopd], make_site: Any
) -> tuple[list[tuple[str, str, str]], int]:
    """The documents and page count of a run never interrupted."""
    site = await make_site()
    d = spawn("reference")
    await d.start()
    job_id = await _submit(http, d, site)
    status = await _wait_ended(http, d, job_id)
    assert status["status"] == "completed", status
    docs = _documents(await _results(http, d, job_id))
    assert {path for path, _, _ in docs} == slowsite.RELEVANT  # the site is what it says
    assert status["total_pages_crawled"] == slowsite.PAGES
    assert max(site.app[slowsite.HITS].values()) == 1
    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0
    return docs, status["total_pages_crawled"]


def _in_store(d: Skopd, job_id: str) -> tuple[str, int]:
    """The job's status and its last event id, as the stopped daemon left them."""
    with sqlite3.connect(d.database) as conn:
        row = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        last = conn.execute("SELECT max(seq) FROM events WHERE job_id = ?", (job_id,)).fetchone()
    return row[0], last[0]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
async def test_an_interrupted_job_resumes_and_ends_with_the_same_documents(
    http: aiohttp.ClientSession,
    spawn: Callable[[str], Skopd],
    slow_server: Callable[[], Awaitable[TestServer]],
    sig: signal.Signals,
) -> None:
    reference, reference_pages = await _reference(http, spawn, slow_server)

    site = await slow_server()
    hits = site.app[slowsite.HITS]
    d = spawn("interrupted")
    await d.start()
    job_id = await _submit(http, d, site)
    await _wait_pages(http, d, job_id, KILL_AFTER_PAGES)
    code, took = await d.signal(sig)
    if sig is signal.SIGTERM:
        assert code == 0, d.stderr()
        assert took < STOP_LIMIT_S
        assert "Traceback" not in d.stderr()
    else:
        assert code == -signal.SIGKILL
    # Neither failed nor cancelled: left running, for the next start.
    stored_status, last_event = _in_store(d, job_id)
    assert stored_status == "in_progress"
    fetched_before = sum(hits.values())
    assert fetched_before < slowsite.PAGES + len(slowsite.RELEVANT)

    await d.start()
    status = await _wait_ended(http, d, job_id)
    assert status["status"] == "completed", status
    resumed = [w for w in status["warnings"] if w.startswith("resumed after daemon restart: ")]
    assert len(resumed) == 1, status["warnings"]
    assert int(resumed[0].split(": ")[1].split()[0]) >= KILL_AFTER_PAGES

    # Exactly the documents of the uninterrupted run, none twice, and every page once.
    results = await _results(http, d, job_id)
    assert _documents(results) == reference
    assert status["total_pages_crawled"] == reference_pages
    assert results["total_documents_downloaded"] == len(reference)

    # On disk: one file per document, with its bytes; nothing half written is left.
    folder = d.documents / job_id
    files = sorted(folder.iterdir())
    assert not [f.name for f in files if f.name.startswith(".part")]
    on_disk = collections.Counter(hashlib.sha256(f.read_bytes()).hexdigest() for f in files)
    assert on_disk == collections.Counter(sha for _, sha, _ in reference)

    # Resumed, not started again: the start page was fetched once, and what was fetched
    # twice is at most what was in flight when the daemon went down.
    assert hits["/"] == 1
    twice = sorted(path for path, n in hits.items() if n > 1)
    assert len(twice) <= CONCURRENCY, twice

    # The event stream continues the same sequence: ids 1, 2, 3, ... with no gap and no id
    # used twice, one page event per page, one downloaded event per document.
    events = await _events(http, d, job_id)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    pages = [data["url"] for _, name, data in events if name == "page"]
    assert len(pages) == len(set(pages)) == reference_pages
    downloaded = [
        _path(data["url"])
        for _, name, data in events
        if name == "document" and data["decision"] == "downloaded"
    ]
    assert sorted(downloaded) == [url for url, _, _ in reference]
    assert events[-1][1] == "done"
    # A client that saw the events up to the stop continues with exactly the rest.
    assert await _events(http, d, job_id, after=last_event) == events[last_event:]

    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0


async def _stopped_mid_crawl(
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    **params: Any,
) -> tuple[Daemon, web.Application, str]:
    """In process: a job on the slow site, stopped with the daemon while the site's second
    sitemap has not answered (so the crawl cannot have ended)."""
    app = slowsite.make_slowsite(hold_sitemap=True)
    site = await aiohttp_server(app, host="127.0.0.1")
    crawler = {"concurrency": CONCURRENCY, "per_host_concurrency": CONCURRENCY}
    d = await daemon_factory(crawler=crawler)
    assert d.client is not None
    url = str(site.make_url("/"))
    job_id = await submit(d.client, url, slowsite.PROMPT, max_depth=10, **params)
    for _ in range(1000):
        status = await (await d.client.get(f"/scrape/status/{job_id}")).json()
        if status["total_pages_crawled"] >= 20:
            break
        await asyncio.sleep(0.02)
    await d.stop()
    return d, app, job_id


async def test_stopped_while_reading_the_sitemaps_resumes_without_duplicates(
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """The next start reads the sitemaps again, queues only what it had not seen, and still
    finds the document that only the late sitemap lists."""
    d, app, job_id = await _stopped_mid_crawl(daemon_factory, aiohttp_server)
    app[slowsite.SITEMAP_GATE].set()

    client = await d.start()
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    assert any(w.startswith("resumed after daemon restart: ") for w in status["warnings"])
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    paths = [_path(doc["url"]) for doc in results["documents"]]
    assert sorted(paths) == sorted(slowsite.RELEVANT)  # the appendix too, and none twice
    assert status["total_pages_crawled"] == slowsite.PAGES
    hits = app[slowsite.HITS]
    assert hits["/"] == 1
    assert len([p for p, n in hits.items() if n > 1]) <= CONCURRENCY


def _rewrite(
    db: Path, job_id: str, elapsed_s: float | None = None, started_hours_ago: int = 0
) -> None:
    """What the stopped daemon left, as after a long downtime or a long first run."""
    with sqlite3.connect(db) as conn:
        if started_hours_ago:
            started = (utcnow() - timedelta(hours=started_hours_ago)).isoformat()
            conn.execute("UPDATE jobs SET started_at = ? WHERE job_id = ?", (started, job_id))
        if elapsed_s is not None:
            (blob,) = conn.execute(
                "SELECT crawl_state FROM jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            state = msgspec.msgpack.decode(blob, type=CrawlState)
            state.elapsed_s = elapsed_s
            blob = msgspec.msgpack.encode(state)
            conn.execute("UPDATE jobs SET crawl_state = ? WHERE job_id = ?", (blob, job_id))


async def test_the_timeout_counts_crawling_time_not_downtime(
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    # Down for two hours after a short run: the 60 s budget is not spent; the job completes.
    d, app, job_id = await _stopped_mid_crawl(daemon_factory, aiohttp_server, timeout=60)
    _rewrite(d.cfg.database_path, job_id, started_hours_ago=2)
    app[slowsite.SITEMAP_GATE].set()
    client = await d.start()
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    assert not any("timeout" in w for w in status["warnings"]), status["warnings"]
    results = await (await client.get(f"/scrape/results/{job_id}")).json()
    assert len(results["documents"]) == len(slowsite.RELEVANT)
    await d.stop()

    # 59.5 s of crawling before the stop: the resumed job has half a second left.
    d, app, job_id = await _stopped_mid_crawl(daemon_factory, aiohttp_server, timeout=60)
    _rewrite(d.cfg.database_path, job_id, elapsed_s=59.5)
    client = await d.start()  # the late sitemap never answers: only the timeout ends it
    status = await wait_done(client, job_id, timeout=30)
    assert status["status"] == "completed", status
    assert "timeout of 60 s reached; results are what was found by then" in status["warnings"]
    app[slowsite.SITEMAP_GATE].set()


async def test_a_resumed_crawl_goes_on_counting_its_traps(
    daemon_factory: Callable[..., Awaitable[Daemon]],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """A query-string trap (every page links fresh ?token= URLs of one path), the daemon
    stopped half way: across both runs no more distinct URLs of the path are fetched than
    the per-path limit, as in a run never stopped (its count is restored, not restarted)."""
    fetched: collections.Counter[str] = collections.Counter()
    a_third = asyncio.Event()

    async def listing(request: web.Request) -> web.Response:
        fetched[request.path_qs] += 1
        if sum(p.startswith("/list?") for p in fetched) >= MAX_QUERIES_PER_PATH // 3:
            a_third.set()
        await asyncio.sleep(0.03)
        fresh = "".join(
            f'<a href="/list?token={secrets.token_hex(8)}">more {i}</a>' for i in range(3)
        )
        return web.Response(text=f"<html><body>{fresh}</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/", listing)
    app.router.add_get("/list", listing)
    site = await aiohttp_server(app, host="127.0.0.1")
    d = await daemon_factory(crawler={"concurrency": CONCURRENCY})
    assert d.client is not None
    job_id = await submit(
        d.client, str(site.make_url("/")), "board meeting list", max_depth=100, max_pages=5000
    )
    await asyncio.wait_for(a_third.wait(), 30)
    await d.stop()
    assert sum(p.startswith("/list?") for p in fetched) < MAX_QUERIES_PER_PATH

    client = await d.start()
    status = await wait_done(client, job_id, timeout=60)
    assert status["status"] == "completed", status
    assert any("query strings on one path" in w for w in status["warnings"]), status
    assert sum(p.startswith("/list?") for p in fetched) <= MAX_QUERIES_PER_PATH


async def test_a_download_cut_off_by_sigkill_is_fetched_again_whole(
    http: aiohttp.ClientSession,
    spawn: Callable[[str], Skopd],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """SIGKILL while a document is half written to its part file: the next start discards
    the part, fetches the document again, and keeps it whole; nothing else is fetched twice
    beyond what was in flight."""
    held = slowsite.REPORTS[0, 0]
    app = slowsite.make_slowsite(hold_document=held)
    site = await aiohttp_server(app, host="127.0.0.1")
    d = spawn("cut")
    await d.start()
    job_id = await _submit(http, d, site)
    await asyncio.wait_for(app[slowsite.HALF_SENT].wait(), 60)
    folder = d.documents / job_id
    for _ in range(1000):  # the half that was sent reaches the part file
        parts = [p for p in folder.iterdir() if p.name.startswith(".part")]
        if parts and max(p.stat().st_size for p in parts) >= slowsite.DOC_CHUNK_BYTES:
            break
        await asyncio.sleep(0.01)
    else:
        raise AssertionError("no part file was being written")
    code, _ = await d.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    app[slowsite.DOCUMENT_GATE].set()  # from now on every download runs to its end

    await d.start()
    status = await _wait_ended(http, d, job_id)
    assert status["status"] == "completed", status
    results = await _results(http, d, job_id)
    [doc] = [doc for doc in results["documents"] if _path(doc["url"]) == held]
    whole = hashlib.sha256(slowsite.document_bytes(held)).hexdigest()
    assert doc["sha256"] == whole
    on_disk = collections.Counter(
        hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()
    )
    assert on_disk == collections.Counter(d["sha256"] for d in results["documents"])
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".part")]
    assert {_path(d["url"]) for d in results["documents"]} == slowsite.RELEVANT
    hits = app[slowsite.HITS]
    assert hits[held] == 2
    twice = sorted(path for path, n in hits.items() if n > 1)
    assert len(twice) <= CONCURRENCY, twice
    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0
