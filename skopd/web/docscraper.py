"""The documentation-scraper-style face: a session (a UUID the client picks) groups scrape
jobs. POST /api/v1/scrape/{session_id}/scrape starts one, GET .../scrape[?jobId=] reports
it, GET .../pages?url= returns a saved page's chunks. Errors are
`{"error": {"code", "message"}}`; fields that do not apply are left out, as that service
does."""

from __future__ import annotations

import re
from datetime import datetime

import msgspec
from aiohttp import web

from skopd.errors import BadRequest, NotFound
from skopd.kinds.specs import cache_key, job_for
from skopd.models import (
    ChunkOut,
    DocsSpec,
    JobKind,
    JobStatus,
    decode_body,
    utcnow,
    website_problem,
)
from skopd.web.faces import (
    UUID,
    ErrorDetail,
    FaceJob,
    check_addresses,
    error_detail,
    face_job,
    failure,
    json_body,
    json_response,
)
from skopd.web.middleware import OWNER
from skopd.web.state import SCHEDULER, STORE

routes = web.RouteTableDef()
ERRORS = re.compile(r"^/api/v1/scrape/[^/]+/")
MAX_STARTERS = 20
MAX_ITERATIONS = 1000
STATUS = {
    JobStatus.PENDING: "queued",
    JobStatus.IN_PROGRESS: "running",
    JobStatus.COMPLETED: "finished",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
}
STAGE = {"queued": "queue", "running": "running", "finished": "finished", "failed": "failed"}


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


def error_body(status: int, message: str, path: str) -> bytes:
    return json_body(ErrorBody(error_detail(status, message)))


class ScrapeIn(msgspec.Struct, rename="camel"):
    starter_links: list[str]
    application_name: str = ""  # optional: the starter links and the prompt steer without it
    application_version: str = "current"
    skip_cache: bool = False
    max_iterations: int = 50
    prompt: str | None = None


def _session_id(request: web.Request) -> str:
    session_id = request.match_info["session_id"].lower()
    if not UUID.match(session_id):
        raise BadRequest("session_id: must be a UUID")
    return session_id


def parse(body: bytes, session_id: str) -> tuple[DocsSpec, bool]:
    req = decode_body(body, ScrapeIn, "a JSON object with `starterLinks`")
    if not 1 <= len(req.starter_links) <= MAX_STARTERS:
        raise BadRequest(f"starterLinks: must list between 1 and {MAX_STARTERS} URLs")
    for i, url in enumerate(req.starter_links):
        problem = website_problem(url)
        if problem:
            raise BadRequest(f"starterLinks[{i}]: {problem}")
    name = req.application_name.strip()
    if len(name) > 200:
        raise BadRequest("applicationName: must be at most 200 characters")
    if not 1 <= req.max_iterations <= MAX_ITERATIONS:
        raise BadRequest(f"maxIterations: must be between 1 and {MAX_ITERATIONS}")
    if req.prompt is not None and len(req.prompt) > 500:
        raise BadRequest("prompt: must be at most 500 characters")
    spec = DocsSpec(
        session_id=session_id,
        starter_links=list(dict.fromkeys(req.starter_links)),
        application_name=name,
        application_version=req.application_version.strip() or "current",
        max_iterations=req.max_iterations,
        prompt=(req.prompt or "").strip() or None,
    )
    return spec, req.skip_cache


class Created(msgspec.Struct):
    jobId: str


@routes.post("/api/v1/scrape/{session_id}/scrape")
async def submit(request: web.Request) -> web.Response:
    session_id = _session_id(request)
    spec, skip_cache = parse(await request.read(), session_id)
    check_addresses(request, [(f"starterLinks[{i}]", u) for i, u in enumerate(spec.starter_links)])
    owner = request[OWNER]
    store = request.app[STORE]
    await store.create_session(session_id, owner, utcnow())
    if await store.session_owner(session_id) != owner:
        raise NotFound(f"Session {session_id} not found")
    scheduler = request.app[SCHEDULER]
    job = job_for(owner, spec, cache_key(owner, spec))
    cached = None if skip_cache else await scheduler.cached(job)
    if cached is None:
        await scheduler.enqueue(job)
    return json_response(Created(job.job_id))


class Progress(msgspec.Struct, omit_defaults=True):
    stage: str
    message: str
    completedIterations: int | None = None
    totalIterations: int | None = None


class SavedPage(msgspec.Struct):
    title: str
    chunks: int
    scrapedAt: datetime


class Result(msgspec.Struct):
    finishReason: str
    savedPagesCount: int
    pageChunksCount: int
    savedPages: dict[str, SavedPage]


class JobView(msgspec.Struct, omit_defaults=True):
    jobId: str
    status: str
    createdAt: datetime | None = None
    startedAt: datetime | None = None
    updatedAt: datetime | None = None
    progress: Progress | None = None
    result: Result | None = None
    errors: list[str] | None = None


async def _session(request: web.Request) -> str:
    session_id = _session_id(request)
    if await request.app[STORE].session_owner(session_id) != request[OWNER]:
        raise NotFound(f"Session {session_id} not found")
    return session_id


async def _latest(request: web.Request, session_id: str) -> str:
    """The id of the session's latest scrape job; one 404 whether the session is unknown,
    another key's, or has no job yet."""
    store = request.app[STORE]
    jobs = []
    if await store.session_owner(session_id) == request[OWNER]:
        jobs = await store.session_jobs(session_id)
    if not jobs:
        raise NotFound(f"No scrape job found for session {session_id}")
    return jobs[0].job_id


@routes.get("/api/v1/scrape/{session_id}/scrape")
async def status(request: web.Request) -> web.Response:
    """With `jobId`: that job, or `status: "not_found"` when the caller has no such job in
    this session (the session unknown or another key's included: "Job ID does not exist").
    Without: the session's latest job, or a 404 when there is none to name."""
    session_id = _session_id(request)
    job_id = request.query.get("jobId")
    if job_id is None:
        job_id = await _latest(request, session_id)
    elif not UUID.match(job_id.lower()):
        raise BadRequest("jobId: must be a UUID")
    job_id = job_id.lower()
    face = await face_job(request, job_id, JobKind.DOCS)
    if face is None or face.job.session_id != session_id:
        return json_response(JobView(jobId=job_id, status="not_found"))
    return json_response(await view(request, face))


async def view(request: web.Request, face: FaceJob) -> JobView:
    job = face.job
    spec = job.spec
    assert isinstance(spec, DocsSpec)
    state = STATUS[job.status]
    pages = [p for p in await request.app[STORE].page_summaries(job.job_id) if p.success]
    updated = max(
        [t for t in (job.created_at, job.started_at, job.completed_at) if t is not None]
        + [p.scraped_at for p in pages]
    )
    progress = Progress(stage=STAGE[state], message=_message(face, state))
    if state != "failed" or pages:
        progress.completedIterations = len(pages)
        progress.totalIterations = spec.max_iterations
    out = JobView(
        jobId=job.job_id,
        status=state,
        createdAt=job.created_at,
        startedAt=job.started_at,
        updatedAt=updated,
        progress=progress,
    )
    if state == "finished" and face.output is not None:
        out.result = Result(
            finishReason=face.output.finish_reason or "completed",
            savedPagesCount=len(pages),
            pageChunksCount=sum(p.chunk_count for p in pages),
            savedPages={p.url: SavedPage(p.title, p.chunk_count, p.scraped_at) for p in pages},
        )
    if state == "failed":
        out.errors = [failure(face)]
    return out


def _message(face: FaceJob, state: str) -> str:
    if state == "queued":
        return "Waiting in the queue"
    if state == "finished":
        return "Scraping completed successfully"
    if state == "failed":
        return (
            "Scraping was cancelled"
            if face.job.status is JobStatus.CANCELLED
            else ("Failed to scrape documentation")
        )
    return face.job.message


class PageOut(msgspec.Struct):
    jobId: str
    url: str
    title: str
    scrapedAt: datetime
    chunks: list[ChunkOut]


@routes.get("/api/v1/scrape/{session_id}/pages")
async def page(request: web.Request) -> web.Response:
    """A saved page's chunks: ?url= (required) and ?jobId= (default: the latest job)."""
    session_id = await _session(request)
    url = request.query.get("url")
    if not url:
        raise BadRequest("url: is required (a URL listed in result.savedPages)")
    store = request.app[STORE]
    job_id = request.query.get("jobId") or await _latest(request, session_id)
    face = await face_job(request, job_id.lower(), JobKind.DOCS)
    if face is None or face.job.session_id != session_id:
        raise NotFound(f"Job {job_id[:80]} not found in session {session_id}")
    found = [p for p in await store.pages_of(face.job.job_id, url) if p.success]
    if not found:
        raise NotFound(f"Page {url[:200]} was not saved by job {face.job.job_id}")
    p = found[0]
    return json_response(PageOut(face.job.job_id, p.url, p.title, p.scraped_at, p.chunks))
