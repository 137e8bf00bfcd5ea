"""Skop's API face: submit, status, results, cancel, list, delete, files, health."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from aiohttp import web

from skopd import __version__
from skopd.crawl.doctypes import MIME_TYPES
from skopd.errors import BadRequest, NotFound
from skopd.jobs import JOB_ID
from skopd.models import (
    CancelResponse,
    CreateResponse,
    Job,
    JobList,
    JobStatus,
    Metadata,
    ResultsResponse,
    StatusResponse,
    pages_by_engine,
    parse_scrape_request,
    relevance_view,
    runtime_seconds,
    status_view,
)
from skopd.store import Snapshot
from skopd.web.middleware import OWNER
from skopd.web.state import BROWSER, BUS, CONFIG, RELEVANCE, SCHEDULER, STORE

routes = web.RouteTableDef()


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=msgspec.json.encode(value), status=status, content_type="application/json"
    )


async def _job(request: web.Request) -> Job:
    return (await _snapshot(request)).job


async def _snapshot(
    request: web.Request, with_documents: bool = False, streamed: bool = False
) -> Snapshot:
    """The caller's job as of one moment; another key's job is a 404 like a missing one.
    `streamed`: answered only once the job's event streams have been handed every event of
    that moment, so a stream never shows fewer documents than this answer (see
    EventBus.caught_up)."""
    job_id = request.match_info["job_id"]
    snap = None
    if JOB_ID.match(job_id):
        snap = await request.app[STORE].snapshot(job_id, with_documents, with_seq=streamed)
    if snap is None or snap.job.owner != request[OWNER]:
        raise NotFound(f"job {job_id[:80]} not found")
    if snap.last_seq:
        await request.app[BUS].caught_up(job_id, snap.last_seq)
    return snap


def _status(snap: Snapshot) -> StatusResponse:
    return StatusResponse(**status_view(snap.job, snap.errors, snap.warnings))


@routes.post("/scrape")
@routes.post("/scrape/")
async def submit(request: web.Request) -> web.Response:
    req = parse_scrape_request(await request.read())
    if not req.parameters.respect_robots and not request.app[CONFIG].crawler.allow_ignore_robots:
        raise BadRequest(
            "parameters.respect_robots: this daemon obeys robots.txt for every job "
            "(crawler.allow_ignore_robots is false)"
        )
    job = await request.app[SCHEDULER].submit(request[OWNER], req)
    return json_response(
        CreateResponse(
            job_id=job.job_id,
            status=job.status,
            message="Job queued: crawling will start shortly",
            created_at=job.created_at,
            estimated_completion=job.estimated_completion,
        ),
        status=201,
    )


@routes.get("/scrape/status/{job_id}")
async def status(request: web.Request) -> web.Response:
    return json_response(_status(await _snapshot(request, streamed=True)))


@routes.get("/scrape/results/{job_id}")
async def results(request: web.Request) -> web.Response:
    snap = await _snapshot(request, with_documents=True, streamed=True)
    job, errors, warnings = snap.job, snap.errors, snap.warnings
    docs = [d.out() for d in snap.documents]
    found = job.total_documents_found
    downloaded = job.total_documents_downloaded
    runtime = runtime_seconds(job)
    metadata = Metadata(
        job_id=job.job_id,
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        estimated_completion=job.estimated_completion,
        original_website=job.website,
        original_prompt=job.prompt,
        parameters=job.parameters,
        current_agent=job.current_agent,
        agents_completed=job.agents_completed,
        total_pages_crawled=job.total_pages_crawled,
        total_documents_found=found,
        errors=errors,
        warnings=warnings,
        final_status=None if job.status.is_active else job.status,
        **relevance_view(job),
        pages_by_engine=pages_by_engine(job),
    )
    return json_response(
        ResultsResponse(
            job_id=job.job_id,
            status=job.status,
            message=job.message,
            documents=docs,
            metadata=metadata,
            total_documents_found=found,
            total_documents_downloaded=downloaded,
            total_pages_crawled=job.total_pages_crawled,
            success_rate=round(downloaded / found, 4) if found else 0.0,
            cost=0.0,
            total_runtime_seconds=round(runtime, 3),
            runtime_minutes=round(runtime / 60, 3),
            errors=errors,
            warnings=warnings,
            has_errors=bool(errors),
            screenshots=[s.out() for s in snap.screenshots],
        )
    )


@routes.post("/scrape/cancel/{job_id}")
async def cancel(request: web.Request) -> web.Response:
    job = await _job(request)
    _, previous = await request.app[SCHEDULER].cancel(request[OWNER], job.job_id)
    view = _status(await _snapshot(request))
    return json_response(CancelResponse(**msgspec.structs.asdict(view), previous_status=previous))


@routes.get("/scrape/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    q = request.query
    status: JobStatus | None = None
    if q.get("status"):
        try:
            status = JobStatus(q["status"])
        except ValueError:
            allowed = ", ".join(s.value for s in JobStatus)
            raise BadRequest(f"status: must be one of {allowed}") from None
    try:
        limit = int(q.get("limit", "20"))
    except ValueError:
        raise BadRequest("limit: must be an integer between 1 and 100") from None
    if not 1 <= limit <= 100:
        raise BadRequest("limit: must be an integer between 1 and 100")
    before: int | None = None
    if q.get("cursor"):
        try:
            before = int(q["cursor"], 36)
        except ValueError:
            raise BadRequest("cursor: invalid; use the next_cursor of a previous page") from None
    jobs = await request.app[STORE].list_jobs(request[OWNER], status, limit + 1, before)
    page = jobs[:limit]
    views = []
    for job in page:
        snap = await request.app[STORE].snapshot(job.job_id)
        if snap is not None:
            views.append(_status(snap))
    next_cursor = _base36(page[-1].seq) if len(jobs) > limit else None
    return json_response(JobList(jobs=views, next_cursor=next_cursor))


def _base36(n: int) -> str:
    digits = ""
    while True:
        n, r = divmod(n, 36)
        digits = "0123456789abcdefghijklmnopqrstuvwxyz"[r] + digits
        if n == 0:
            return digits


@routes.delete("/scrape/jobs/{job_id}")
async def delete_job(request: web.Request) -> web.Response:
    job = await _job(request)
    await request.app[SCHEDULER].delete(request[OWNER], job.job_id)
    return json_response({"job_id": job.job_id, "deleted": True})


@routes.get("/scrape/files/{job_id}/{document_id}")
async def file(request: web.Request) -> web.FileResponse:
    job = await _job(request)
    doc = await request.app[STORE].get_document(job.job_id, request.match_info["document_id"])
    if doc is None:
        raise NotFound(f"document {request.match_info['document_id'][:80]} not found")
    path = request.app[SCHEDULER].file_path(job.job_id, doc.file_name)
    if not path.is_file():
        raise NotFound(f"the file of document {doc.document_id} is no longer stored")
    ascii_name = doc.file_name.encode("ascii", "replace").decode().replace("?", "_")
    ascii_name = ascii_name.replace('"', "_").replace("\\", "_")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": MIME_TYPES.get(doc.document_type, "application/octet-stream"),
            "Content-Disposition": (
                f'attachment; filename="{ascii_name}"; '
                f"filename*=UTF-8''{quote(doc.file_name, safe='')}"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


@routes.get("/scrape/screenshots/{job_id}/{screenshot_id}")
async def screenshot(request: web.Request) -> web.FileResponse:
    job = await _job(request)
    shot_id = request.match_info["screenshot_id"]
    shot = await request.app[STORE].get_screenshot(job.job_id, shot_id)
    if shot is None:
        raise NotFound(f"screenshot {shot_id[:80]} not found")
    path = request.app[SCHEDULER].file_path(job.job_id, shot.file_name)
    if not path.is_file():
        raise NotFound(f"the file of screenshot {shot.screenshot_id} is no longer stored")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "image/png",
            "Content-Disposition": f'inline; filename="{shot.screenshot_id}.png"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    try:
        db_ok = await request.app[STORE].ping()
    except Exception:
        db_ok = False
    scheduler = request.app[SCHEDULER]
    relevance = await request.app[RELEVANCE].health()
    return json_response(
        {
            "status": "ok" if db_ok else "degraded",
            "version": __version__,
            "database": "ok" if db_ok else "error",
            "relevance_backend": relevance["live"],
            "relevance": relevance,
            "jobs_running": scheduler.running(),
            "jobs_queued": scheduler.queued(),
            "browser": await request.app[BROWSER].health(),
        },
        status=200 if db_ok else 503,
    )
