"""The Aitronos-style ("Freddy") face: POST /api/v1/scrape (url, schema of one item,
options), GET /api/v1/scrape/jobs/{job_id}, GET /api/v1/scrape/jobs. Errors are
`{"success": false, "error": {"code", "message"}}`."""

from __future__ import annotations

import asyncio
import re
from datetime import date, datetime
from typing import Any

import msgspec
from aiohttp import web

from skopd.errors import BadRequest, NotFound
from skopd.kinds.specs import cache_key, job_for
from skopd.models import (
    ExtractSpec,
    Job,
    JobKind,
    JobStatus,
    decode_body,
    runtime_seconds,
    website_problem,
)
from skopd.web.faces import (
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
ERRORS = re.compile(r"^/api/v1/scrape(/jobs(/|$)|/?$)")
STATUS = {
    JobStatus.PENDING: "pending",
    JobStatus.IN_PROGRESS: "processing",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
}
FROM_STATUS = {v: k for k, v in STATUS.items()}
FIELD_TYPES = frozenset("string number integer boolean array object url date email null".split())
ENGINES = ("static", "browser", "hybrid")
SYNC_GRACE_S = 10.0  # a sync request waits the job's timeout plus this at most
POLL_S = 0.2


class ErrorBody(msgspec.Struct):
    success: bool
    error: ErrorDetail


def error_body(status: int, message: str, path: str) -> bytes:
    return json_body(ErrorBody(False, error_detail(status, message)))


class DateFilter(msgspec.Struct):
    field: str
    after: str | None = None
    before: str | None = None


class OptionsIn(msgspec.Struct):
    max_items: int = 100
    timeout: int = 30
    sync: bool = False
    wait_for_content: bool = True
    extract_images: bool = False
    follow_pagination: bool = False
    llm_mode: str = "structured"
    date_filter: DateFilter | None = None
    engine_type: str | None = None


class ScrapeIn(msgspec.Struct):
    url: str
    schema: dict[str, Any]
    options: OptionsIn = msgspec.field(default_factory=OptionsIn)
    organization_id: str | None = None


def parse(body: bytes) -> tuple[ExtractSpec, bool]:
    """The job's spec, and whether the caller waits for the answer (`options.sync`)."""
    req = decode_body(body, ScrapeIn, "a JSON object with `url` and `schema`")
    problem = website_problem(req.url)
    if problem:
        raise BadRequest(f"url: {problem}")
    schema = _item_schema(req.schema)
    o = req.options
    if not 1 <= o.max_items <= 1000:
        raise BadRequest("options.max_items: must be between 1 and 1000")
    if not 1 <= o.timeout <= 300:
        raise BadRequest("options.timeout: must be between 1 and 300")
    if o.engine_type is not None and o.engine_type not in ENGINES:
        raise BadRequest('options.engine_type: must be "static", "browser" or "hybrid"')
    if len(o.llm_mode) > 100:  # accepted, no effect: Aitronos does not document its values
        raise BadRequest("options.llm_mode: must be at most 100 characters")
    date_filter = None
    if o.date_filter is not None:
        date_filter = _date_filter(o.date_filter, schema)
    spec = ExtractSpec(
        url=req.url,
        schema=schema,
        max_items=o.max_items,
        timeout=o.timeout,
        follow_pagination=o.follow_pagination,
        engine_type=o.engine_type or "static",
        llm_mode=o.llm_mode,
        wait_for_content=o.wait_for_content,
        extract_images=o.extract_images,
        date_filter=date_filter,
    )
    return spec, o.sync


# Aitronos's own field types, in JSON Schema's words.
_FORMATS = {"url": "uri", "date": "date", "email": "email"}


def _item_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of one item as JSON Schema: a field may be given by its type's name alone
    (`"price": "number"`), and `url`, `date` and `email` become formatted strings."""
    if schema.get("type", "object") != "object":
        raise BadRequest('schema.type: must be "object" (the schema of one item)')
    props = schema.get("properties")
    if not isinstance(props, dict) or not props:
        raise BadRequest("schema.properties: must be an object naming at least one field")
    if len(json_body(schema)) > 16_384:
        raise BadRequest("schema: must be at most 16384 bytes of JSON")
    fields: dict[str, Any] = {}
    for name, prop in props.items():
        field = dict(prop) if isinstance(prop, dict) else {"type": prop}
        kind = field.get("type")
        if not (isinstance(kind, str) and kind in FIELD_TYPES) and not (
            isinstance(kind, list) and kind and all(k in FIELD_TYPES for k in kind)
        ):
            raise BadRequest(
                f"schema.properties.{name}.type: must be one of {', '.join(sorted(FIELD_TYPES))}"
            )
        kinds = [kind] if isinstance(kind, str) else list(kind)
        formats = {_FORMATS[k] for k in kinds if k in _FORMATS}
        if len(formats) > 1:
            raise BadRequest(f"schema.properties.{name}.type: at most one of url, date, email")
        if formats:
            # ["date", "null"] is a date string or null, in JSON Schema's words.
            plain = list(dict.fromkeys("string" if k in _FORMATS else k for k in kinds))
            field["type"] = plain[0] if len(plain) == 1 else plain
            field.setdefault("format", formats.pop())
        fields[name] = field
    return {**schema, "type": "object", "properties": fields}


def _date_filter(rule: DateFilter, schema: dict[str, Any]) -> dict[str, str]:
    if rule.field not in schema["properties"]:
        raise BadRequest(f"options.date_filter.field: {rule.field!r} is not a field of the schema")
    out = {"field": rule.field}
    for name in ("after", "before"):
        value = getattr(rule, name)
        if value is None:
            continue
        try:
            date.fromisoformat(value)
        except ValueError:
            raise BadRequest(f"options.date_filter.{name}: must be a date YYYY-MM-DD") from None
        out[name] = value
    return out


class Metadata(msgspec.Struct):
    processing_time: float
    engine_used: str
    llm_calls: int
    cache_hit: bool


class JobView(msgspec.Struct):
    job_id: str
    status: str
    url: str
    extracted_data: list[Any] | None
    error_message: str | None
    metadata: Metadata | None
    created_at: datetime
    completed_at: datetime | None


class JobList(msgspec.Struct):
    jobs: list[JobView]
    total: int
    limit: int
    offset: int


def view(face: FaceJob) -> JobView:
    job, output = face.job, face.output
    metadata = None
    items = None
    if job.status is JobStatus.COMPLETED and output is not None:
        items = output.items or []
        metadata = Metadata(
            processing_time=round(runtime_seconds(job), 3),
            engine_used=output.engine_used or "static",
            llm_calls=output.llm_calls,
            cache_hit=output.cache_hit,
        )
    error = failure(face) if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) else None
    return JobView(
        job_id=job.job_id,
        status=STATUS[job.status],
        url=job.website,
        extracted_data=items,
        error_message=error,
        metadata=metadata,
        created_at=job.created_at,
        completed_at=job.completed_at,
    )


@routes.post("/api/v1/scrape")
@routes.post("/api/v1/scrape/")
async def submit(request: web.Request) -> web.Response:
    spec, sync = parse(await request.read())
    check_addresses(request, [("url", spec.url)])
    owner = request[OWNER]
    scheduler = request.app[SCHEDULER]
    job = job_for(owner, spec, cache_key(owner, spec))
    cached = await scheduler.cached(job)
    if cached is None:
        job = await scheduler.enqueue(job)
        if sync:
            job = await _wait(request, job, spec.timeout + SYNC_GRACE_S)
    face = await face_job(request, job.job_id, JobKind.EXTRACT)
    assert face is not None
    return json_response(view(face), status=202 if face.job.status.is_active else 200)


async def _wait(request: web.Request, job: Job, limit: float) -> Job:
    """Poll the store until the job ends or `limit` seconds pass."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    store = request.app[STORE]
    while loop.time() < deadline:
        current = await store.get_job(job.job_id)
        if current is None or not current.status.is_active:
            return current or job
        await asyncio.sleep(POLL_S)
    return job


@routes.get("/api/v1/scrape/jobs/{job_id}")
async def status(request: web.Request) -> web.Response:
    job_id = request.match_info["job_id"]
    face = await face_job(request, job_id, JobKind.EXTRACT)
    if face is None:
        raise NotFound(f"Job {job_id[:80]} not found")
    return json_response(view(face))


@routes.get("/api/v1/scrape/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    q = request.query
    state = None
    if q.get("status"):
        state = FROM_STATUS.get(q["status"])
        if state is None:
            raise BadRequest(f"status: must be one of {', '.join(STATUS.values())}")
    limit = _int(q, "limit", 50, 1, 100)
    offset = _int(q, "offset", 0, 0, 10**9)
    # The page, its jobs' answers and the total: one read, as of one moment.
    total, listed = await request.app[STORE].job_listing(
        request[OWNER], state, JobKind.EXTRACT, limit, offset
    )
    views = [view(FaceJob(snap, output)) for snap, output in listed]
    return json_response(JobList(views, total, limit, offset))


def _int(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be an integer between {lo} and {hi}")
    return value
