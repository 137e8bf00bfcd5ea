"""What the Spidra-, Aitronos- and documentation-scraper-style faces share: finding the
caller's job of a kind, and a JSON body for each face's error shape."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from aiohttp import web

from skopd.errors import BadRequest
from skopd.jobs import JOB_ID
from skopd.models import Job, JobKind, JobOutput, JobStatus
from skopd.store import Snapshot
from skopd.web.middleware import OWNER
from skopd.web.state import SCHEDULER, STORE

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class FaceJob(msgspec.Struct):
    snap: Snapshot
    output: JobOutput | None

    @property
    def job(self) -> Job:
        return self.snap.job


async def face_job(request: web.Request, job_id: str, kind: JobKind) -> FaceJob | None:
    """The caller's job of `kind` with its answer so far; None when it does not exist, is
    another key's, or was submitted through another face (each face shows its own jobs)."""
    if not JOB_ID.match(job_id):
        return None
    store = request.app[STORE]
    snap = await store.snapshot(job_id)
    if snap is None or snap.job.owner != request[OWNER] or snap.job.kind is not kind:
        return None
    output = await store.output(job_id) if snap.job.status is JobStatus.COMPLETED else None
    return FaceJob(snap, output)


def check_addresses(request: web.Request, urls: list[tuple[str, str]]) -> None:
    """A 400 naming the field when the crawler may never go to a URL's host (the address
    policy, known without resolving): (field, url) pairs."""
    scheduler = request.app[SCHEDULER]
    for field, url in urls:
        problem = scheduler.address_problem(url)
        if problem is not None:
            raise BadRequest(f"{field}: {problem}")


def failure(face: FaceJob) -> str:
    """Why a job failed or was cancelled, as one line."""
    job = face.job
    if job.status is JobStatus.CANCELLED:
        return job.message
    fatal = [e.error_message for e in face.snap.errors if not e.is_recoverable]
    return fatal[-1] if fatal else job.message.removeprefix("Job failed: ")


def json_body(value: Any) -> bytes:
    return msgspec.json.encode(value)


def json_response(value: Any, status: int = 200) -> web.Response:
    return web.Response(body=json_body(value), status=status, content_type="application/json")


ERROR_CODES = {
    400: "validation_error",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    429: "too_many_requests",
    503: "service_unavailable",
}


class ErrorDetail(msgspec.Struct):
    """`{"code", "message"}`: the error of the Aitronos- and documentation-scraper-style faces."""

    code: str
    message: str


def error_detail(status: int, message: str) -> ErrorDetail:
    code = ERROR_CODES.get(status, "internal_error" if status >= 500 else "error")
    return ErrorDetail(code, message)
