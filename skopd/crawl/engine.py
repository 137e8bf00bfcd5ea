"""One job's crawl: coordinator (start page, search terms), navigator (best-first frontier),
scraper (score candidates, download the relevant ones).

Workers share one priority queue of work items: pages to crawl and documents to download.
Downloads rank above every page so results appear early; pages rank by how well their
link text and URL match the prompt.

Politeness: every request passes robots.txt (one fetch per origin, Crawl-delay honoured);
sitemaps seed the frontier; links shaped like crawler traps are counted, not followed.

Checkpoint: every URL seen, queued and done goes to the recorder with what it found, in the
same flush, and a worker takes no new work before its last item is in the store; so a crawl
stopped at any moment (SIGKILL included) continues from the store (`restore`) fetching again
at most the items that were in flight, and never records a page or a document twice.

JavaScript (`render_js`): with "auto", an HTML page that looks like an application shell is
rendered in the shared Chromium and the links of the rendered DOM join the same pipeline
as static links; each host remembers what worked (see HostRendering). "always" renders
every HTML page, "never" none.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import heapq
import itertools
import os
import secrets
import time
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol
from urllib.parse import urlsplit

import aiohttp
import msgspec
from yarl import URL

from skopd.config import Config, RelevanceConfig
from skopd.crawl import doctypes, sitemaps, urls
from skopd.crawl.browser import (
    RENDERED_CONTENT_TYPE,
    BrowserGone,
    BrowserPool,
    BrowserUnavailable,
    NotAPage,
    Rendered,
    RenderError,
)
from skopd.crawl.extract import Link, Page, parse_page
from skopd.crawl.fetch import (
    Downloader,
    FetchError,
    describe,
    failure_kind,
    header,
    read_limited,
)
from skopd.crawl.recorder import Recorder
from skopd.crawl.robots import Robots, RobotsCache, origin_of
from skopd.crawl.shell import looks_like_app_shell
from skopd.crawl.traps import TrapGuard, TrapState
from skopd.models import Job, Screenshot, StoredDocument, new_id, utcnow
from skopd.relevance.backend import JobRelevance
from skopd.relevance.base import Candidate, Scored
from skopd.relevance.doctext import TEXT_TYPES, DocTextError, extract_text
from skopd.relevance.lexical import document_name, is_ambiguous
from skopd.relevance.query import Query, build_query, link_priority
from skopd.store import DEFERRED, DONE, SEEN, Checkpoint

HTML_TYPES = ("text/html", "application/xhtml+xml")
INLINE_PARSE_BYTES = 256 * 1024
SNIFF_BYTES = 8192
DOWNLOAD_PRIORITY = -10.0
PROBE_PRIORITY = -2.0  # after relevant downloads, before any page
MAX_PROBES = 100  # per job
ROBOTS_KINDS = frozenset({"robots_disallowed", "robots_unavailable"})
MB = 1024 * 1024
FREE_CHECK_BYTES = 8 * MB  # the disk's free space is asked again after this many bytes
LISTED_ROBOTS_ERRORS = 10  # page URLs skipped by robots.txt shown as errors; the rest counted
FUTILE_RENDERS = 3  # renders of a host that brought nothing, before its shells are left alone


class JobFailed(Exception):
    """The site cannot be crawled at all; the job ends `failed` with this message."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


class DownloadLimits(NamedTuple):
    """What a crawl may write: the job's byte quota and the free space kept on the disk."""

    max_job_bytes: int | None
    min_free_bytes: int

    @classmethod
    def of(cls, cfg: Config) -> DownloadLimits:
        return cls(cfg.jobs.max_job_bytes_mb * MB, cfg.storage.min_free_disk_mb * MB)


class Item(msgspec.Struct):
    """A unit of work: a page to crawl or a document to download."""

    url: str
    depth: int
    link: Link
    source_page: str
    page_title: str
    candidate: Candidate | None = None  # set for downloads
    name: str = ""
    score: float = 0.0
    probe: bool = False  # below the threshold, but only its own text can tell
    key: str = ""  # set when a sitemap lists the URL too: whichever entry comes first is fetched
    norm: str = ""  # the normalized URL: the item's key in the checkpoint
    route: bool = False  # a client-side route (`/app/#/docs`): rendered, never fetched


class HostRendering(msgspec.Struct, array_like=True):
    """What one host's pages needed so far (auto mode).

    A host whose static pages have content of their own never reaches the browser. A host
    whose shells, rendered, showed links their HTML lacked, and whose pages are mostly
    shells, renders its next pages directly (no static fetch first). A direct render is
    judged too, on the HTML the server sent (Chromium keeps it): once the host's pages stop
    being mostly shells, or its renders stop finding more than their HTML had, its pages
    are fetched statically first again. A host whose renders keep finding nothing more is
    not rendered again.
    """

    shells: int = 0  # pages whose served HTML looked like an application shell
    plain: int = 0  # pages whose served HTML had content of its own
    gains: int = 0  # renders that found links the served HTML did not have
    futile: int = 0  # renders that failed or found nothing more

    def direct(self) -> bool:
        return self.gains > self.futile and self.shells > self.plain

    def given_up(self) -> bool:
        return self.gains == 0 and self.futile >= FUTILE_RENDERS

    def scored(self, rendered: Rendered, static: set[str]) -> bool:
        """Count a render: whether its DOM had links the served HTML (`static`, normalized)
        did not, a gain, or none, futile."""
        gained = any(urls.normalize_url(link) not in static for link in rendered.links)
        if gained:
            self.gains += 1
        else:
            self.futile += 1
        return gained


class Outcome(msgspec.Struct):
    reason: str  # "completed", "max_pages", "timeout", "interrupted" (the daemon is stopping)


class CrawlState(msgspec.Struct, array_like=True):
    """The engine's own counters and flags, written with every flush of the checkpoint."""

    started: bool  # the start page is done
    seeded: bool  # the sitemaps were read to the end
    sites: list[str]
    start_origin: str
    pages_started: int
    pages_skipped: int
    probes: int
    disallowed: int
    traps: dict[str, int]
    elapsed_s: float  # time spent crawling, over every run of the job
    job_bytes: int = 0  # downloaded, against jobs.max_job_bytes_mb
    rendering: dict[str, HostRendering] = msgspec.field(default_factory=dict)  # by host
    rendered_well: bool = False
    # The trap guard's TrapState, encoded by the guard only when it changed (nil: none).
    trap_state: msgspec.Raw = msgspec.Raw(b"\xc0")


class PageSink(Protocol):
    """Keeps the content of the HTML pages a crawl fetches (the kinds that answer with
    pages rather than documents). A crawl with a sink does not read sitemaps: the sink
    chooses which of a page's links are followed."""

    async def page(self, page: Page, body: bytes, depth: int) -> list[Link]:
        """Called once per fetched HTML page, before its links are followed; answers the
        links of `page.links` the crawl may follow."""
        ...

    async def restore(self, recorded: set[str]) -> None:
        """A restored crawl: take back what was kept before the restart; `recorded` holds
        the normalized URLs of the pages the crawl recorded (their links were followed)."""
        ...


class Crawl:
    def __init__(
        self,
        job: Job,
        recorder: Recorder,
        downloader: Downloader,
        scorer: JobRelevance,
        documents_dir: Path,
        text_limits: RelevanceConfig,
        sink: PageSink | None = None,
        limits: DownloadLimits | None = None,
        browser: BrowserPool | None = None,
    ) -> None:
        self.job = job
        self.sink = sink
        self.params = job.parameters
        self.rec = recorder
        self.http = downloader
        self.scorer = scorer
        self.text_limits = text_limits
        self.dir = documents_dir / job.job_id
        self.query: Query = build_query(job.prompt)
        self.delay_s = downloader.cfg.per_host_delay_ms / 1000
        self.sites: set[str] = set()
        self.seen: set[str] = set()
        self.hashes: set[str] = set()
        self.heap: list[tuple[float, int, Item]] = []
        self.counter = itertools.count()
        self.candidate_ids = itertools.count(1)
        self.document_ids = itertools.count(1)
        self.pages_started = 0
        self.pages_skipped = 0
        self.probes = 0
        self.pages_queued = 0
        self.pages_active = 0
        self.active = 0
        self.wakeup = asyncio.Event()
        self.types = frozenset(self.params.document_types)
        self.max_bytes = self.params.max_file_size_mb * 1024 * 1024
        self.max_job_bytes = limits.max_job_bytes if limits else None
        self.min_free_bytes = limits.min_free_bytes if limits else 0
        self.job_bytes = 0  # downloaded by this job so far
        self.free_checked_at = 0  # job_bytes when the disk's free space was last checked
        self.downloads_stopped = False
        self.frontier_cap = max(10_000, self.params.max_pages * 20)
        cfg = downloader.cfg
        self.respect_robots = cfg.respect_robots and (
            self.params.respect_robots or not cfg.allow_ignore_robots
        )
        self.robots = RobotsCache(downloader, self.delay_s, self.respect_robots, recorder.warning)
        self.disallowed = 0
        self.traps = TrapGuard(cfg.max_url_length, year_now=utcnow().year)
        self.deadline: float | None = None
        self.start_origin = ""
        self.listed: set[str] = set()  # keys of URLs seeded from sitemaps
        self.listed_fetched: set[str] = set()
        # Sitemap documents wait until no page can link them with words to judge them by.
        self.deferred: dict[str, tuple[Item, str]] = {}
        self.seeding = False
        # Resuming and stopping (see restore() and stop()).
        self.resumed = False
        self.started = False
        self.seeded = False
        self.stopping = False
        self.began = time.monotonic()
        started = job.started_at
        self.elapsed_before = (utcnow() - started).total_seconds() if started else 0.0
        recorder.crawl_state = self._state
        self.browser = browser
        self.rendering: dict[str, HostRendering] = {}
        self.rendered_well = False  # some host's render found what its HTML lacked
        # Why pages are not rendered in this job although they would be (browser unusable).
        self.render_off: str | None = None if browser is not None else "no browser configured"

    # -- the job ----------------------------------------------------------

    async def run(self) -> Outcome:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.resumed:
            self.rec.enter("coordinator")
        await self._check_browser()
        start = self._coordinate()
        reason = "completed"
        self.deadline = self.robots.deadline = time.monotonic() + self._time_left()
        self._robots_notice()
        seeding: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self._time_left()):
                self.query = await self.scorer.plan(self.query)
                if not self.started:
                    await self._process_page(start, first=True)
                    self.started = True
                    self.rec.done(start.norm)
                    await self.rec.commit()
                if self.rec.job.current_agent == "coordinator":
                    self.rec.enter("navigator")
                if (
                    not self.params.single_page
                    and self.sink is None
                    and not self.seeded
                    and not self.stopping
                ):
                    self.seeding = True
                    self.active += 1  # the workers wait for the sitemaps
                    seeding = asyncio.create_task(self._seed_from_sitemaps())
                await self._drain()
        except TimeoutError:
            reason = "timeout"
            self.rec.warning(
                f"timeout of {self.params.timeout} s reached; results are what was found by then"
            )
        finally:
            if seeding is not None:
                seeding.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await seeding
            self._usage()
            if not self.stopping:
                self._summarize()
        if self.stopping:
            return Outcome(reason="interrupted")  # the job resumes at the next start
        if reason == "completed" and self.pages_skipped:
            reason = "max_pages"
            self.rec.warning(
                f"max_pages limit of {self.params.max_pages} pages reached; "
                f"{self.pages_skipped} more pages were not crawled"
            )
        if self.rec.job.current_agent == "navigator":
            self.rec.enter("scraper")
        self.rec.finish_agents()
        self.rec.estimate(1.0)
        return Outcome(reason=reason)

    def _robots_notice(self) -> None:
        cfg = self.http.cfg
        if cfg.respect_robots and self.respect_robots and not self.params.respect_robots:
            self.rec.warning(
                "respect_robots: false was not applied: the daemon's "
                "crawler.allow_ignore_robots is false; robots.txt is obeyed"
            )
        elif cfg.respect_robots and not self.respect_robots:
            self.rec.warning("robots.txt is not obeyed for this job (respect_robots: false)")

    def _summarize(self) -> None:
        """Counts are known only at the end, and warnings are stored once each."""
        if self.disallowed:
            self.rec.warning(f"{self.disallowed} URLs were skipped: disallowed by robots.txt")
        for message in self.traps.summary():
            self.rec.warning(message)

    def _elapsed(self) -> float:
        """Time spent crawling this job, over every run of it (not the daemon's downtime)."""
        return self.elapsed_before + (time.monotonic() - self.began)

    def _time_left(self) -> float:
        return max(0.0, self.params.timeout - self._elapsed())

    def _coordinate(self) -> Item:
        website = self.job.website
        host = URL(website).host or ""
        self.sites.add(urls.site_key(host))
        key = urls.route_key(website)
        self.seen.add(key)
        link = Link(url=website, text="", title="", heading="", context="", tag="a")
        return Item(url=website, depth=0, link=link, source_page=website, page_title="", norm=key)

    # -- stopping and resuming --------------------------------------------

    def stop(self) -> None:
        """The daemon is stopping: take no new work; run() returns "interrupted" once the
        items in flight are done (or cancelled by the caller)."""
        self.stopping = True
        self.wakeup.set()

    def _state(self) -> bytes:
        return msgspec.msgpack.encode(
            CrawlState(
                started=self.started,
                seeded=self.seeded,
                sites=sorted(self.sites),
                start_origin=self.start_origin,
                pages_started=self.pages_started - self.pages_active,  # those redo their page
                pages_skipped=self.pages_skipped,
                probes=self.probes,
                disallowed=self.disallowed,
                traps=dict(self.traps.stopped),
                elapsed_s=round(self._elapsed(), 3),
                job_bytes=self.job_bytes,
                rendering=self.rendering,
                rendered_well=self.rendered_well,
                trap_state=self.traps.checkpoint(),
            )
        )

    async def restore(self, cp: Checkpoint) -> None:
        """Continue a crawl from its checkpoint: what was seen stays seen, queued work is
        queued again as it was, and a download that was cut off is fetched again."""
        self.resumed = True
        self.rec.crawl_state = None  # no flush meanwhile writes a state not yet restored
        if cp.state is not None:
            st = msgspec.msgpack.decode(cp.state, type=CrawlState)
            self.started, self.seeded = st.started, st.seeded
            self.sites.update(st.sites)
            self.start_origin = st.start_origin
            self.pages_started, self.pages_skipped = st.pages_started, st.pages_skipped
            self.probes, self.disallowed = st.probes, st.disallowed
            self.traps.stopped.update(st.traps)
            traps = msgspec.msgpack.decode(st.trap_state, type=TrapState | None)
            if traps is not None:
                self.traps.restore(traps)
            self.elapsed_before = st.elapsed_s
            self.job_bytes = st.job_bytes
            self.rendering.update(st.rendering)  # what each host's pages needed
            self.rendered_well = st.rendered_well
            self.began = time.monotonic()
        decided = {urls.normalize_url(u) for u in cp.decided}
        recorded = {urls.route_key(u) for u in cp.pages}
        self.seen |= decided
        decode = msgspec.msgpack.Decoder(Item).decode
        last_ord = last_candidate = 0
        for row in cp.frontier:
            if row.state in (SEEN, DONE) or row.item is None or row.key in decided:
                self.seen.add(row.key)
                continue
            item = decode(row.item)
            if item.candidate is not None:
                last_candidate = max(last_candidate, item.candidate.id)
            if row.state == DEFERRED:  # as before: a link to it may still say more
                self.listed.add(row.key)
                self.deferred[row.key] = (item, row.kind or "")
                continue
            if item.key:
                self.listed.add(item.key)  # a sitemap's: links to it are queued too
            else:
                self.seen.add(row.key)
            if item.candidate is None and row.key in recorded:
                continue  # its page is recorded
            self.pages_queued += item.candidate is None
            last_ord = max(last_ord, row.ord or 0)
            heapq.heappush(self.heap, (row.priority or 0.0, row.ord or 0, item))
        self.counter = itertools.count(last_ord + 1)
        self.candidate_ids = itertools.count(last_candidate + 1)
        self.hashes = {d.sha256 for d in cp.documents}
        numbers = [int(d.document_id.rpartition("_")[2]) for d in cp.documents]
        self.document_ids = itertools.count(max(numbers, default=0) + 1)
        kept = {d.file_name for d in cp.documents}
        kept.update(shot.file_name for shot in await self.rec.store.screenshots(self.job.job_id))
        await asyncio.to_thread(_discard_unrecorded, self.dir, kept)
        if self.sink is not None:
            await self.sink.restore(recorded)
        self.rec.crawl_state = self._state

    # -- the frontier -----------------------------------------------------

    def _push(self, priority: float, item: Item) -> None:
        if item.candidate is None:
            self.pages_queued += 1
        order = next(self.counter)
        heapq.heappush(self.heap, (priority, order, item))
        self.rec.queued(item.norm, priority, order, item)
        self.wakeup.set()

    async def _drain(self) -> None:
        workers = [
            asyncio.create_task(self._worker(), name=f"{self.job.job_id}-worker-{i}")
            for i in range(self.http.cfg.concurrency)
        ]
        progress = asyncio.create_task(self._report_progress())
        try:
            await asyncio.gather(*workers)
        finally:
            progress.cancel()
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, progress, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            if self.stopping:
                return
            if not self.heap:
                if self.active == 0:
                    if self.deferred:
                        await self._judge_deferred()
                        continue
                    self.wakeup.set()  # let the other idle workers see the end too
                    return
                self.wakeup.clear()
                await self.wakeup.wait()
                continue
            _, _, item = heapq.heappop(self.heap)
            self.active += 1
            try:
                if item.candidate is not None:
                    if self.pages_queued == 0 and self.pages_active == 0 and not self.seeding:
                        self._navigation_done()
                    await self._download(item)
                else:
                    self.pages_queued -= 1
                    if item.key and self._fetched_before(item.key):
                        pass
                    elif self.pages_started >= self.params.max_pages:
                        self.pages_skipped += 1
                    else:
                        self.pages_active += 1
                        try:
                            await self._process_page(item)
                        finally:
                            self.pages_active -= 1
                self.rec.done(item.norm)  # not when cancelled: then it is done again
            finally:
                self.active -= 1
                if not self.heap and self.active == 0:
                    self.wakeup.set()
            # In the store before the next request: a crash redoes at most one item a worker.
            await self.rec.commit()

    def _fetched_before(self, key: str) -> bool:
        if key in self.listed_fetched:
            return True
        self.listed_fetched.add(key)
        return False

    async def _judge_deferred(self) -> None:
        entries = list(self.deferred.values())
        self.deferred.clear()
        self.active += 1
        try:
            await self._judge([item for item, _ in entries], [kind for _, kind in entries])
        finally:
            self.active -= 1

    def _navigation_done(self) -> None:
        if self.rec.job.current_agent == "navigator":
            self.rec.enter("scraper")

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            total = min(self.params.max_pages, self.pages_started + self.pages_queued)
            self.rec.estimate(0.05 + 0.9 * self.pages_started / max(1, total))
            self._usage()

    def _usage(self) -> None:
        s = self.scorer
        self.rec.usage(s.llm_calls, s.input_tokens, s.output_tokens)

    # -- pages ------------------------------------------------------------

    async def _process_page(self, item: Item, first: bool = False) -> None:
        self.pages_started += 1
        began = time.monotonic()
        if item.route:
            await self._process_route(item, began)
            return
        # A render that failed is not tried again for the same page: its static HTML is read.
        tried = not first and self._render_directly(item.url)
        if tried and await self._direct(item, began):
            return
        try:
            async with self.http.get(item.url, gate=self._gate, deadline=self.deadline) as resp:
                final = str(resp.url)
                if first:
                    self._adopt_site(final)
                elif not self._in_scope(final):
                    return  # redirected off-site
                content_type = header(resp, "Content-Type")
                ctype = (content_type or "").split(";")[0].strip().lower()
                if resp.status >= 400:
                    self._page(item, final, resp.status, 0, began)
                    if first:
                        raise JobFailed(
                            "start_page_unreachable",
                            f"start page {item.url} answered HTTP {resp.status}",
                        )
                    self.rec.error(f"http_{resp.status}", f"HTTP {resp.status}", final)
                    return
                if ctype not in HTML_TYPES:
                    head = await _sniff(resp)
                    kind = self._classify(resp, ctype, head, final)
                    if kind is None or kind == "html":
                        if kind is None:
                            if first:
                                raise JobFailed(
                                    "start_page_not_html",
                                    f"start page {item.url} is {ctype or 'untyped'}, "
                                    "neither HTML nor a document",
                                )
                            return
                        body, cut = await read_limited(resp, self.http.cfg.max_page_bytes)
                        body = head + body
                    else:
                        await self._found_in_response(item, resp, final, kind, head)
                        return
                else:
                    body, cut = await read_limited(resp, self.http.cfg.max_page_bytes)
                if cut:
                    self.rec.warning(
                        f"some pages were larger than crawler.max_page_bytes "
                        f"({self.http.cfg.max_page_bytes} bytes) and were cut"
                    )
                    self.rec.error(
                        "page_too_large",
                        f"cut at crawler.max_page_bytes ({self.http.cfg.max_page_bytes} "
                        "bytes, decoded); the part read was used",
                        final,
                    )
                status = resp.status
        except FetchError as exc:
            if first:
                raise JobFailed(exc.kind, f"start page {item.url}: {exc.message}") from exc
            if exc.kind in ROBOTS_KINDS:
                self.pages_started -= 1  # never requested
                self._disallowed_page(item, exc)
                return
            self.rec.error(exc.kind, exc.message, item.url)
            return
        except (aiohttp.ClientError, TimeoutError) as exc:
            if first:
                raise JobFailed(
                    "start_page_unreachable", f"start page {item.url}: {describe(exc)}"
                ) from exc
            self.rec.error(failure_kind(exc, "fetch_failed"), describe(exc), item.url)
            return
        copy = self.traps.duplicate_content(body, final)
        if copy and not self._may_be_a_view(body):
            self._copy(item, final, status, began)
            return
        page = await _parse(body, final, content_type)
        if self._needs_render(page, body) and not tried:
            # Servers of pushState apps answer every path with the same shell: the same
            # bytes at another URL are then another view of the app, not a known page.
            await self._render_after(item, page, body, status, began)
            return
        if copy:
            self._copy(item, final, status, began)
            return
        elapsed, links = _ms(began), len(page.links)
        if self.sink is not None:
            page.links = await self.sink.page(page, body, item.depth)
        await self._follow(page, item.depth)
        # Recorded with what it found, and done in the same flush: never counted twice.
        self.rec.page(final, status, item.depth, links, elapsed)
        self.rec.done(item.norm)

    def _page(
        self, item: Item, final: str, status: int, links: int, began: float, engine: str = "http"
    ) -> None:
        self.rec.page(final, status, item.depth, links, _ms(began), engine)
        self.rec.done(item.norm)

    def _classify(
        self, resp: aiohttp.ClientResponse, ctype: str, head: bytes, url: str
    ) -> str | None:
        """'html', a document type, or None (neither)."""
        by_header, _ = doctypes.type_from_headers(
            header(resp, "Content-Type"), header(resp, "Content-Disposition")
        )
        kind = by_header or doctypes.type_from_magic(head)
        if kind:
            return kind
        if not ctype and head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            return "html"
        return None

    def _adopt_site(self, final_url: str) -> None:
        host = URL(final_url).host or ""
        self.sites.add(urls.site_key(host))
        key = urls.normalize_url(final_url)
        self.seen.add(key)
        self.rec.seen(key)
        self.start_origin = origin_of(final_url)

    def _in_scope(self, url: str) -> bool:
        return any(urls.same_site(url, key) for key in self.sites)

    async def _follow(self, page: Page, depth: int, extra: Sequence[Link] = ()) -> None:
        """Queue the new links of `page` (and `extra` links it had at some point: a rendered
        page's earlier states), judge the documents among them."""
        params = self.params
        kept: list[Link] = []
        found: list[Item] = []
        kinds: list[str] = []
        dated = self.traps.dated(page.url)
        for link in itertools.chain(page.links, extra):
            url = link.url
            key = urls.normalize_url(url)
            if not self._first_sight(url, key):
                continue
            kind = doctypes.type_from_url(url)
            item = _item(link, key, depth, page)
            if kind is not None:
                if kind in self.types and self._document_admitted(item, key, kind):
                    self.deferred.pop(key, None)  # this link says more than the sitemap
                    kept.append(link)
                    found.append(item)
                    kinds.append(kind)
                else:
                    self.rec.seen(key)
                continue
            if (
                not doctypes.looks_like_page(url)  # an image, a script, an archive
                or params.single_page
                or depth + 1 > params.max_depth
                or not self._page_admitted(item, key, dated)
            ):
                self.rec.seen(key)
                continue
            if key in self.listed:
                item.key = key
            kept.append(link)
            self._push(-link_priority(self.query, url, link.text), item)
        # Heading and context cost a walk of the page: only for links seen for the first time.
        own = {link.url for link in page.links}
        page.describe([link for link in kept if link.url in own])
        if found:
            await self._judge(found, kinds)

    def _follow_routes(self, routes: Sequence[tuple[str, str]], depth: int, page: Page) -> None:
        """Queue the client-side routes (url, link text) a rendered page links: pages of
        their own (the key keeps the route), admitted as any page is, always rendered."""
        params = self.params
        dated = bool(routes) and self.traps.dated(page.url)
        for url, text in routes:
            key = urls.route_key(url)
            if not self._first_sight(url, key):
                continue
            link = Link(url=url, text=text, title="", heading="", context="", tag="a")
            item = _item(link, key, depth, page, route=True)
            if (
                params.single_page
                or depth + 1 > params.max_depth
                or not self._page_admitted(item, key, dated)
            ):
                self.rec.seen(key)
                continue
            self._push(-link_priority(self.query, url, text), item)

    def _may_be_a_view(self, body: bytes) -> bool:
        """Whether a page with an earlier page's bytes could be an application shell that
        `auto` renders (so a view of its own): only then is a copy parsed at all."""
        return self.params.render_js == "auto" and self.render_off is None and b"<script" in body

    def _copy(
        self, item: Item, final: str, status: int, began: float, engine: str = "http"
    ) -> None:
        """A page with an earlier page's content: its links are known, it is not followed."""
        self.traps.copy_stopped()
        self._page(item, final, status, 0, began, engine)

    def _first_sight(self, url: str, key: str) -> bool:
        """Whether a link is new, in scope and within the job's paths; seen from now on."""
        if key in self.seen or not self._in_scope(url):
            return False
        if not urls.path_allowed(url, self.params.include_paths, self.params.exclude_paths):
            return False
        self.seen.add(key)
        return True

    def _page_admitted(self, item: Item, key: str, from_dated_page: bool) -> bool:
        refusal = self._known_refusal(item.url)
        if refusal is not None:
            self._disallowed_page(item, refusal)
            return False
        if self.traps.page_link(item.url, key, from_dated_page) is not None:
            return False
        if len(self.heap) >= self.frontier_cap:
            self.rec.warning("the frontier is full; some links were not queued")
            return False
        return True

    def _document_admitted(self, item: Item, key: str, kind: str) -> bool:
        if self._known_refusal(item.url) is not None:
            self.disallowed += 1
            name = urls.file_name_from_url(item.url)
            self.rec.candidate(item.url, item.source_page, name, kind, 0.0, "disallowed")
            return False
        return self.traps.document_link(item.url, key) is None

    # -- pages that need JavaScript ----------------------------------------

    async def _check_browser(self) -> None:
        """render_js "always" with no usable browser: the job cannot be done as asked."""
        if self.params.render_js != "always":
            return
        reason = self.render_off
        if self.browser is not None:
            reason = await self.browser.available()
        if reason is not None:
            raise JobFailed(
                "browser_unavailable",
                f'render_js is "always" but the browser is unavailable: {reason}',
            )

    def _host(self, url: str) -> HostRendering:
        host = urlsplit(url).netloc.lower()
        memory = self.rendering.get(host)
        if memory is None:
            memory = self.rendering[host] = HostRendering()
        return memory

    def _render_directly(self, url: str) -> bool:
        mode = self.params.render_js
        if mode == "never" or self.render_off is not None:
            return False
        return mode == "always" or (self.rendered_well and self._host(url).direct())

    def _needs_render(self, page: Page, body: bytes) -> bool:
        """After a static fetch: render it? (may read page.text_chars: before _follow)"""
        mode = self.params.render_js
        if mode == "never" or self.render_off is not None:
            return False
        if mode == "always":
            return True
        if not self._count_shell(page, body):
            return False
        return not self._host(page.url).given_up()

    def _count_shell(self, page: Page, body: bytes) -> bool:
        """Whether `body` (a page's HTML as served) looks like a shell, counted for its host.
        May read page.text_chars: before _follow."""

        def usable() -> int:  # links the crawl could follow: the test tells 0, <5, <10, more
            count = 0
            for link in page.links:
                if self._in_scope(link.url):
                    count += 1
                    if count == 10:
                        break
            return count

        memory = self._host(page.url)
        shell = looks_like_app_shell(body, usable, lambda: page.text_chars)
        if shell:
            memory.shells += 1
        else:
            memory.plain += 1
        return shell

    async def _render_after(
        self, item: Item, page: Page, body: bytes, status: int, began: float
    ) -> None:
        """A statically fetched shell: its own links first, then the rendered DOM's.

        A sink gets the rendered page only, or the static one if the render fails."""
        static = {urls.normalize_url(link.url) for link in page.links}
        if self.sink is None:
            await self._follow(page, item.depth)
        rendered = await self._render(_with_route(page.url, item.url))
        if rendered is None:
            elapsed = _ms(began)
            if self.sink is not None:
                page.links = await self.sink.page(page, body, item.depth)
                await self._follow(page, item.depth)
            self.rec.page(page.url, status, item.depth, len(static), elapsed)
            self.rec.done(item.norm)
            return
        page.release()
        if self.traps.duplicate_content(rendered.html, rendered.final_url):
            # Shown before at another URL (a hash app's #/ view after its start page).
            self._copy(item, rendered.final_url, status, began, "browser")
            return
        if self._host(page.url).scored(rendered, static):
            self.rendered_well = True
        await self._rendered(item, rendered, status, began)

    async def _process_route(self, item: Item, began: float) -> None:
        """A client-side route: only a browser shows it (a static fetch would read the app's
        shell at its URL without the fragment, which robots.txt is asked about)."""
        if self.render_off is None:
            try:
                await self._gate(URL(item.url))
            except FetchError as exc:
                self.pages_started -= 1  # never requested
                if exc.kind in ROBOTS_KINDS:
                    self._disallowed_page(item, exc)
                else:
                    self.rec.error(exc.kind, exc.message, item.url)
                return
            if await self._direct(item, began) or self.render_off is None:
                return  # rendered, or its render failed with its own error
        # No browser (any more): the route is not read at all, and says so.
        self.pages_started -= 1
        self.rec.error(
            "render_failed", f"client-side route not rendered: {self.render_off}", item.url
        )

    async def _direct(self, item: Item, began: float) -> bool:
        """Render without a static fetch first; False: fetch it statically instead.

        A route's render tells nothing of what the host's other pages need: not judged."""
        auto = self.params.render_js == "auto" and not item.route
        rendered = await self._render(item.url, quiet_not_page=not item.route, source=auto)
        if rendered is None:
            return False
        status = rendered.status or 200
        if status >= 400:
            self._page(item, rendered.final_url, status, 0, began, "browser")
            self.rec.error(f"http_{status}", f"HTTP {status}", rendered.final_url)
            return True
        if not self._in_scope(rendered.final_url):
            return True  # redirected off-site
        if self.traps.duplicate_content(rendered.html, rendered.final_url):
            self._copy(item, rendered.final_url, status, began, "browser")
            return True
        if auto:  # only pages the crawl reads tell what the host's pages need
            await self._judge_direct(rendered)
        await self._rendered(item, rendered, status, began)
        return True

    async def _judge_direct(self, rendered: Rendered) -> None:
        """Count a direct render for its host as a static fetch and a render would have
        been, from the HTML the server sent (unknown: counted as futile, so a host whose
        sources cannot be read goes back to static fetches first)."""
        memory = self._host(rendered.final_url)
        source = rendered.source
        if source is None:
            memory.futile += 1
            return
        page = await _parse(source, rendered.final_url, None)
        self._count_shell(page, source)
        static = {urls.normalize_url(link.url) for link in page.links}
        page.release()
        memory.scored(rendered, static)

    async def _render(
        self, url: str, quiet_not_page: bool = False, source: bool = False
    ) -> Rendered | None:
        """The page rendered in the browser (robots.txt and the host's pace obeyed), or None
        with the reason recorded. A render cut by Chromium exiting is tried once more, on
        the Chromium started after it; any other failure is final for this page."""
        assert self.browser is not None
        try:
            delay = await self._gate(URL(url))
        except FetchError:
            return None  # the static fetch reports it (or already did)
        try:
            for attempt in (1, 2):
                try:
                    async with self.http.hold(url, delay):
                        return await self.browser.render(
                            url, screenshot=self.params.screenshot, source=source
                        )
                except BrowserGone:
                    if attempt == 2:
                        raise
            raise AssertionError("unreachable")
        except BrowserUnavailable as exc:
            if self.params.render_js == "always":
                raise JobFailed("browser_unavailable", str(exc)) from exc
            if self.render_off is None:  # one warning, though several renders were refused
                self.render_off = str(exc)
                self.rec.warning(f"pages that need JavaScript were read as static HTML: {exc}")
            return None
        except NotAPage:
            if not quiet_not_page:
                self.rec.error("render_failed", f"{url}: a download, not a page", url)
            return None
        except RenderError as exc:
            self._host(url).futile += 1
            self.rec.error("render_failed", str(exc), url)
            return None

    async def _rendered(self, item: Item, rendered: Rendered, status: int, began: float) -> None:
        """Record a rendered page (and its screenshot); follow the links of its DOM."""
        final = rendered.final_url
        key = urls.route_key(final)
        if self._in_scope(final) and key not in self.seen:
            self.seen.add(key)  # a client-side route it moved to
            self.rec.seen(key)
        page = await _parse(rendered.html, final, RENDERED_CONTENT_TYPE)
        in_dom = {link.url for link in page.links}
        extra = [
            Link(url=url, text="", title="", heading="", context="", tag="a")
            for url in rendered.links
            if url not in in_dom
        ]
        shot = await self._store_screenshot(final, rendered.screenshot)
        elapsed, links = _ms(began), len(page.links) + len(extra) + len(rendered.routes)
        if self.sink is not None:
            await self._sink_rendered(page, rendered, item.depth)
            extra = []  # the sink chooses what is followed
        else:
            self._follow_routes(rendered.routes, item.depth, page)
        await self._follow(page, item.depth, extra)
        # Recorded with what it found, and done in the same flush (see _process_page).
        self.rec.page(final, status, item.depth, links, elapsed, "browser", shot)
        self.rec.done(item.norm)

    async def _sink_rendered(self, page: Page, rendered: Rendered, depth: int) -> None:
        """Hand a rendered page to the sink with its client-side routes among its links (each
        a Link keeping its route, with its text), so its chooser may choose them too; queue
        the routes chosen, and leave the other links chosen in `page.links` to follow."""
        assert self.sink is not None
        # page.links never hold a fragment (join_link drops it): a route is no copy of them.
        page.links = page.links + [
            Link(url=url, text=text, title="", heading="", context="", tag="a")
            for url, text in rendered.routes
        ]
        routes: list[tuple[str, str]] = []
        chosen: list[Link] = []
        for link in await self.sink.page(page, rendered.html, depth):
            if urls.route_fragment(link.url) is None:
                chosen.append(link)
            else:
                routes.append((link.url, link.text))
        self._follow_routes(routes, depth, page)
        page.links = chosen

    async def _store_screenshot(self, url: str, png: bytes | None) -> Screenshot | None:
        if png is None:
            return None
        shot_id = new_id("shot")
        file_name = f"screenshots/{shot_id}.png"
        path = self.dir / file_name
        await asyncio.to_thread(_write, path, png)
        return Screenshot(
            job_id=self.job.job_id,
            screenshot_id=shot_id,
            url=url,
            size_bytes=len(png),
            file_name=file_name,
            taken_at=utcnow(),
        )

    # -- robots.txt and sitemaps ------------------------------------------

    def _known_refusal(self, url: str) -> FetchError | None:
        """What robots.txt says, when it is already known; otherwise the fetch asks."""
        if not self.respect_robots:
            return None
        rules = self.robots.cached(origin_of(url))
        return None if rules is None else self._refusal(rules, url)

    async def _gate(self, url: URL) -> float:
        """Asked by the downloader before every request and redirect hop."""
        if not self.respect_robots:
            return self.delay_s
        text = str(url)
        origin = origin_of(text)
        rules = self.robots.cached(origin) or await self.robots.get(origin)
        refusal = self._refusal(rules, text)
        if refusal is not None:
            raise refusal
        return max(self.delay_s, rules.crawl_delay)

    def _refusal(self, rules: Robots, url: str) -> FetchError | None:
        if rules.allows(url):
            return None
        if rules.problem:
            return FetchError(
                "robots_unavailable",
                f"robots.txt of {rules.origin} could not be fetched ({rules.problem}); "
                "nothing there is crawled",
            )
        return FetchError("robots_disallowed", f"disallowed by robots.txt for {rules.agent}")

    def _disallowed_page(self, item: Item, refusal: FetchError) -> None:
        """Counted for the final warning; the first few are listed as errors, the rest would
        flood. Each is a `page` event saying it was skipped, up to max_pages of them (as
        many as pages fetched can be)."""
        self.disallowed += 1
        if self.disallowed <= LISTED_ROBOTS_ERRORS:
            self.rec.error(refusal.kind, refusal.message, item.url)
        if self.disallowed <= self.params.max_pages:
            self.rec.skipped_page(item.url, item.depth, "disallowed")

    async def _seed_from_sitemaps(self) -> None:
        try:
            robots = await self.robots.get(self.start_origin)
            walk = sitemaps.SitemapWalk(
                self.http, self._gate, self.deadline, self._in_scope, self._bad_sitemap
            )
            async for source, listed in walk.entries(
                robots.sitemaps, f"{self.start_origin}/sitemap.xml"
            ):
                self._admit_listed(source, listed)
            if walk.truncated:
                self.rec.warning(
                    f"sitemaps were read in part: at most {sitemaps.MAX_FILES} files and "
                    f"{sitemaps.MAX_URLS} URLs are used per job"
                )
            self.seeded = True
        finally:
            self.seeding = False
            self.active -= 1
            self.wakeup.set()

    def _bad_sitemap(self, url: str, problem: str) -> None:
        self.rec.error("sitemap_unreadable", f"sitemap {url}: {problem}", url)

    def _admit_listed(self, source: str, listed: list[str]) -> None:
        """Sitemap URLs join the frontier at depth 1, ranked by their URL alone."""
        params = self.params
        for url in listed:
            key = urls.normalize_url(url)
            if key in self.seen or key in self.listed or not self._in_scope(url):
                continue
            if not urls.path_allowed(url, params.include_paths, params.exclude_paths):
                continue
            self.listed.add(key)
            link = Link(url=url, text="", title="", heading="", context="", tag="sitemap")
            item = Item(
                url=url, depth=1, link=link, source_page=source, page_title="", key=key, norm=key
            )
            kind = doctypes.type_from_url(url)
            if kind is not None:
                if kind in self.types and self._document_admitted(item, key, kind):
                    self.deferred[key] = (item, kind)
                    self.rec.deferred(key, item, kind)
                else:
                    self.seen.add(key)
                    self.rec.seen(key)
                continue
            if (
                params.max_depth < 1
                or not doctypes.looks_like_page(url)
                or not self._page_admitted(item, key, False)
            ):
                self.seen.add(key)
                self.rec.seen(key)
                continue
            self._push(-link_priority(self.query, url, ""), item)

    # -- candidates -------------------------------------------------------

    async def _judge(self, items: Sequence[Item], kinds: Sequence[str]) -> None:
        cands = [self._candidate(item, kind) for item, kind in zip(items, kinds, strict=True)]
        scored = {s.id: s for s in await self.scorer.score(self.query, cands)}
        for item, cand in zip(items, cands, strict=True):
            self._scored(item, cand, scored.get(cand.id))
            if self._worth_fetching(item):
                self._push(PROBE_PRIORITY if item.probe else DOWNLOAD_PRIORITY - item.score, item)

    def _scored(self, item: Item, cand: Candidate, result: Scored | None) -> None:
        item.candidate = cand
        item.score = result.score if result else 0.0
        item.name = _shown(result.name if result else cand.filename)

    def _may_probe(self, cand: Candidate) -> bool:
        """A link that says nothing ("PDF" by "DOC-117.pdf") is fetched to read its text."""
        if cand.doc_type not in TEXT_TYPES or self.probes >= MAX_PROBES:
            return False
        if not is_ambiguous(cand):
            return False
        self.probes += 1
        return True

    def _worth_fetching(self, item: Item) -> bool:
        """At or above the threshold, or worth a probe; else recorded as below it."""
        assert item.candidate is not None
        if item.score >= self.params.confidence_threshold:
            return True
        if self._may_probe(item.candidate):
            item.probe = True
            return True
        self._decided(item, "below_threshold")
        return False

    def _candidate(self, item: Item, kind: str, filename: str | None = None) -> Candidate:
        link = item.link
        return Candidate(
            id=next(self.candidate_ids),
            url=item.url,
            text=link.text,
            title=link.title,
            heading=link.heading,
            context=link.context,
            page_title=item.page_title,
            filename=filename or urls.file_name_from_url(item.url),
            doc_type=kind,
        )

    async def _found_in_response(
        self, item: Item, resp: aiohttp.ClientResponse, final: str, kind: str, head: bytes
    ) -> None:
        """A link crawled as a page turned out to be a document: judge it, then keep reading."""
        self.pages_started -= 1  # it was not a page after all
        if kind not in self.types:
            return
        _, filename = doctypes.type_from_headers(None, header(resp, "Content-Disposition"))
        cand = self._candidate(item, kind, filename)
        scored = await self.scorer.score(self.query, [cand])
        self._scored(item, cand, scored[0] if scored else None)
        if self._worth_fetching(item):
            await self._store(item, resp, head)

    # -- downloads --------------------------------------------------------

    async def _download(self, item: Item) -> None:
        cand = item.candidate
        assert cand is not None
        if not self._room_for(0, starting=True):
            self._not_downloaded(item)
            return
        try:
            async with self.http.get(
                item.url, gate=self._gate, deadline=self.deadline, stream=True
            ) as resp:
                if resp.status >= 400:
                    self._failed(item, f"http_{resp.status}", f"HTTP {resp.status}")
                    return
                head = await _sniff(resp)
                ctype = (header(resp, "Content-Type") or "").split(";")[0].strip().lower()
                if ctype in HTML_TYPES and doctypes.type_from_magic(head) is None:
                    self._failed(item, "not_a_document", f"{item.url} answered with an HTML page")
                    return
                _name_from_disposition(item, header(resp, "Content-Disposition"))
                await self._store(item, resp, head)
        except FetchError as exc:
            if exc.kind in ROBOTS_KINDS:
                self.disallowed += 1
                self._decided(item, "disallowed")
                return
            self._failed(item, exc.kind, exc.message)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._failed(item, failure_kind(exc, "download_failed"), describe(exc))

    def _failed(self, item: Item, kind: str, message: str) -> None:
        self.rec.error(kind, message, item.url, agent="scraper")
        self._decided(item, "failed")

    async def _store(self, item: Item, resp: aiohttp.ClientResponse, head: bytes) -> None:
        """Stream the body to a part file, hashing as it goes; keep it if it is new, small
        enough and (when its link said too little) its own text shows it is relevant."""
        cand = item.candidate
        assert cand is not None
        part = self.dir / f".part-{secrets.token_hex(8)}"
        try:
            received = await self._receive(item, resp, head, part)
            if received is None:
                return
            sha, size = received
            if sha in self.hashes:
                self._decided(item, "duplicate")
                return
            if is_ambiguous(cand) and cand.doc_type in TEXT_TYPES:
                await self._judge_by_text(item, part)
                if item.score < self.params.confidence_threshold:
                    self._decided(item, "below_threshold")
                    return
            self.hashes.add(sha)
            number = next(self.document_ids)
            file_name = f"{number:04d}_{doctypes.safe_filename(item.name, cand.doc_type)}"
            os.replace(part, self.dir / file_name)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._failed(item, failure_kind(exc, "download_failed"), describe(exc))
            return
        except OSError as exc:  # writing the file; the message never shows server paths
            self._not_stored(item, exc)
            return
        finally:
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        self.rec.document(
            StoredDocument(
                job_id=self.job.job_id,
                document_id=f"doc_{number}",
                name=item.name,
                url=item.url,
                source_page=item.source_page,
                document_type=cand.doc_type,
                confidence_score=item.score,
                size_bytes=size,
                sha256=sha,
                file_name=file_name,
                extracted_at=utcnow(),
            )
        )
        self.rec.done(item.norm)  # the document, its candidate row and this: one flush

    async def _receive(
        self, item: Item, resp: aiohttp.ClientResponse, head: bytes, part: Path
    ) -> tuple[str, int] | None:
        """(sha256, size) of the body written to `part`, or None when it is too large."""
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            self._too_large(item)
            return None
        if not self._room_for(resp.content_length or 0, starting=True):
            self._not_downloaded(item)
            return None
        digest = hashlib.sha256()
        size = 0
        with part.open("wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > self.max_bytes:
                    self._too_large(item)
                    return None
                self.job_bytes += len(chunk)
                if not self._room_for(0, starting=False):
                    self._not_downloaded(item)
                    return None
                digest.update(chunk)
                out.write(chunk)
                chunk = await resp.content.read(65536)
        return digest.hexdigest(), size

    async def _judge_by_text(self, item: Item, path: Path) -> None:
        """Score again with the start of the document's own text, and name it from its title."""
        cand = item.candidate
        assert cand is not None
        limits = self.text_limits
        try:
            doc = await extract_text(
                path,
                cand.doc_type,
                max_chars=limits.doc_text_max_chars,
                max_pages=limits.doc_text_max_pages,
                timeout_s=limits.doc_text_timeout_s,
            )
        except DocTextError as exc:
            self.rec.warning("the text of some documents could not be read; judged by link")
            self.rec.error("unreadable_document", str(exc), item.url, agent="scraper")
            return
        if not doc.text:
            return
        cand.doc_text = doc.text
        scored = await self.scorer.score(self.query, [cand])
        if scored:
            item.score = scored[0].score
            item.name = _shown(doc.title or doc.heading or scored[0].name)

    def _decided(self, item: Item, decision: str) -> None:
        assert item.candidate is not None
        self.rec.candidate(
            item.url, item.source_page, item.name, item.candidate.doc_type, item.score, decision
        )
        self.rec.done(item.norm)

    def _room_for(self, size: int, starting: bool) -> bool:
        """Whether `size` more bytes may be written: the job's byte quota, and the disk's free
        space (asked before each download and every FREE_CHECK_BYTES written). Once either
        runs out, the job downloads nothing more, with one warning."""
        if self.downloads_stopped:
            return False
        if self.max_job_bytes is not None and self.job_bytes + size > self.max_job_bytes:
            self._stop_downloads(
                f"downloads stopped: the job reached jobs.max_job_bytes_mb "
                f"({self.max_job_bytes // MB} MB); later documents were found, not downloaded"
            )
            return False
        if not self.min_free_bytes:
            return True
        if not starting and self.job_bytes - self.free_checked_at < FREE_CHECK_BYTES:
            return True
        self.free_checked_at = self.job_bytes
        free = _free_bytes(self.dir)
        if free is not None and free - size < self.min_free_bytes:
            self._stop_downloads(
                f"downloads stopped: less than storage.min_free_disk_mb "
                f"({self.min_free_bytes // MB} MB) free on the disk; later documents "
                "were found, not downloaded"
            )
            return False
        return True

    def _not_stored(self, item: Item, exc: OSError) -> None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            self._stop_downloads(
                "downloads stopped: the disk is full; later documents were found, not downloaded"
            )
            self._not_downloaded(item)
            return
        reason = exc.strerror or type(exc).__name__
        self._failed(item, "storage_error", f"the file could not be stored: {reason}")

    def _stop_downloads(self, message: str) -> None:
        self.downloads_stopped = True
        self.rec.warning(message)

    def _not_downloaded(self, item: Item) -> None:
        if item.probe:
            self._decided(item, "below_threshold")  # never judged relevant: not "found"
            return
        self._decided(item, "not_downloaded")

    def _too_large(self, item: Item) -> None:
        if item.probe:
            self._decided(item, "below_threshold")  # never judged relevant: not "found"
            return
        self.rec.warning(
            f"some documents were larger than max_file_size_mb "
            f"({self.params.max_file_size_mb} MB) and were not downloaded"
        )
        self.rec.error(
            "file_too_large",
            f"larger than max_file_size_mb ({self.params.max_file_size_mb} MB, decoded): "
            "found, not downloaded",
            item.url,
        )
        self._decided(item, "too_large")


def _item(link: Link, key: str, depth: int, page: Page, route: bool = False) -> Item:
    """The frontier item of a link first seen on `page` (at `depth`)."""
    return Item(
        url=link.url,
        depth=depth + 1,
        link=link,
        source_page=page.url,
        page_title=page.title,
        norm=key,
        route=route,
    )


def _with_route(final: str, asked: str) -> str:
    """The URL to render for a page fetched statically at `asked`: the URL it ended at, with
    the client-side route `asked` named (only a start page can name one), which the fetch
    dropped and a browser keeps across redirects."""
    route = urls.route_fragment(asked)
    return f"{final}#{route}" if route is not None and "#" not in final else final


def _name_from_disposition(item: Item, disposition: str | None) -> None:
    """A link that says nothing of its own (no text, title, row or heading) named the
    document from its URL; the file name the server gives is where many sites put the real
    one. The candidate itself is unchanged: it was judged, and its probe decided, as linked."""
    _, filename = doctypes.type_from_headers(None, disposition)
    cand = item.candidate
    if not filename or cand is None:
        return
    bare = msgspec.structs.replace(cand, filename="", url="", page_title="")
    if document_name(bare) == "Untitled document":
        item.name = _shown(document_name(msgspec.structs.replace(cand, filename=filename)))


def _shown(name: str) -> str:
    """A document name as shown to people: no control or format characters (a right-to-left
    override would make "minutes\u202efdp.exe" read as "minutesexe.pdf")."""
    if name.isprintable():
        return name
    kept = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in name)
    return " ".join(kept.split())


def _free_bytes(path: Path) -> int | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


async def _sniff(resp: aiohttp.ClientResponse) -> bytes:
    """Up to SNIFF_BYTES of the body, for magic-byte checks; the rest stays unread."""
    buf = b""
    while len(buf) < SNIFF_BYTES:
        chunk = await resp.content.read(SNIFF_BYTES - len(buf))
        if not chunk:
            break
        buf += chunk
    return buf


async def _parse(body: bytes, url: str, ctype: str | None) -> Page:
    if len(body) <= INLINE_PARSE_BYTES:
        return parse_page(body, url, ctype)
    return await asyncio.to_thread(parse_page, body, url, ctype)


def _discard_unrecorded(folder: Path, recorded: set[str]) -> None:
    """Remove part files, documents and screenshots written but never recorded (the daemon
    stopped between); `recorded` holds file names relative to `folder`."""
    for sub in ("", "screenshots"):
        where = folder / sub if sub else folder
        if not where.is_dir():
            continue
        for path in where.iterdir():
            name = f"{sub}/{path.name}" if sub else path.name
            if path.is_file() and name not in recorded:
                path.unlink(missing_ok=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)
