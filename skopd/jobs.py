"""The scheduler: owns every job task, runs at most `max_concurrent_jobs`, queues the rest
FIFO, cancels, deletes, and resumes after a restart the jobs that were running. Job state
changes only here.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import shutil
from datetime import timedelta
from pathlib import Path

import msgspec
from yarl import URL

from skopd.config import Config
from skopd.crawl.browser import BrowserPool
from skopd.crawl.engine import JobFailed
from skopd.crawl.fetch import Downloader
from skopd.crawl.recorder import Recorder
from skopd.errors import BadRequest, Conflict, NotFound, TooManyRequests
from skopd.events import EventBus
from skopd.kinds.runner import KindRunner
from skopd.models import (
    Job,
    JobStatus,
    Parameters,
    ScrapeRequest,
    new_id,
    utcnow,
)
from skopd.relevance.backend import Relevance
from skopd.store import Store

log = logging.getLogger("skopd.jobs")

CANCEL_WAIT_S = 5.0
# Skop's ids, and the UUIDs of documentation-scraper jobs.
JOB_ID = re.compile(
    r"^(job_[a-z0-9]{1,64}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$"
)
# When the daemon stops, running jobs take no new work and get this long to finish the
# requests in flight before they are cancelled; they resume at the next start.
STOP_GRACE_S = 2.0


class Scheduler:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        bus: EventBus,
        downloader: Downloader,
        relevance: Relevance,
        browser: BrowserPool,
    ) -> None:
        self.cfg = cfg
        self.browser = browser
        self.store = store
        self.bus = bus
        self.downloader = downloader
        self.relevance = relevance
        self.documents_dir = cfg.documents_path
        self._queue: collections.deque[str] = collections.deque()
        self._queue_owner: dict[str, str] = {}  # pending job -> its owner
        self._queued_by: collections.Counter[str] = collections.Counter()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._cancelling: set[str] = set()
        # A job's last flush outlives its task when the task is cancelled twice (two cancel
        # calls, or a cancel during shutdown): whoever ends the job next must wait for it.
        self._last_flush: dict[str, asyncio.Future[None]] = {}
        self._closing = False
        self._stop_by = 0.0
        self._mean_runtime_s = 60.0
        self.kinds = KindRunner(cfg, store, downloader, relevance, self.documents_dir, browser)

    # -- life cycle -------------------------------------------------------

    async def start(self) -> None:
        """Jobs that were running when the daemon stopped resume from their checkpoint,
        first; then pending ones run, in order."""
        self.documents_dir.mkdir(parents=True, exist_ok=True)
        for job in await self.store.jobs_with_status(JobStatus.IN_PROGRESS):
            self._queue.append(job.job_id)
            log.info(
                "job %s state=in_progress resuming after a restart",
                job.job_id,
                extra=_fields(job.job_id, "in_progress"),
            )
        for job in await self.store.jobs_with_status(JobStatus.PENDING):
            self._enqueue(job.job_id, job.owner)
        self._dispatch()

    def stop_crawling(self) -> None:
        """The daemon is stopping: start no job, and let running crawls take no new work."""
        if not self._closing:
            self._closing = True
            self._stop_by = asyncio.get_running_loop().time() + STOP_GRACE_S
        self.kinds.stop()

    async def close(self) -> None:
        """Stop every job task: jobs get what is left of STOP_GRACE_S to finish the requests
        in flight, then are cancelled. Running jobs stay `in_progress` for the next start."""
        self.stop_crawling()
        tasks = list(self._running.values())
        if tasks:
            grace = self._stop_by - asyncio.get_running_loop().time()
            await asyncio.wait(tasks, timeout=max(0.0, grace))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.kinds.close()

    # -- requests ---------------------------------------------------------

    async def submit(self, owner: str, req: ScrapeRequest) -> Job:
        problem = self.address_problem(req.website)
        if problem is not None:
            raise BadRequest(f"website: {problem}")
        job = Job(
            job_id=new_id("job"),
            owner=owner,
            website=req.website,
            prompt=req.prompt.strip(),
            parameters=req.parameters,
            status=JobStatus.PENDING,
            message="Job queued",
            created_at=utcnow(),
        )
        return await self.enqueue(job)

    async def enqueue(self, job: Job) -> Job:
        """Store a new pending job (of any kind) and queue it."""
        problem = self.address_problem(job.website) if job.website else None
        if problem is not None:
            raise BadRequest(f"url: {problem}")
        per_key = self.cfg.jobs.max_queued_per_key
        if self._queued_by[job.owner] >= per_key:
            raise TooManyRequests(
                f"you have {per_key} pending jobs (jobs.max_queued_per_key); "
                "retry when some have started",
                headers={"Retry-After": str(int(self._mean_runtime_s) or 30)},
            )
        if len(self._queue) >= self.cfg.jobs.max_queued_jobs:
            raise TooManyRequests(
                f"the queue is full ({self.cfg.jobs.max_queued_jobs} pending jobs); retry later",
                headers={"Retry-After": str(int(self._mean_runtime_s) or 30)},
            )
        job.estimated_completion = job.created_at + self._expected_wait(job.parameters)
        rec = Recorder(self.store, self.bus, job, next_seq=1)
        rec.update()
        job.seq = await rec.insert()  # the job and its first status event: one transaction
        self._enqueue(job.job_id, job.owner)
        log.info(
            "job %s state=pending website=%s",
            job.job_id,
            job.website,
            extra=_fields(job.job_id, "pending"),
        )
        self._dispatch()
        return job

    def address_problem(self, url: str) -> str | None:
        """Why the crawler may not go to `url`'s host (an address the policy refuses, in any
        spelling), known without resolving it; None when it may try."""
        try:
            return self.downloader.policy.host_problem(URL(url).raw_host or "")
        except ValueError as exc:
            return f"not a valid URL ({exc})"

    async def cached(self, job: Job) -> Job | None:
        """When an identical job (same `cache_key`) completed within `jobs.cache_window_s`,
        `job` is stored as completed at once with that job's answer, and returned; no crawl."""
        window = self.cfg.jobs.cache_window_s
        if job.cache_key is None or window <= 0:
            return None
        source = await self.store.cached_job(job.cache_key, utcnow() - timedelta(seconds=window))
        output = None if source is None else await self.store.output(source.job_id)
        if source is None or output is None:
            return None
        # A hit is no cache source (store.cached_job): only a crawl starts the window.
        job.cache_key = None
        job.started_at = utcnow()
        job.relevance_backend = source.relevance_backend
        job.model = source.model
        message = f"{source.message} (the stored answer of {source.job_id})"
        for name, value in _ended(JobStatus.COMPLETED, message).items():
            setattr(job, name, value)
        answer = msgspec.structs.replace(
            output,
            cache_hit=True,
            cached_from=source.job_id,
            llm_calls=0,
            input_tokens=0,
            output_tokens=0,
        )
        # The row, its status and done events, the copied pages and the answer: one
        # transaction, so a restart finds no job or a completed one (never a pending one).
        rec = Recorder(self.store, self.bus, job, next_seq=1)
        job.seq = await rec.insert(self.store.stored_answer(source.job_id, job.job_id, answer))
        log.info(
            "job %s state=completed cache_hit_of=%s",
            job.job_id,
            source.job_id,
            extra=_fields(job.job_id, "completed"),
        )
        return job

    def _expected_wait(self, params: Parameters) -> timedelta:
        ahead = len(self._queue) + len(self._running)
        rounds = ahead // self.cfg.jobs.max_concurrent_jobs + 1
        return timedelta(seconds=min(self._mean_runtime_s, params.timeout) * rounds)

    async def owned(self, owner: str, job_id: str) -> Job:
        """The job, if it exists and belongs to `owner`; a 404 either way otherwise."""
        job = await self.store.get_job(job_id) if JOB_ID.match(job_id) else None
        if job is None or job.owner != owner:
            raise NotFound(f"job {job_id[:80]} not found")
        return job

    async def cancel(self, owner: str, job_id: str) -> tuple[Job, JobStatus]:
        job = await self.owned(owner, job_id)
        previous = job.status
        if not previous.is_active:
            raise Conflict(f"job {job_id} has already ended ({previous.value})")
        task = self._running.get(job_id)
        if task is not None:
            self._cancelling.add(job_id)
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_WAIT_S)
        last_flush = self._last_flush.get(job_id)
        if last_flush is not None:
            await asyncio.wait([last_flush], timeout=CANCEL_WAIT_S)
        if job_id in self._queue:
            self._queue.remove(job_id)
            self._dequeued(job_id)
        job = await self.owned(owner, job_id)
        stopped = task is None or task.done()
        if job.status.is_active and stopped and job_id not in self._last_flush:
            # Never started, or stopped before its task could record the end.
            rec = await Recorder.load(self.store, self.bus, job)
            message = (
                "Job cancelled by user" if job.started_at else "Job cancelled before it started"
            )
            rec.update(**_ended(JobStatus.CANCELLED, message))
            await rec.flush()
            log.info("job %s state=cancelled", job_id, extra=_fields(job_id, "cancelled"))
        return await self.owned(owner, job_id), previous

    async def delete(self, owner: str, job_id: str) -> None:
        job = await self.owned(owner, job_id)
        if job.status.is_active:
            raise Conflict(f"job {job_id} is {job.status.value}; cancel it before deleting it")
        await self.store.delete_job(job_id)
        await asyncio.to_thread(shutil.rmtree, self.documents_dir / job_id, True)
        log.info("job %s deleted", job_id, extra=_fields(job_id, "deleted"))

    def file_path(self, job_id: str, file_name: str) -> Path:
        return self.documents_dir / job_id / file_name

    def queued(self) -> int:
        return len(self._queue)

    def running(self) -> int:
        return len(self._running)

    # -- running ----------------------------------------------------------

    def _dispatch(self) -> None:
        while (
            not self._closing
            and self._queue
            and len(self._running) < self.cfg.jobs.max_concurrent_jobs
        ):
            job_id = self._queue.popleft()
            self._dequeued(job_id)
            task = asyncio.create_task(self._run(job_id), name=f"job-{job_id}")
            self._running[job_id] = task
            task.add_done_callback(functools.partial(self._reap, job_id))

    def _redact(self, message: str) -> str:
        """Error messages are shown to API clients: no server paths in them."""
        for path, label in (
            (self.documents_dir, "<documents_dir>"),
            (self.cfg.database_path.parent, "<database_dir>"),
        ):
            message = message.replace(str(path), label)
        return message

    def _enqueue(self, job_id: str, owner: str) -> None:
        self._queue.append(job_id)
        self._queue_owner[job_id] = owner
        self._queued_by[owner] += 1

    def _dequeued(self, job_id: str) -> None:
        owner = self._queue_owner.pop(job_id, None)
        if owner is not None:
            self._queued_by[owner] -= 1
            if self._queued_by[owner] <= 0:
                del self._queued_by[owner]

    def _reap(self, job_id: str, _task: asyncio.Task[None]) -> None:
        self._running.pop(job_id, None)
        self._cancelling.discard(job_id)
        self._dispatch()

    async def _run(self, job_id: str) -> None:
        # Read on the writer's connection, which wrote the job's row: a job missed here
        # would never run (see store._read for how the reader's could miss one).
        job = await self.store.get_job(job_id, self.store.w)
        if job is None or not job.status.is_active:
            return
        resumed = job.status is JobStatus.IN_PROGRESS
        rec = await Recorder.load(self.store, self.bus, job)
        rec.redact = self._redact
        flusher = asyncio.create_task(rec.flush_every())
        final: dict[str, object] = {}
        try:
            if resumed:
                rec.warning(
                    f"resumed after daemon restart: {job.total_pages_crawled} pages already crawled"
                )
            else:
                rec.update(
                    status=JobStatus.IN_PROGRESS,
                    started_at=utcnow(),
                    message="Crawling the website",
                )
            await rec.flush()
            log.info(
                "job %s state=in_progress%s",
                job_id,
                " resumed" if resumed else "",
                extra=_fields(job_id, "in_progress"),
            )
            if not resumed:
                rec.enter("coordinator")
            message = await self.kinds.run(job, rec, resumed)
            if message is None:
                log.info(
                    "job %s stopped with the daemon; it resumes at the next start",
                    job_id,
                    extra=_fields(job_id, "in_progress"),
                )
                return  # the job stays in_progress in the store
            final = _ended(JobStatus.COMPLETED, message)
        except JobFailed as exc:
            rec.error(exc.error_type, exc.message, job.website, recoverable=False)
            final = _ended(JobStatus.FAILED, f"Job failed: {exc.message}")
        except asyncio.CancelledError:
            if job_id in self._cancelling:
                final = _ended(JobStatus.CANCELLED, "Job cancelled by user")
            else:
                raise  # daemon shutdown: the job stays in_progress for the next start
        except Exception as exc:
            log.exception("job %s crashed", job_id, extra=_fields(job_id, "crashed"))
            rec.error("internal_error", f"{type(exc).__name__}: {exc}", None, recoverable=False)
            final = _ended(JobStatus.FAILED, "Job failed: internal error (see errors)")
        finally:
            flusher.cancel()
            if final:
                rec.update(**final)
            last_flush = asyncio.ensure_future(rec.flush())
            self._last_flush[job_id] = last_flush
            last_flush.add_done_callback(lambda _: self._last_flush.pop(job_id, None))
            # Whatever the last flush does (it may fail, or outlive this task), once it is
            # over the bus frees the job's ring and outbox (`done` alone would not come).
            last_flush.add_done_callback(lambda _: self.bus.job_ended(job_id))
            await asyncio.shield(last_flush)
        started = job.started_at or utcnow()
        runtime = (utcnow() - started).total_seconds()
        self._mean_runtime_s = 0.8 * self._mean_runtime_s + 0.2 * runtime
        log.info(
            "job %s state=%s elapsed=%.1fs pages=%d documents=%d",
            job_id,
            job.status.value,
            runtime,
            job.total_pages_crawled,
            job.total_documents_downloaded,
            extra={
                **_fields(job_id, job.status.value),
                "elapsed_s": round(runtime, 3),
                "pages": job.total_pages_crawled,
                "documents": job.total_documents_downloaded,
                # Why it failed ("Job failed: ..."), on the line that says it did.
                **({"reason": job.message} if job.status is JobStatus.FAILED else {}),
            },
        )


def _fields(job_id: str, state: str) -> dict[str, object]:
    """Structured log fields (JSON logs show them as keys)."""
    return {"job_id": job_id, "state": state}


def _ended(status: JobStatus, message: str) -> dict[str, object]:
    now = utcnow()
    fields: dict[str, object] = {
        "status": status,
        "message": message,
        "completed_at": now,
        "estimated_completion": now,
        "current_agent": None,
    }
    if status is JobStatus.COMPLETED:
        fields["progress"] = 100.0
    return fields
