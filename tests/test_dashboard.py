"""The dashboard in a real browser (Debian's Chromium driven by pyppeteer).

A job submitted from the page's form streams its documents into the page while it runs, ends
with the count the results endpoint gives, and a stream dropped mid-job resumes without
showing any document twice.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from aiohttp.test_utils import TestServer
from pyppeteer import launch  # type: ignore[import-untyped]

from tests.conftest import Daemon, submit
from tests.sites import slowsite

# pyppeteer 2.0 passes `loop=` to websockets 10.
pytestmark = pytest.mark.filterwarnings("ignore:remove loop argument:DeprecationWarning")

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY = "sk-test"
AUTH = {"X-API-Key": KEY}
PROMPT = "board meeting minutes from 2024"
DOWNLOADS = "downloads"
PHONE = {"width": 375, "height": 740}
# A 2 s request timeout cuts the docsite's slow page short: the job runs ~2 s, long enough
# for documents to show up before it ends.
DAEMON = {"server": {"api_keys": [KEY]}, "crawler": {"request_timeout_s": 2.0}}

SNAPSHOT_JS = """() => {
  const final = document.getElementById('final');
  return {
    status: document.getElementById('job-status').textContent,
    ids: [...document.querySelectorAll('#documents li[data-document-id]')]
      .map((li) => li.dataset.documentId),
    sources: Object.fromEntries([...document.querySelectorAll('#documents li[data-document-id]')]
      .map((li) => [li.dataset.documentId, li.dataset.source])),
    final: final.hidden ? null : document.getElementById('final-count').textContent,
    streamed: document.getElementById('final-streamed').textContent,
    finalStatus: document.getElementById('final-status').textContent,
  };
}"""
LINKS_JS = """() => Object.fromEntries(
  [...document.querySelectorAll('#documents li[data-document-id]')].map(
    (li) => [li.dataset.documentId, li.querySelector('a[data-download]').getAttribute('href')]))"""
OVERFLOW_JS = "() => document.documentElement.scrollWidth - window.innerWidth"

DaemonFactory = Callable[..., Awaitable[Daemon]]


def chromium() -> str:
    """Fail, never skip: CI installs Chromium, so its absence is a broken setup."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium")
    return str(CHROMIUM)


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Any]:
    args = [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    b = await launch(
        executablePath=chromium(),
        args=args,
        handleSIGINT=False,
        handleSIGTERM=False,
        handleSIGHUP=False,
        autoClose=False,
    )
    proc: subprocess.Popen[bytes] = b.process
    try:
        # Downloads land in the test's own folder, never the user's.
        await b._connection.send(
            "Browser.setDownloadBehavior",
            {"behavior": "allow", "downloadPath": str(tmp_path / DOWNLOADS)},
        )
        yield b
    finally:
        try:
            await asyncio.wait_for(b.close(), 10)
        finally:
            await _reap(proc)


async def _reap(proc: subprocess.Popen[bytes]) -> None:
    """browser.close() does not wait for Chromium: wait, then kill what is left."""
    try:
        await asyncio.to_thread(proc.wait, 5)
    except subprocess.TimeoutExpired:
        proc.kill()
        await asyncio.to_thread(proc.wait, 5)


@pytest.fixture
async def page(browser: Any) -> Any:
    p = await browser.newPage()
    await p.setViewport(PHONE)
    return p


@dataclass
class Watched:
    """What the page showed, sampled every 50 ms until the final results appeared."""

    final: dict[str, Any]
    shown_while_running: bool = False
    duplicates: set[str] = field(default_factory=set)


async def watch_job(
    page: Any, first_document: asyncio.Event | None = None, timeout: float = 20.0
) -> Watched:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    running, duplicates = False, set()
    while True:
        snap: dict[str, Any] = await page.evaluate(SNAPSHOT_JS)
        ids: list[str] = snap["ids"]
        duplicates |= {i for i in ids if ids.count(i) > 1}
        if ids and snap["status"] == "in_progress":
            running = True
            if first_document is not None:
                first_document.set()
        if snap["final"] is not None:
            return Watched(snap, running, duplicates)
        assert loop.time() < deadline, f"no final results on the page after {timeout} s: {snap}"
        await asyncio.sleep(0.05)


class Relay:
    """A TCP relay between the browser and the daemon that can cut every open connection:
    a network drop exactly as the browser sees one, with no test hook in the page."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.writers: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def cut(self) -> int:
        writers = list(self.writers)
        for writer in writers:
            writer.transport.abort()
        return len(writers)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.cut()
            await self.server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer, up_writer}
        self.writers |= pair
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.writers -= pair


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
async def relay(daemon_factory: DaemonFactory) -> AsyncIterator[tuple[Daemon, Relay, str]]:
    """A keyed daemon, reached by the browser only through a relay."""
    d = await daemon_factory(**DAEMON)
    assert d.client is not None and d.client.port is not None
    r = Relay(d.client.port)
    port = await r.start()
    yield d, r, f"http://127.0.0.1:{port}/"
    await r.close()


async def goto(page: Any, url: str) -> None:
    await asyncio.wait_for(page.goto(url, waitUntil="domcontentloaded"), 10)


async def fill(page: Any, selector: str, text: str) -> None:
    await page.evaluate("(s) => { document.querySelector(s).value = ''; }", selector)
    await page.type(selector, text)


async def results_of(d: Daemon, job_id: str) -> dict[str, Any]:
    assert d.client is not None
    resp = await d.client.get(f"/scrape/results/{job_id}", headers=AUTH)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def assert_download(page: Any, d: Daemon, folder: Path) -> None:
    """Clicking a document saves the daemon's file, under its stored name, with the key."""
    assert d.client is not None
    href = await page.Jeval("#documents li a[data-download]", "(a) => a.getAttribute('href')")
    resp = await d.client.get(href, headers=AUTH)
    assert resp.status == 200
    body = await resp.read()
    name = unquote(resp.headers["Content-Disposition"].split("filename*=UTF-8''")[1])
    await page.click("#documents li a[data-download]")
    saved = folder / name
    for _ in range(100):
        if await asyncio.to_thread(saved.is_file):
            break
        await asyncio.sleep(0.05)
    assert await asyncio.to_thread(saved.read_bytes) == body
    assert await page.Jeval("#job-error", "(n) => n.textContent") == ""


def assert_matches_results(watched: Watched, results: dict[str, Any]) -> None:
    """The page shows the results' documents, each once, every one of them delivered by the
    stream (before its `done`), none filled in from the results endpoint at the end."""
    docs = results["documents"]
    assert watched.duplicates == set(), f"documents shown twice: {watched.duplicates}"
    assert watched.final["final"] == str(len(docs))
    missed = {i for i, source in watched.final["sources"].items() if source != "stream"}
    assert missed == set(), f"documents the stream never delivered: {missed}"
    assert watched.final["streamed"] == str(len(docs))
    assert sorted(watched.final["ids"]) == sorted(doc["document_id"] for doc in docs)
    assert watched.final["finalStatus"] == results["status"] == "completed"


async def test_job_from_the_form_streams_its_documents_live(
    daemon_factory: DaemonFactory, docsite: TestServer, page: Any, tmp_path: Path
) -> None:
    d = await daemon_factory(**DAEMON)
    assert d.client is not None
    await goto(page, str(d.client.make_url("/")))
    await page.type("#api-key", KEY)
    await page.type("#submit-form [name=website]", str(docsite.make_url("/")))
    await page.type("#submit-form [name=prompt]", PROMPT)
    await page.type("#submit-form [name=max_depth]", "10")

    await page.type("#submit-form [name=timeout]", "5")
    await page.click("#submit-button")
    await page.waitForFunction(
        "() => document.getElementById('submit-error').textContent.includes('timeout')",
        timeout=5000,
    )
    assert await page.Jeval("[name=timeout]", "(n) => n.getAttribute('aria-invalid')") == "true"
    await fill(page, "#submit-form [name=timeout]", "")

    await page.click("#submit-button")
    await page.waitForSelector("#job-view:not([hidden])", timeout=5000)
    job_id = await page.Jeval("#job-view", "(n) => n.dataset.jobId")
    watched = await watch_job(page)
    results = await results_of(d, job_id)

    assert watched.shown_while_running, "no document was on the page before the job ended"
    assert_matches_results(watched, results)
    links = await page.evaluate(LINKS_JS)
    assert links == {doc["document_id"]: doc["download_url"] for doc in results["documents"]}
    assert await page.evaluate(OVERFLOW_JS) <= 0, "horizontal scroll at 375 px"
    await assert_download(page, d, tmp_path / DOWNLOADS)

    # Back to the list, which shows the job ended; opening it again replays the history.
    await page.click("#back")
    row = f'#job-list li[data-job-id="{job_id}"]'
    await page.waitForSelector(f'{row}[data-status="completed"]', timeout=5000)
    assert await page.evaluate(OVERFLOW_JS) <= 0, "horizontal scroll at 375 px"
    await page.click(f"{row} a")
    await page.waitForSelector("#job-view:not([hidden])", timeout=5000)
    replayed = await watch_job(page)
    assert_matches_results(replayed, results)


async def test_dropped_stream_resumes_without_duplicates(
    relay: tuple[Daemon, Relay, str], docsite: TestServer, page: Any
) -> None:
    d, cutter, url = relay
    assert d.client is not None
    await goto(page, url)
    await page.type("#api-key", KEY)
    await asyncio.wait_for(page.reload(waitUntil="domcontentloaded"), 10)  # the key is kept
    assert await page.Jeval("#api-key", "(n) => n.value") == KEY
    streams: list[str] = []
    page.on(
        "request", lambda req: streams.append(req.url) if "/scrape/events/job_" in req.url else None
    )

    job_id = await submit(d.client, str(docsite.make_url("/")), PROMPT, headers=AUTH, max_depth=10)
    await page.waitForSelector(f'#job-list li[data-job-id="{job_id}"] a', timeout=5000)
    await page.click(f'#job-list li[data-job-id="{job_id}"] a')

    first_document = asyncio.Event()
    watching = asyncio.create_task(watch_job(page, first_document))
    await asyncio.wait_for(first_document.wait(), 10)
    assert cutter.cut() > 0
    watched = await watching
    results = await results_of(d, job_id)

    assert_matches_results(watched, results)
    resumed_from = [parse_qs(urlsplit(url).query).get("last_event_id", ["0"])[0] for url in streams]
    assert len(streams) >= 2, f"the stream was never reopened: {streams}"
    assert resumed_from[0] == "0" and int(resumed_from[-1]) > 0, streams


# Before the page's own script: this job's `status` events never reach the page, and the
# `page` events it gets are counted, in the same handler call that the page updates in.
NO_STATUS_JS = """() => {
  window.pagesStreamed = 0;
  const Native = window.EventSource;
  window.EventSource = class extends Native {
    addEventListener(type, listener, options) {
      if (type === 'status' && this.url.includes('/scrape/events/job_')) return;
      if (type === 'page') {
        const inner = listener;
        listener = (ev) => {
          if (!JSON.parse(ev.data).skipped) window.pagesStreamed += 1;
          inner(ev);
        };
      }
      super.addEventListener(type, listener, options);
    }
  };
}"""
PAGES_JS = """() => ({
  shown: Number(document.getElementById('job-pages').textContent),
  streamed: window.pagesStreamed,
  ended: !document.getElementById('final').hidden,
})"""


async def test_pages_crawled_count_follows_page_events(
    daemon_factory: DaemonFactory,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    page: Any,
) -> None:
    """Pages crawled goes up with each page event, not only when a status comes: here no
    status event of the job reaches the page at all until the job's `done`."""
    d = await daemon_factory(crawler={"request_timeout_s": 5.0})
    assert d.client is not None
    site = await aiohttp_server(slowsite.make_slowsite(), host="127.0.0.1")
    job_id = await submit(d.client, str(site.make_url("/")), slowsite.PROMPT, max_depth=10)
    await page.evaluateOnNewDocument(NO_STATUS_JS)
    await goto(page, str(d.client.make_url(f"/#job/{job_id}")))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    most = 0
    while True:
        seen: dict[str, Any] = await page.evaluate(PAGES_JS)
        if seen["ended"]:
            break
        assert seen["shown"] >= seen["streamed"], seen  # never behind the page events
        most = max(most, seen["streamed"])
        assert loop.time() < deadline, seen
        await asyncio.sleep(0.05)
    assert most >= 5, "too few page events while the job ran"
    results = await d.client.get(f"/scrape/results/{job_id}")
    assert seen["shown"] == (await results.json())["total_pages_crawled"]
