"""A job's live state and everything it does, buffered and written to the store in batches.

Every change is also an event with the job's next sequence number. A flush writes pages,
candidates, documents, errors, warnings, events and the job's row in one transaction, then
publishes the events: stored before sent. Flushes run every `FLUSH_INTERVAL_S` and at once
for documents and state changes.

The crawl's checkpoint rides in the same transactions: the URLs it has seen, queued and done
(`seen`, `deferred`, `queued`, `done`) and its own counters (`crawl_state`), so what the
store holds is always one consistent moment of the crawl. `commit` waits for the flush that
holds everything recorded so far (callers waiting together share it).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from skopd.events import (
    DocumentEvent,
    EventBus,
    PageEvent,
    SkippedPageEvent,
    WarningEvent,
    make_event,
)
from skopd.models import (
    Job,
    JobErrorInfo,
    Screenshot,
    StatusResponse,
    StoredDocument,
    new_id,
    status_view,
    utcnow,
)
from skopd.store import (
    DEFERRED,
    DONE,
    QUEUED,
    SEEN,
    CandidateRow,
    FrontierRow,
    PageRow,
    ProgressBatch,
    Store,
)

log = logging.getLogger("skopd.job")

FLUSH_INTERVAL_S = 0.1
# A status at least this often while anything changes. It is due on the first flush after
# this (up to FLUSH_INTERVAL_S later), and the fan-out may hold it up to
# events.FANOUT_MAX_INTERVAL_S: 0.4 + 0.1 + 0.5 keeps a client's gap between statuses <= 1 s.
STATUS_INTERVAL_S = 0.4
MAX_ERRORS_STORED = 200
MAX_WARNINGS = 100
MAX_LOGGED_MESSAGE = 500  # characters of an error's message in its log line

# The job row's columns a flush keeps up to date.
_LIVE_FIELDS = (
    "status",
    "message",
    "started_at",
    "completed_at",
    "estimated_completion",
    "progress",
    "current_agent",
    "agents_completed",
    "total_pages_crawled",
    "total_documents_found",
    "total_documents_downloaded",
    "relevance_backend",
    "model",
    "llm_calls",
    "input_tokens",
    "output_tokens",
    "pages_rendered",
)


class Recorder:
    """The only writer of a job's state while it exists in this process."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        job: Job,
        next_seq: int,
        errors: list[JobErrorInfo] | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        self.store = store
        self.bus = bus
        self.job = job
        self.errors: list[JobErrorInfo] = errors or []
        self.warnings: list[str] = warnings or []
        self.errors_total = len(self.errors)
        self._seq = next_seq
        self._batch = ProgressBatch()
        self._dirty = False
        self._status_due = False
        self._status_at = -STATUS_INTERVAL_S
        self.clock: Callable[[], float] = time.monotonic  # replaceable in tests
        # Error messages are shown to API clients: the scheduler sets what takes server
        # paths out of them, whoever wrote the message.
        self.redact: Callable[[str], str] = str
        self._done_sent = False
        self._lock = asyncio.Lock()
        # The crawl's checkpoint: frontier entries by key (the latest state of each wins, as
        # in the store), encoded when written; and the engine's counters, asked for at flush.
        self._frontier: dict[str, tuple[int, float | None, int | None, str | None, Any]] = {}
        self.crawl_state: Callable[[], bytes] | None = None
        self._opened = 0  # batches begun (the current one is number _opened + 1)
        self._written = 0  # batches in the store

    @classmethod
    async def load(cls, store: Store, bus: EventBus, job: Job) -> Recorder:
        """A recorder for a job that already has a history in the store."""
        return cls(
            store,
            bus,
            job,
            await store.last_event_seq(job.job_id) + 1,
            await store.errors(job.job_id),
            await store.warnings(job.job_id),
        )

    # -- what happened ----------------------------------------------------

    def _event(self, name: str, value: object) -> None:
        self._batch.events.append(make_event(self._seq, name, value))
        self._seq += 1
        self._dirty = True

    def page(
        self,
        url: str,
        status: int | None,
        depth: int,
        links: int,
        elapsed_ms: int,
        engine: str = "http",
        screenshot: Screenshot | None = None,
    ) -> None:
        self.job.total_pages_crawled += 1
        if engine == "browser":
            self.job.pages_rendered += 1
        now = utcnow()
        self._batch.pages.append(
            PageRow(self.job.job_id, url, status, depth, links, elapsed_ms, _ts(now), engine)
        )
        shot_url = None
        if screenshot is not None:
            self._batch.screenshots.append(screenshot)
            shot_url = screenshot.out().download_url
        self._event("page", PageEvent(url, status, depth, links, elapsed_ms, now, engine, shot_url))

    def skipped_page(self, url: str, depth: int, why: str) -> None:
        """A page the crawl did not fetch (`why`: "disallowed"): an event only, not a page."""
        self._event("page", SkippedPageEvent(url, None, depth, 0, 0, utcnow(), skipped=why))

    def candidate(
        self,
        url: str,
        source_page: str,
        name: str,
        doc_type: str,
        score: float,
        decision: str,
    ) -> None:
        """A candidate that was not downloaded (downloads go through `document`)."""
        if decision in ("too_large", "not_downloaded"):
            self.job.total_documents_found += 1
        now = utcnow()
        self._batch.candidates.append(
            CandidateRow(
                self.job.job_id, url, source_page, name, doc_type, score, decision, None,
                _ts(now),
            )
        )  # fmt: skip
        self._event(
            "document",
            DocumentEvent(
                decision, None, name, url, source_page, doc_type, round(score, 4), None, now,
                None, None,
            ),
        )  # fmt: skip

    def document(self, doc: StoredDocument) -> None:
        self.job.total_documents_found += 1
        self.job.total_documents_downloaded += 1
        self._batch.documents.append(doc)
        self._batch.candidates.append(
            CandidateRow(
                self.job.job_id, doc.url, doc.source_page, doc.name, doc.document_type,
                doc.confidence_score, "downloaded", doc.document_id, _ts(doc.extracted_at),
            )
        )  # fmt: skip
        out = doc.out()
        self._event(
            "document",
            DocumentEvent(
                "downloaded", out.document_id, out.name, out.url, out.source_page,
                out.document_type, out.confidence_score, out.file_size_mb, out.extracted_at,
                out.sha256, out.download_url,
            ),
        )  # fmt: skip

    def error(
        self,
        error_type: str,
        message: str,
        page_url: str | None,
        agent: str | None = None,
        recoverable: bool = True,
    ) -> None:
        self.errors_total += 1
        message = self.redact(message)
        # Every error is one log line, also those past the stored ones: a short message
        # (a server's text could hold newlines), never a traceback.
        log.warning(
            "job %s error %s: %s",
            self.job.job_id,
            error_type,
            " ".join(message.split())[:MAX_LOGGED_MESSAGE],
            extra={"job_id": self.job.job_id, "code": error_type, "url": page_url},
        )
        if self.errors_total > MAX_ERRORS_STORED:
            self.warning(f"more than {MAX_ERRORS_STORED} errors; later ones are not listed")
            return
        err = JobErrorInfo(
            error_id=new_id("err"),
            agent_name=agent or self.job.current_agent or "navigator",
            error_type=error_type,
            error_message=message,
            page_url=page_url,
            timestamp=utcnow(),
            is_recoverable=recoverable,
        )
        self.errors.append(err)
        self._batch.errors.append(err)
        self._event("error", err)

    def warning(self, message: str) -> None:
        """Each distinct warning once per job."""
        if message in self.warnings or len(self.warnings) >= MAX_WARNINGS:
            return
        self.warnings.append(message)
        self._batch.warnings.append((message, utcnow()))
        self._event("warning", WarningEvent(message))

    # -- the crawl's checkpoint ---------------------------------------------

    def _mark(
        self,
        key: str,
        state: int,
        priority: float | None = None,
        ord: int | None = None,
        kind: str | None = None,
        item: Any = None,
    ) -> None:
        known = self._frontier.get(key)
        if known is None or state > known[0]:
            self._frontier[key] = (state, priority, ord, kind, item)
            self._dirty = True

    def seen(self, key: str) -> None:
        """A URL the crawl looked at and will not fetch (a trap, out of bounds, ...)."""
        self._mark(key, SEEN)

    def deferred(self, key: str, item: msgspec.Struct, kind: str) -> None:
        """A document a sitemap lists, waiting to be judged."""
        self._mark(key, DEFERRED, kind=kind, item=item)

    def queued(self, key: str, priority: float, ord: int, item: msgspec.Struct) -> None:
        """Work in the frontier; `item` is encoded at the flush, as it is then."""
        self._mark(key, QUEUED, priority, ord, item=item)

    def done(self, key: str) -> None:
        """Work finished: call it with the records of what it found, with no await between."""
        self._mark(key, DONE)

    async def commit(self) -> None:
        """Return once everything recorded so far is in the store.

        Callers waiting together share one transaction: whoever gets the lock first writes
        the batch the others' records are in too.
        """
        if not self._dirty and self._written >= self._opened:
            return  # nothing recorded since the last flush, which is in the store
        batch = self._opened + 1  # the batch being filled now
        async with self._lock:
            if self._written < batch:
                await self._flush_locked()

    # -- state ------------------------------------------------------------

    def update(self, **fields: Any) -> None:
        """A state change: written, and announced with a status event, at the next flush."""
        for name, value in fields.items():
            setattr(self.job, name, value)
        self._status_due = True
        self._dirty = True

    def enter(self, agent: str) -> None:
        if agent == self.job.current_agent:
            return
        done = list(self.job.agents_completed)
        if self.job.current_agent and self.job.current_agent not in done:
            done.append(self.job.current_agent)
        self.update(current_agent=agent, agents_completed=done)
        log.info(
            "job %s agent=%s",
            self.job.job_id,
            agent,
            extra={"job_id": self.job.job_id, "agent": agent},
        )

    def usage(self, llm_calls: int, input_tokens: int, output_tokens: int) -> None:
        """The model's cost so far (shown in status and results; no status event of its own)."""
        job = self.job
        if (job.llm_calls, job.input_tokens, job.output_tokens) != (
            llm_calls,
            input_tokens,
            output_tokens,
        ):
            job.llm_calls, job.input_tokens, job.output_tokens = (
                llm_calls,
                input_tokens,
                output_tokens,
            )
            self._dirty = True

    def finish_agents(self) -> None:
        done = list(self.job.agents_completed)
        if self.job.current_agent and self.job.current_agent not in done:
            done.append(self.job.current_agent)
        self.update(current_agent=None, agents_completed=done)

    def estimate(self, fraction: float) -> None:
        """Progress 0-100 from the fraction of the work done, and the ETA it implies."""
        fraction = min(max(fraction, 0.0), 1.0)
        job = self.job
        job.progress = max(job.progress or 0.0, round(100 * fraction, 1))
        if job.started_at is not None and fraction >= 0.02:
            elapsed = (utcnow() - job.started_at).total_seconds()
            eta = job.started_at + timedelta(seconds=elapsed / fraction)
            limit = job.started_at + timedelta(seconds=job.parameters.timeout)
            job.estimated_completion = min(eta, limit)
        self._dirty = True

    def status(self) -> StatusResponse:
        return StatusResponse(**status_view(self.job, list(self.errors), list(self.warnings)))

    # -- writing ----------------------------------------------------------

    async def flush(self) -> None:
        """Write what was recorded since the last flush, then publish its events."""
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        if not self._dirty:
            return
        batch, committed = self._take()
        await self.store.record_progress(self.job.job_id, batch, committed)

    async def insert(self, also: Callable[[sqlite3.Connection], None] | None = None) -> int:
        """Store a new job's row with everything recorded so far (and what `also` writes),
        in one transaction (and one hop to the writer's thread); returns the job's seq."""
        async with self._lock:
            batch, committed = self._take()
            return await self.store.insert_job(self.job, batch, committed, also)

    def _take(self) -> tuple[ProgressBatch, Callable[[], None]]:
        """The batch to write now, and what to do once it is in the store."""
        now = self.clock()
        ended = not self.job.status.is_active
        if self._status_due or ended or now - self._status_at >= STATUS_INTERVAL_S:
            self._event("status", self.status())
            self._status_at = now
            self._status_due = False
        if ended and not self._done_sent:
            self._event("done", self.status())
            self._done_sent = True
        batch, self._batch = self._batch, ProgressBatch()
        self._dirty = False
        self._opened += 1
        number = self._opened
        batch.job_fields = {name: getattr(self.job, name) for name in _LIVE_FIELDS}
        if self._frontier:
            encode = _ENCODER.encode
            batch.frontier = [
                FrontierRow(key, s, p, o, k, None if i is None or s == DONE else encode(i))
                for key, (s, p, o, k, i) in self._frontier.items()
            ]
            self._frontier = {}
        if self.crawl_state is not None:
            batch.crawl_state = self.crawl_state()

        # Committed events are published at once, in commit order, by the store's callback:
        # also when the flush is cancelled half way (the periodic flusher stops when the job
        # ends), which returns only once the transaction has ended, lock held.
        def committed() -> None:
            self._written = number
            self.bus.publish(self.job.job_id, self.job.owner, batch.events)

        return batch, committed

    async def flush_every(self, interval: float = FLUSH_INTERVAL_S) -> None:
        """Flush at a fixed rate: the time a flush takes is not added to the period."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due = max(due + interval, loop.time())
            await asyncio.sleep(due - loop.time())
            await self.flush()


_ENCODER = msgspec.msgpack.Encoder()


def _ts(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
