"""The Spidra-style face: POST /api/scrape (1-5 URLs, optional prompt), then poll
GET /api/scrape/{jobId}. Errors are `{"status": "error", "message"}`."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from skopd.crawl.urls import normalize_url
from skopd.errors import BadRequest, NotFound
from skopd.kinds.specs import job_for
from skopd.models import (
    JobKind,
    JobStatus,
    PagesSpec,
    decode_body,
    runtime_seconds,
    website_problem,
)
from skopd.web.faces import FaceJob, check_addresses, face_job, failure, json_body, json_response
from skopd.web.middleware import OWNER
from skopd.web.state import SCHEDULER, STORE

routes = web.RouteTableDef()
ERRORS = re.compile(r"^/api/scrape(/|$)")
MAX_URLS = 5
MAX_PROMPT = 10_000
# Our one state machine in Spidra's words (cancelled jobs are failed, with the reason).
STATUS = {
    JobStatus.PENDING: "waiting",
    JobStatus.IN_PROGRESS: "active",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "failed",
}


class ErrorBody(msgspec.Struct, omit_defaults=True):
    status: str
    message: str
    code: str | None = None  # Spidra names one case: too many pending jobs


def error_body(status: int, message: str, path: str) -> bytes:
    code = "TOO_MANY_PENDING_JOBS" if status == 429 else None
    return json_body(ErrorBody("error", message, code))


class UrlIn(msgspec.Struct):
    url: str
    actions: list[Any] | None = None


class ScrapeIn(msgspec.Struct):
    urls: list[UrlIn]
    prompt: str | None = None
    output: str = "markdown"
    schema: dict[str, Any] | None = None
    screenshot: bool = False


def parse(body: bytes) -> PagesSpec:
    req = decode_body(body, ScrapeIn, "a JSON object with `urls`")
    if not 1 <= len(req.urls) <= MAX_URLS:
        raise BadRequest(f"urls: must list between 1 and {MAX_URLS} URLs (got {len(req.urls)})")
    for i, item in enumerate(req.urls):
        problem = website_problem(item.url)
        if problem:
            raise BadRequest(f"urls[{i}].url: {problem}")
        if item.actions:
            raise BadRequest(f"urls[{i}].actions: browser actions are not supported by skopd")
    if req.output not in ("markdown", "json"):
        raise BadRequest('output: must be "markdown" or "json"')
    prompt = (req.prompt or "").strip() or None
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise BadRequest(f"prompt: must be at most {MAX_PROMPT} characters")
    return PagesSpec(
        urls=[u.url for u in req.urls],
        prompt=prompt,
        output=req.output,
        schema=req.schema,
        screenshot=req.screenshot,
    )


class Created(msgspec.Struct):
    status: str
    jobId: str
    message: str


@routes.post("/api/scrape")
async def submit(request: web.Request) -> web.Response:
    spec = parse(await request.read())
    check_addresses(request, [(f"urls[{i}].url", url) for i, url in enumerate(spec.urls)])
    job = await request.app[SCHEDULER].enqueue(job_for(request[OWNER], spec))
    return json_response(Created("waiting", job.job_id, "Scrape job queued"), status=202)


class Progress(msgspec.Struct):
    message: str
    progress: float


class Page(msgspec.Struct):
    url: str
    title: str
    markdownContent: str
    success: bool
    screenshotUrl: str | None


class Stats(msgspec.Struct):
    durationMs: int
    captchaSolvedCount: int
    inputTokens: int
    outputTokens: int
    totalTokens: int


class Result(msgspec.Struct):
    content: Any
    data: list[Page]
    screenshots: list[str]
    ai_extraction_failed: bool
    stats: Stats


class JobView(msgspec.Struct):
    status: str
    progress: Progress
    result: Result | None
    error: str | None


@routes.get("/api/scrape/{job_id}")
async def status(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    face = await face_job(request, job_id, JobKind.PAGES)
    if face is None:
        raise NotFound("Scrape not found")
    return json_response(await view(request, face))


async def view(request: web.Request, face: FaceJob) -> JobView:
    job = face.job
    state = job.status
    result = None
    if state is JobStatus.COMPLETED and face.output is not None:
        result = await _result(request, face)
    # The crawl reaches 100 before the model is asked: only completion shows 1.
    done = state is JobStatus.COMPLETED
    fraction = 1.0 if done else min(0.95, (job.progress or 0.0) / 100)
    message = "Scrape completed successfully" if state is JobStatus.COMPLETED else job.message
    error = failure(face) if state in (JobStatus.FAILED, JobStatus.CANCELLED) else None
    return JobView(STATUS[state], Progress(message, round(fraction, 3)), result, error)


async def _result(request: web.Request, face: FaceJob) -> Result:
    job, output = face.job, face.output
    assert output is not None
    store = request.app[STORE]
    pages = await store.pages_of(job.job_id)
    # Screenshots are served by the Skop face's route (same key), as absolute URLs here.
    origin = str(request.url.origin())
    shots = {
        normalize_url(shot.url): origin + shot.out().download_url
        for shot in await store.screenshots(job.job_id)
    }
    data = [
        Page(p.url, p.title, p.markdown, p.success, shots.get(normalize_url(p.url))) for p in pages
    ]
    return Result(
        content=output.content,
        data=data,
        screenshots=[d.screenshotUrl for d in data if d.screenshotUrl],
        ai_extraction_failed=output.ai_extraction_failed,
        stats=Stats(
            durationMs=int(runtime_seconds(job) * 1000),
            captchaSolvedCount=0,
            inputTokens=output.input_tokens,
            outputTokens=output.output_tokens,
            totalTokens=output.input_tokens + output.output_tokens,
        ),
    )
