"""Crash safety of the other faces' jobs: a documentation-scraper job killed (SIGKILL, a real
`skopd serve`) or stopped with the daemon resumes from its checkpoint and saves exactly the
pages of a run never interrupted; Spidra and Aitronos jobs stopped with the daemon or killed
(SIGKILL, a real `skopd serve`) run again at the next start and answer as a run never
interrupted (no page, item or token twice)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests import test_resume as resume
from tests.conftest import Daemon
from tests.face_clients import (
    KEY_A,
    KEYS,
    Client,
    aitronos_wait,
    docs_wait,
    spidra_wait_for_result,
)
from tests.fake_ollama import FakeOllama
from tests.sites import slowsite
from tests.sites.facesite import DOC_PAGES, HITS, RELEASE
from tests.test_resume import CONCURRENCY, Skopd, _in_store, _path

A = {"X-API-Key": KEY_A}
LINKS_QUESTION = "Which of these links lead to pages of the documentation"
DaemonFactory = Callable[..., Awaitable[Daemon]]
# The real-process fixtures of the crash-safety tests of document jobs.
http = resume.http
spawn = resume.spawn
slow_server = resume.slow_server
SLOW_SITE_PAGES = {"/"} | {f"/s/{i}" for i in range(slowsite.SECTIONS)} | {
    f"/s/{i}/p/{j}"
    for i in range(slowsite.SECTIONS)
    for j in range(slowsite.PAGES_PER_SECTION)
}  # fmt: skip


# -- the documentation scraper -------------------------------------------------------------


def _docs_body(site: TestServer, max_iterations: int) -> dict[str, Any]:
    return {
        "starterLinks": [str(site.make_url("/"))],
        "applicationName": "Town hall",
        "maxIterations": max_iterations,
    }


async def _get(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url, headers=A) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


class DocsWatch:
    """A docs job's status polled as its client would, every status word it showed kept."""

    def __init__(self, http: aiohttp.ClientSession, base: str, session: str, job_id: str) -> None:
        self.http = http
        self.url = f"{base}/api/v1/scrape/{session}/scrape?jobId={job_id}"
        self.seen: list[str] = []

    async def poll(self) -> dict[str, Any]:
        data = await _get(self.http, self.url)
        if not self.seen or self.seen[-1] != data["status"]:
            self.seen.append(data["status"])
        return data

    async def until_saved(self, pages: int) -> None:
        for _ in range(2000):
            data = await self.poll()
            assert data["status"] in ("queued", "running"), data
            if data["progress"].get("completedIterations", 0) >= pages:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the job did not save {pages} pages")

    async def until_ended(self) -> dict[str, Any]:
        for _ in range(1200):
            data = await self.poll()
            if data["status"] not in ("queued", "running"):
                return data
            await asyncio.sleep(0.05)
        raise AssertionError(f"the job did not end: {data}")


async def _docs_submit(
    http: aiohttp.ClientSession, base: str, session: str, body: dict[str, Any]
) -> str:
    async with http.post(f"{base}/api/v1/scrape/{session}/scrape", json=body, headers=A) as resp:
        assert resp.status == 200, await resp.text()
        job_id: str = (await resp.json())["jobId"]
    return job_id


def _saved_rows(database: Path, job_id: str) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as conn:
        rows = conn.execute(
            "SELECT position, url FROM page_contents WHERE job_id = ? ORDER BY position",
            (job_id,),
        ).fetchall()
    return [(int(p), str(u)) for p, u in rows]


async def _chunks(
    http: aiohttp.ClientSession, base: str, session: str, job_id: str, urls: list[str]
) -> dict[str, str]:
    """Each saved page's chunks (JSON, the site's origin left out), by path."""
    out = {}
    for url in urls:
        async with http.get(
            f"{base}/api/v1/scrape/{session}/pages", params={"url": url, "jobId": job_id}
        ) as resp:
            assert resp.status == 200, await resp.text()
            chunks = json.dumps((await resp.json())["chunks"])
            out[_path(url)] = chunks.replace(url[: -len(_path(url))], "")  # the site's port
    return out


async def test_a_killed_docs_job_resumes_and_saves_the_pages_of_an_uninterrupted_run(
    http: aiohttp.ClientSession,
    spawn: Callable[[str], Skopd],
    slow_server: Callable[[], Awaitable[TestServer]],
) -> None:
    d = spawn("docs")
    await d.start()
    session = str(uuid.uuid4())

    # A run never interrupted: every page of the site, each once.
    site = await slow_server()
    ref_id = await _docs_submit(http, d.base, session, _docs_body(site, 100))
    reference = await DocsWatch(http, d.base, session, ref_id).until_ended()
    assert reference["status"] == "finished", reference
    ref_result = reference["result"]
    assert {_path(u) for u in ref_result["savedPages"]} == SLOW_SITE_PAGES
    ref_chunks = await _chunks(http, d.base, session, ref_id, list(ref_result["savedPages"]))

    # The same job, killed half way.
    site = await slow_server()
    hits = site.app[slowsite.HITS]
    job_id = await _docs_submit(http, d.base, session, _docs_body(site, 100))
    watch = DocsWatch(http, d.base, session, job_id)
    await watch.until_saved(30)
    code, _ = await d.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _in_store(d, job_id)[0] == "in_progress"
    saved_before = len(_saved_rows(d.database, job_id))
    assert 30 <= saved_before < len(SLOW_SITE_PAGES)

    await d.start()
    data = await watch.until_ended()
    assert watch.seen == ["running", "finished"] or watch.seen == ["queued", "running", "finished"]
    assert data["status"] == "finished", data
    result = data["result"]
    assert result["finishReason"] == ref_result["finishReason"] == "no_more_links"
    assert result["savedPagesCount"] == ref_result["savedPagesCount"] == len(SLOW_SITE_PAGES)
    assert {_path(u) for u in result["savedPages"]} == SLOW_SITE_PAGES
    assert await _chunks(http, d.base, session, job_id, list(result["savedPages"])) == ref_chunks
    # Stored once each, in the order they were saved, across both runs.
    rows = _saved_rows(d.database, job_id)
    assert [p for p, _ in rows] == list(range(len(SLOW_SITE_PAGES)))
    assert len({u for _, u in rows}) == len(rows)

    # Resumed, not started again: the start page was fetched once, and what was fetched
    # twice is at most what was in flight when the daemon was killed.
    assert hits["/"] == 1
    assert len([p for p, n in hits.items() if n > 1]) <= CONCURRENCY
    skop = await _get(http, f"{d.base}/scrape/status/{job_id}")
    resumed = [w for w in skop["warnings"] if w.startswith("resumed after daemon restart: ")]
    assert len(resumed) == 1, skop["warnings"]
    assert skop["total_pages_crawled"] == len(SLOW_SITE_PAGES)  # one page event per page

    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0


async def test_a_docs_job_stopped_with_the_daemon_saves_max_iterations_in_all(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """maxIterations counts the pages of both runs; the finish reason says it was reached."""
    site = await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")
    crawler = {"concurrency": CONCURRENCY, "per_host_concurrency": CONCURRENCY}
    d = await daemon_factory(server=KEYS, crawler=crawler)
    assert d.client is not None
    session = str(uuid.uuid4())
    res = await d.client.post(
        f"/api/v1/scrape/{session}/scrape", json=_docs_body(site, 30), headers=A
    )
    job_id = (await res.json())["jobId"]
    url = f"/api/v1/scrape/{session}/scrape?jobId={job_id}"
    for _ in range(1000):
        data = await (await d.client.get(url, headers=A)).json()
        assert data["status"] in ("queued", "running"), data
        if data["progress"].get("completedIterations", 0) >= 10:
            break
        await asyncio.sleep(0.01)
    await d.stop()
    with sqlite3.connect(d.cfg.database_path) as conn:
        (state,) = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert state == "in_progress"
    assert 10 <= len(_saved_rows(d.cfg.database_path, job_id)) < 30

    client = await d.start()
    data = await (await client.get(url, headers=A)).json()
    assert data["status"] == "running"
    for _ in range(1200):
        data = await (await client.get(url, headers=A)).json()
        if data["status"] != "running":
            break
        await asyncio.sleep(0.05)
    assert data["status"] == "finished", data
    assert data["result"]["finishReason"] == "max_iterations"
    assert data["result"]["savedPagesCount"] == 30
    assert data["progress"]["completedIterations"] == 30
    rows = _saved_rows(d.cfg.database_path, job_id)
    assert len(rows) == len({u for _, u in rows}) == 30
    assert site.app[slowsite.HITS]["/"] == 1
    skop = await (await client.get(f"/scrape/status/{job_id}", headers=A)).json()
    assert any(w.startswith("resumed after daemon restart: ") for w in skop["warnings"])


async def test_a_docs_job_stopped_in_its_second_starter_link_goes_on_from_there(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """Two starter links, each a chain of pages: stopped during the second one's crawl, the
    job resumes that crawl (the first one's pages are not fetched again) and saves the pages
    of a run never interrupted."""
    crawler = {"concurrency": CONCURRENCY, "per_host_concurrency": CONCURRENCY}
    d = await daemon_factory(server=KEYS, crawler=crawler)
    assert d.client is not None

    async def submit(site: TestServer) -> tuple[str, str]:
        session = str(uuid.uuid4())
        starters = [str(site.make_url(f"/s/{i}/p/0")) for i in (0, 1)]
        body = {"starterLinks": starters, "applicationName": "Town hall"}
        res = await d.client.post(f"/api/v1/scrape/{session}/scrape", json=body, headers=A)
        assert res.status == 200, await res.text()
        return session, (await res.json())["jobId"]

    site = await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")
    session, ref_id = await submit(site)
    reference = await docs_wait(d.client, session, KEY_A, ref_id)
    assert reference["status"] == "finished", reference
    expected = {_path(u) for u in reference["result"]["savedPages"]}
    first = {p for p in expected if p.startswith("/s/0/")}
    assert first and expected - first  # both starter links saved pages

    site = await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")
    session, job_id = await submit(site)
    url = f"/api/v1/scrape/{session}/scrape?jobId={job_id}"
    for _ in range(1000):
        data = await (await d.client.get(url, headers=A)).json()
        assert data["status"] in ("queued", "running"), data
        if data["progress"].get("completedIterations", 0) >= len(first) + 2:
            break
        await asyncio.sleep(0.01)
    await d.stop()
    saved_before = {_path(u) for _, u in _saved_rows(d.cfg.database_path, job_id)}
    assert first < saved_before < expected

    client = await d.start()
    data = await docs_wait(client, session, KEY_A, job_id)
    assert data["status"] == "finished", data
    assert data["result"]["finishReason"] == reference["result"]["finishReason"]
    assert {_path(u) for u in data["result"]["savedPages"]} == expected
    rows = _saved_rows(d.cfg.database_path, job_id)
    assert len(rows) == len({u for _, u in rows}) == len(expected)
    hits = site.app[slowsite.HITS]
    assert all(hits[p] == 1 for p in first), {p: hits[p] for p in first}


@dataclass
class HeldLinks(FakeOllama):
    """A fake model whose answers to questions about links wait for `release`."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    links_asked: int = 0

    async def _chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        if any(LINKS_QUESTION in str(m.get("content")) for m in body["messages"]):
            self.links_asked += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 30)
        return await super()._chat(request)


async def test_a_page_saved_but_not_followed_before_the_stop_chooses_its_links_again(
    daemon_factory: DaemonFactory, facesite: TestServer
) -> None:
    """The daemon stops while the model judges the start page's links: the page is saved,
    its links not yet followed. Resumed, the page is fetched again and its links followed,
    but it is not saved twice; the job saves the pages of a run never interrupted."""
    held = HeldLinks()
    await held.start()
    try:
        model = {"backend": "auto", "ollama_host": held.host}
        d = await daemon_factory(server=KEYS, relevance=model)
        assert d.client is not None
        session = str(uuid.uuid4())
        body = {"starterLinks": [str(facesite.make_url("/docs/"))], "applicationName": "Widgetron"}
        res = await d.client.post(f"/api/v1/scrape/{session}/scrape", json=body, headers=A)
        job_id = (await res.json())["jobId"]
        for _ in range(1000):
            if held.links_asked:
                break
            await asyncio.sleep(0.02)
        await d.stop()
        with sqlite3.connect(d.cfg.database_path) as conn:
            recorded = conn.execute("SELECT count(*) FROM pages WHERE job_id = ?", (job_id,))
            assert recorded.fetchone()[0] == 0
        assert [_path(u) for _, u in _saved_rows(d.cfg.database_path, job_id)] == ["/docs/"]

        held.release.set()
        client = await d.start()
        data = await docs_wait(client, session, KEY_A, job_id)
        assert data["status"] == "finished", data
        saved = {_path(u) for u in data["result"]["savedPages"]}
        assert saved == set(DOC_PAGES)
        rows = _saved_rows(d.cfg.database_path, job_id)
        assert [p for p, _ in rows] == list(range(len(DOC_PAGES)))
        assert facesite.app[HITS]["/docs/"] == 2  # its links were never followed: again
    finally:
        held.release.set()
        await held.close()


# -- Spidra ---------------------------------------------------------------------------------


async def _spidra_view(client: Client, job_id: str) -> dict[str, Any]:
    res = await client.get(f"/api/scrape/{job_id}", headers=A)
    assert res.status == 200, await res.text()
    body: dict[str, Any] = await res.json()
    return body


async def test_a_spidra_job_stopped_with_the_daemon_keeps_its_pages_and_asks_the_model_once(
    daemon_factory: DaemonFactory, facesite: TestServer, fake: FakeOllama
) -> None:
    """Pages done before the stop are kept (not fetched again), the others fetched; the
    model's answer and token counts are those of the one call the answer came from."""
    model = {"backend": "auto", "ollama_host": fake.host}
    d = await daemon_factory(server=KEYS, relevance=model)
    assert d.client is not None
    urls = [str(facesite.make_url(p)) for p in ("/article", "/slow", "/products")]
    body = {"urls": [{"url": u} for u in urls], "prompt": "What is on these pages?"}
    res = await d.client.post("/api/scrape", json=body, headers=A)
    job_id = (await res.json())["jobId"]
    for _ in range(1000):  # the article and the products are saved; /slow holds the job
        if len(_saved_rows(d.cfg.database_path, job_id)) == 2 and facesite.app[HITS]["/slow"]:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # their pages recorded (flushed every 0.1 s)
    assert (await _spidra_view(d.client, job_id))["status"] == "active"
    await d.stop()
    with sqlite3.connect(d.cfg.database_path) as conn:
        (state,) = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
    assert state == "in_progress"
    assert fake.extractions == []

    client = await d.start()
    assert (await _spidra_view(client, job_id))["status"] == "active"
    facesite.app[RELEASE].set()
    result = await spidra_wait_for_result(client, job_id, KEY_A)
    assert [p["url"] for p in result["data"]] == urls  # each once, in the order asked
    assert all(p["success"] for p in result["data"])
    hits = facesite.app[HITS]
    assert hits["/article"] == 1 and hits["/products"] == 1 and hits["/slow"] == 2
    assert len(fake.extractions) == 1
    skop = await (await client.get(f"/scrape/status/{job_id}", headers=A)).json()
    assert any(w.startswith("resumed after daemon restart: ") for w in skop["warnings"])

    # The same request never interrupted: the same answer, the same token counts.
    res = await client.post("/api/scrape", json=body, headers=A)
    again = await spidra_wait_for_result(client, (await res.json())["jobId"], KEY_A)
    assert again["data"] == result["data"]
    assert again["content"] == result["content"]
    stats = ("inputTokens", "outputTokens", "totalTokens")
    assert [again["stats"][k] for k in stats] == [result["stats"][k] for k in stats]
    assert result["stats"]["inputTokens"] == fake.extractions[0].tokens[0]


# -- Aitronos -------------------------------------------------------------------------------

GATE: Final = web.AppKey[asyncio.Event]("listing_gate")
LIST_HITS: Final = web.AppKey[dict[int, int]]("listing_hits")
LISTING_PAGES = 3
PER_PAGE = 4
ITEM_SCHEMA = {"type": "object", "properties": {"name": "string", "price": "number"}}


def _listing() -> web.Application:
    """/list?page=1..3: four products each in JSON-LD, linked by rel="next"; page 2 answers
    only once app[GATE] is set."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.query.get("page", "1"))
        request.app[LIST_HITS][n] = request.app[LIST_HITS].get(n, 0) + 1
        if n == 2:
            await request.app[GATE].wait()
        items = [
            {"@type": "Product", "name": f"Lamp {k}", "offers": {"price": 10 + k}}
            for k in range((n - 1) * PER_PAGE, n * PER_PAGE)
        ]
        data = {
            "@context": "https://schema.org",
            "@type": "ItemList",
            "itemListElement": [
                {"@type": "ListItem", "position": i + 1, "item": item}
                for i, item in enumerate(items)
            ],
        }
        nxt = f"<a rel='next' href='/list?page={n + 1}'>Next</a>" if n < LISTING_PAGES else ""
        html = (
            f"<!doctype html><html><head><title>Lamps {n}</title>"
            f"<script type='application/ld+json'>{json.dumps(data)}</script></head>"
            f"<body><h1>Lamps, page {n}</h1>{nxt}</body></html>"
        )
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app[GATE] = asyncio.Event()
    app[LIST_HITS] = {}
    app.router.add_get("/list", page)
    return app


async def _extract(client: Client, url: str) -> tuple[int, dict[str, Any]]:
    body = {"url": url, "schema": ITEM_SCHEMA, "options": {"follow_pagination": True}}
    res = await client.post("/api/v1/scrape", json=body, headers=A)
    return res.status, await res.json()


async def test_an_aitronos_job_stopped_with_the_daemon_reads_its_pages_again_once(
    daemon_factory: DaemonFactory, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """Its items are the pages' items once each; no cached answer comes from it before it
    has completed."""
    app = _listing()
    site = await aiohttp_server(app, host="127.0.0.1")
    url = str(site.make_url("/list?page=1"))
    d = await daemon_factory(server=KEYS)
    assert d.client is not None
    status, created = await _extract(d.client, url)
    assert status == 202 and created["status"] in ("pending", "processing")
    job_id = created["job_id"]
    for _ in range(1000):
        if app[LIST_HITS].get(2):
            break
        await asyncio.sleep(0.02)
    view = await (await d.client.get(f"/api/v1/scrape/jobs/{job_id}", headers=A)).json()
    assert view["status"] == "processing"
    await d.stop()
    with sqlite3.connect(d.cfg.database_path) as conn:
        (state,) = conn.execute("SELECT status FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        outputs = conn.execute("SELECT count(*) FROM job_outputs").fetchone()[0]
    assert state == "in_progress" and outputs == 0

    client = await d.start()
    view = await (await client.get(f"/api/v1/scrape/jobs/{job_id}", headers=A)).json()
    assert view["status"] == "processing"
    # The same request meanwhile: the interrupted job has no answer to lend.
    status, other = await _extract(client, url)
    assert status == 202 and other["job_id"] != job_id and other["metadata"] is None
    app[GATE].set()
    data = await aitronos_wait(client, job_id, KEY_A)
    assert data["status"] == "completed", data
    expected = [{"name": f"Lamp {k}", "price": 10 + k} for k in range(LISTING_PAGES * PER_PAGE)]
    assert data["extracted_data"] == expected  # each once
    assert data["metadata"]["cache_hit"] is False and data["metadata"]["llm_calls"] == 0
    # Read again from the first page: twice for it, once for the other job.
    assert app[LIST_HITS][1] == 3 and app[LIST_HITS][3] == 2
    assert (await aitronos_wait(client, other["job_id"], KEY_A))["extracted_data"] == expected
    skop = await (await client.get(f"/scrape/status/{job_id}", headers=A)).json()
    assert any(w.startswith("resumed after daemon restart: ") for w in skop["warnings"])
    # Completed now: an identical request is answered from it.
    status, cached = await _extract(client, url)
    assert status == 200 and cached["metadata"]["cache_hit"] is True
    assert cached["extracted_data"] == expected


# -- killed (SIGKILL, a real `skopd serve`) --------------------------------------------------


async def _until(check: Callable[[], Awaitable[bool]], what: str, limit_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"not seen in {limit_s} s: {what}")
        await asyncio.sleep(0.02)


def _recorded_pages(database: Path, job_id: str) -> list[str]:
    """URLs of the job's pages the crawl recorded (what a resumed job knows it has done)."""
    with sqlite3.connect(database) as conn:
        rows = conn.execute("SELECT url FROM pages WHERE job_id = ?", (job_id,)).fetchall()
    return [str(u) for (u,) in rows]


async def _ended(http: aiohttp.ClientSession, url: str, active: tuple[str, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal data
        data = await _get(http, url)
        return data["status"] not in active

    await _until(ended, f"{url} ended", 60.0)
    return data


async def test_a_killed_spidra_job_resumes_with_the_answer_of_an_uninterrupted_run(
    http: aiohttp.ClientSession, spawn: Callable[[str], Skopd], facesite: TestServer
) -> None:
    d = spawn("spidra")
    await d.start()
    urls = [str(facesite.make_url(p)) for p in ("/article", "/slow", "/products")]
    body = {"urls": [{"url": u} for u in urls]}
    async with http.post(f"{d.base}/api/scrape", json=body, headers=A) as resp:
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["jobId"]

    async def two_recorded() -> bool:  # the article and the products; /slow holds the job
        return len(_recorded_pages(d.database, job_id)) == 2 and facesite.app[HITS]["/slow"] > 0

    await _until(two_recorded, "two of the three pages recorded")
    code, _ = await d.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _in_store(d, job_id)[0] == "in_progress"

    await d.start()
    facesite.app[RELEASE].set()
    view = await _ended(http, f"{d.base}/api/scrape/{job_id}", ("waiting", "active"))
    assert view["status"] == "completed", view
    result = view["result"]
    assert [p["url"] for p in result["data"]] == urls  # each once, in the order asked
    assert all(p["success"] for p in result["data"])
    rows = _saved_rows(d.database, job_id)
    assert sorted(p for p, _ in rows) == [0, 1, 2] and len({u for _, u in rows}) == 3
    hits = facesite.app[HITS]
    assert hits["/article"] == 1 and hits["/products"] == 1  # kept, not fetched again

    # The same request never interrupted: the same pages and content.
    async with http.post(f"{d.base}/api/scrape", json=body, headers=A) as resp:
        again_id = (await resp.json())["jobId"]
    again = await _ended(http, f"{d.base}/api/scrape/{again_id}", ("waiting", "active"))
    assert again["result"]["data"] == result["data"]
    assert again["result"]["content"] == result["content"]
    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0


async def test_a_killed_aitronos_job_resumes_with_the_items_of_an_uninterrupted_run(
    http: aiohttp.ClientSession,
    spawn: Callable[[str], Skopd],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    app = _listing()
    site = await aiohttp_server(app, host="127.0.0.1")
    url = str(site.make_url("/list?page=1"))
    d = spawn("aitronos")
    await d.start()
    body = {"url": url, "schema": ITEM_SCHEMA, "options": {"follow_pagination": True}}
    async with http.post(f"{d.base}/api/v1/scrape", json=body, headers=A) as resp:
        assert resp.status == 202, await resp.text()
        job_id = (await resp.json())["job_id"]

    async def on_page_two() -> bool:
        return bool(app[LIST_HITS].get(2))

    await _until(on_page_two, "the job waiting on page 2")
    code, _ = await d.signal(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert _in_store(d, job_id)[0] == "in_progress"

    await d.start()
    app[GATE].set()
    status_url = f"{d.base}/api/v1/scrape/jobs/{job_id}"
    data = await _ended(http, status_url, ("pending", "processing"))
    assert data["status"] == "completed", data
    expected = [{"name": f"Lamp {k}", "price": 10 + k} for k in range(LISTING_PAGES * PER_PAGE)]
    assert data["extracted_data"] == expected  # each item once, in page order
    assert data["metadata"]["cache_hit"] is False
    skop = await _get(http, f"{d.base}/scrape/status/{job_id}")
    assert any(w.startswith("resumed after daemon restart: ") for w in skop["warnings"])

    # A run never interrupted (the cache off for it): the same items.
    async with http.post(
        f"{d.base}/api/v1/scrape",
        json={**body, "options": {"follow_pagination": True, "max_items": 12}},
        headers=A,
    ) as resp:
        ref_id = (await resp.json())["job_id"]
    ref = await _ended(http, f"{d.base}/api/v1/scrape/jobs/{ref_id}", ("pending", "processing"))
    assert ref["metadata"]["cache_hit"] is False and ref["extracted_data"] == expected
    code, _ = await d.signal(signal.SIGTERM)
    assert code == 0
