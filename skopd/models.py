"""Wire and domain types: the job spec, job state, documents, and Skop's response shapes."""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from skopd.crawl.doctypes import KNOWN_TYPES
from skopd.errors import BadRequest


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_id(prefix: str) -> str:
    """`prefix_` + 16 base-36 characters: 80 random bits, matching ^job_[a-z0-9]+$."""
    n = secrets.randbits(80)
    digits = []
    for _ in range(16):
        n, r = divmod(n, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[r])
    return prefix + "_" + "".join(digits)


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_active(self) -> bool:
        return self in (JobStatus.PENDING, JobStatus.IN_PROGRESS)


class JobKind(enum.StrEnum):
    """What a job does; each API face submits its own kind to the one scheduler."""

    DOCUMENTS = "documents"  # Skop: find and download the documents a prompt asks for
    PAGES = "pages"  # Spidra: the content of 1-5 given pages, optionally AI-extracted
    EXTRACT = "extract"  # Aitronos: schema items from one page (and its "next" pages)
    DOCS = "docs"  # documentation scraper: a crawl saving relevant pages as Markdown chunks


class PagesSpec(msgspec.Struct, tag="pages", forbid_unknown_fields=True):
    urls: list[str]
    prompt: str | None = None
    output: str = "markdown"  # markdown | json
    schema: dict[str, Any] | None = None
    screenshot: bool = False


class ExtractSpec(msgspec.Struct, tag="extract", forbid_unknown_fields=True):
    url: str
    schema: dict[str, Any]
    max_items: int = 100
    timeout: int = 30
    follow_pagination: bool = False
    engine_type: str = "static"  # static | browser | hybrid
    llm_mode: str = "structured"  # structured | json
    wait_for_content: bool = True
    extract_images: bool = False
    date_filter: dict[str, str] | None = None  # {field, after, before}


class DocsSpec(msgspec.Struct, tag="docs", forbid_unknown_fields=True):
    session_id: str
    starter_links: list[str]
    application_name: str
    application_version: str = "current"
    max_iterations: int = 50
    prompt: str | None = None


Spec = PagesSpec | ExtractSpec | DocsSpec


class Parameters(msgspec.Struct, forbid_unknown_fields=True):
    """Skop's parameters (first five) and ours."""

    single_page: bool = False
    timeout: int = 1800
    confidence_threshold: float = 0.1
    file_type: str = "document"
    max_file_size_mb: int = 100
    max_pages: int = 500
    max_depth: int = 5
    document_types: list[str] = msgspec.field(default_factory=lambda: list(KNOWN_TYPES))
    include_paths: list[str] = msgspec.field(default_factory=list)
    exclude_paths: list[str] = msgspec.field(default_factory=list)
    respect_robots: bool = True  # false is honoured only with crawler.allow_ignore_robots
    render_js: str = "auto"  # one of RENDER_MODES
    screenshot: bool = False  # a PNG of each page rendered in the browser


RENDER_MODES = ("auto", "always", "never")


class ScrapeRequest(msgspec.Struct, forbid_unknown_fields=True):
    website: str
    prompt: str
    parameters: Parameters = msgspec.field(default_factory=Parameters)


# (field, lowest, highest)
_PARAM_RANGES: tuple[tuple[str, float, float], ...] = (
    ("timeout", 60, 3600),
    ("confidence_threshold", 0, 1),
    ("max_file_size_mb", 1, 500),
    ("max_pages", 1, 100_000),
    ("max_depth", 0, 100),
)
_MAX_PATTERNS = 50


def _field_path(msg: str) -> tuple[str, str]:
    text, _, path = msg.partition(" - at `$")
    return path.rstrip("`").lstrip("."), text


def parse_scrape_request(body: bytes) -> ScrapeRequest:
    """Decode and validate a POST /scrape body; every problem names its field."""
    req = decode_body(body, ScrapeRequest, "a JSON object with `website` and `prompt`")
    _validate(req)
    return req


_T = TypeVar("_T")


def decode_body(body: bytes, kind: type[_T], wanted: str) -> _T:
    """A request body decoded into `kind`; a BadRequest naming the field otherwise."""
    if not body.strip():
        raise BadRequest(f"body: {wanted} is required")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        path, text = _field_path(str(exc))
        if text.startswith("Object contains unknown field"):
            name = text.split("`")[1]
            raise BadRequest(f"{path + '.' if path else ''}{name}: unknown field") from exc
        if text.startswith("Object missing required field"):
            name = text.split("`")[1]
            raise BadRequest(f"{path + '.' if path else ''}{name}: is required") from exc
        raise BadRequest(f"{path or 'body'}: {text}") from exc
    except msgspec.DecodeError as exc:
        raise BadRequest(f"body: invalid JSON ({exc})") from exc


def website_problem(url: str) -> str | None:
    """Why `url` cannot start a crawl, or None."""
    if len(url) > 2048:
        return "must be at most 2048 characters"
    if url != url.strip() or any(c in url for c in "\x00\r\n\t "):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"not a valid URL ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "must be an http or https URL"
    if not parts.hostname:
        return "must have a host"
    if parts.username or parts.password:
        return "must not carry credentials"
    return None


def _validate(req: ScrapeRequest) -> None:
    problem = website_problem(req.website)
    if problem:
        raise BadRequest(f"website: {problem}")
    n = len(req.prompt.strip())
    if not 10 <= n <= 500:
        raise BadRequest(f"prompt: must be between 10 and 500 characters (got {n})")
    p = req.parameters
    for name, lo, hi in _PARAM_RANGES:
        value = getattr(p, name)
        if not lo <= value <= hi:
            raise BadRequest(f"parameters.{name}: must be between {lo:g} and {hi:g}")
    if p.render_js not in RENDER_MODES:
        raise BadRequest('parameters.render_js: must be "auto", "always" or "never"')
    if p.file_type != "document":
        raise BadRequest('parameters.file_type: must be "document"')
    if not p.document_types:
        raise BadRequest("parameters.document_types: must name at least one type")
    p.document_types = [t.lower().lstrip(".") for t in p.document_types]
    unknown = [t for t in p.document_types if t not in KNOWN_TYPES]
    if unknown:
        raise BadRequest(
            f"parameters.document_types: unknown type {unknown[0]!r}; "
            f"known: {', '.join(KNOWN_TYPES)}"
        )
    for name in ("include_paths", "exclude_paths"):
        patterns: list[str] = getattr(p, name)
        if len(patterns) > _MAX_PATTERNS or any(not x or len(x) > 500 for x in patterns):
            raise BadRequest(
                f"parameters.{name}: at most {_MAX_PATTERNS} non-empty patterns of "
                "at most 500 characters"
            )


class JobErrorInfo(msgspec.Struct):
    """Skop's JobError."""

    error_id: str
    agent_name: str
    error_type: str
    error_message: str
    page_url: str | None
    timestamp: datetime
    is_recoverable: bool


class Job(msgspec.Struct):
    """A job as stored; the status and results responses are views of it."""

    job_id: str
    owner: str
    website: str
    prompt: str
    parameters: Parameters
    status: JobStatus
    message: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    estimated_completion: datetime | None = None
    progress: float | None = None
    current_agent: str | None = None
    agents_completed: list[str] = msgspec.field(default_factory=list)
    total_pages_crawled: int = 0
    total_documents_found: int = 0
    total_documents_downloaded: int = 0
    relevance_backend: str | None = None
    model: str | None = None
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    pages_rendered: int = 0  # of total_pages_crawled, those read in the browser
    seq: int = 0
    kind: JobKind = JobKind.DOCUMENTS
    spec: Spec | None = None  # the face's own request, for every kind but documents
    cache_key: str | None = None  # same owner, page, schema and options: same answer
    session_id: str | None = None  # the documentation scraper's session


class PageContent(msgspec.Struct):
    """A page a job fetched for its content (pages, extract and docs kinds)."""

    position: int
    url: str
    title: str
    markdown: str
    chunks: list[ChunkOut]
    success: bool
    error: str | None
    scraped_at: datetime


class PageSummary(msgspec.Struct):
    url: str
    title: str
    chunk_count: int
    success: bool
    error: str | None
    scraped_at: datetime


class ChunkOut(msgspec.Struct):
    index: int
    heading: str
    text: str


class JobOutput(msgspec.Struct):
    """What a non-document job answers with, written before its final state."""

    content: Any = None  # Spidra: Markdown, or the model's answer (text or JSON)
    items: list[Any] | None = None  # Aitronos: extracted items
    ai_extraction_failed: bool = False
    extraction_error: str | None = None
    finish_reason: str | None = None  # docs: completed, max_iterations, no_more_links, timeout
    engine_used: str | None = None
    cache_hit: bool = False
    cached_from: str | None = None  # the job whose answer a cache hit reused
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


class DocumentOut(msgspec.Struct):
    """Skop's ExtractedDocument plus our id, sha256 and download_url."""

    document_id: str
    name: str
    url: str
    source_page: str
    document_type: str
    confidence_score: float
    file_size_mb: float
    extracted_at: datetime
    sha256: str
    download_url: str


class StoredDocument(msgspec.Struct):
    job_id: str
    document_id: str
    name: str
    url: str
    source_page: str
    document_type: str
    confidence_score: float
    size_bytes: int
    sha256: str
    file_name: str
    extracted_at: datetime

    def out(self) -> DocumentOut:
        return DocumentOut(
            document_id=self.document_id,
            name=self.name,
            url=self.url,
            source_page=self.source_page,
            document_type=self.document_type,
            confidence_score=round(self.confidence_score, 4),
            file_size_mb=round(self.size_bytes / (1024 * 1024), 3),
            extracted_at=self.extracted_at,
            sha256=self.sha256,
            download_url=f"/scrape/files/{self.job_id}/{self.document_id}",
        )


class Screenshot(msgspec.Struct):
    """A PNG of a rendered page, stored with the job's documents."""

    job_id: str
    screenshot_id: str
    url: str
    size_bytes: int
    file_name: str
    taken_at: datetime

    def out(self) -> ScreenshotOut:
        return ScreenshotOut(
            screenshot_id=self.screenshot_id,
            url=self.url,
            download_url=f"/scrape/screenshots/{self.job_id}/{self.screenshot_id}",
            size_bytes=self.size_bytes,
            taken_at=self.taken_at,
        )


class ScreenshotOut(msgspec.Struct):
    screenshot_id: str
    url: str  # the page
    download_url: str  # the PNG, a path on this server
    size_bytes: int
    taken_at: datetime


class CreateResponse(msgspec.Struct):
    job_id: str
    status: JobStatus
    message: str
    created_at: datetime
    estimated_completion: datetime | None


class StatusResponse(msgspec.Struct):
    """Skop's JobStatusResponse."""

    job_id: str
    status: JobStatus
    message: str
    progress: float | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    current_agent: str | None
    agents_completed: list[str]
    total_pages_crawled: int
    total_documents_found: int
    is_active: bool
    has_errors: bool
    errors: list[JobErrorInfo]
    warnings: list[str]
    relevance_backend: str | None
    model: str | None
    llm_calls: int
    input_tokens: int
    output_tokens: int


class CancelResponse(StatusResponse):
    previous_status: JobStatus


class Metadata(msgspec.Struct):
    """Skop's JobMetadata, as its example shows it."""

    job_id: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion: datetime | None
    original_website: str
    original_prompt: str
    parameters: Parameters
    current_agent: str | None
    agents_completed: list[str]
    total_pages_crawled: int
    total_documents_found: int
    errors: list[JobErrorInfo]
    warnings: list[str]
    final_status: JobStatus | None
    relevance_backend: str | None
    model: str | None
    llm_calls: int
    input_tokens: int
    output_tokens: int
    pages_by_engine: dict[str, int]  # {"http": n, "browser": m}


class ResultsResponse(msgspec.Struct):
    """Skop's JobResultsResponse."""

    job_id: str
    status: JobStatus
    message: str
    documents: list[DocumentOut]
    metadata: Metadata
    total_documents_found: int
    total_documents_downloaded: int
    total_pages_crawled: int
    success_rate: float
    cost: float
    total_runtime_seconds: float
    runtime_minutes: float
    errors: list[JobErrorInfo]
    warnings: list[str]
    has_errors: bool
    screenshots: list[ScreenshotOut]


class JobList(msgspec.Struct):
    jobs: list[StatusResponse]
    next_cursor: str | None


def status_view(job: Job, errors: list[JobErrorInfo], warnings: list[str]) -> dict[str, Any]:
    """The fields shared by the status, cancel and list responses."""
    return {
        "job_id": job.job_id,
        "status": job.status,
        "message": job.message,
        "progress": None if job.progress is None else round(job.progress, 1),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "estimated_completion": job.estimated_completion,
        "current_agent": job.current_agent,
        "agents_completed": list(job.agents_completed),
        "total_pages_crawled": job.total_pages_crawled,
        "total_documents_found": job.total_documents_found,
        "is_active": job.status.is_active,
        "has_errors": bool(errors),
        "errors": errors,
        "warnings": warnings,
        **relevance_view(job),
    }


def relevance_view(job: Job) -> dict[str, Any]:
    """Which judge a job had and what the model cost: shown in status and results metadata."""
    return {
        "relevance_backend": job.relevance_backend,
        "model": job.model,
        "llm_calls": job.llm_calls,
        "input_tokens": job.input_tokens,
        "output_tokens": job.output_tokens,
    }


def pages_by_engine(job: Job) -> dict[str, int]:
    return {"http": job.total_pages_crawled - job.pages_rendered, "browser": job.pages_rendered}


def runtime_seconds(job: Job, now: datetime | None = None) -> float:
    if job.started_at is None:
        return 0.0
    end = job.completed_at or now or utcnow()
    return max(0.0, (end - job.started_at).total_seconds())
