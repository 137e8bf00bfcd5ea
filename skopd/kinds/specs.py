"""From a face's request (a Spec) to a Job: the crawl limits each kind runs under, and the
cache key that makes two identical requests one answer."""

from __future__ import annotations

import hashlib
import uuid

import msgspec

from skopd.models import (
    DocsSpec,
    ExtractSpec,
    Job,
    JobKind,
    JobStatus,
    PagesSpec,
    Parameters,
    Spec,
    new_id,
    utcnow,
)

PAGES_TIMEOUT_S = 300  # fetching at most five pages, and one model call
MAX_PAGINATION_PAGES = 50  # "next" pages an extract job follows at most
DOCS_TIMEOUT_S = 1800
DOCS_MAX_DEPTH = 10
# The defaults of the Aitronos options that are accepted and have no effect.
NO_EFFECT = ExtractSpec(url="", schema={})
# Aitronos's engine_type as the crawl's render_js.
RENDER_BY_ENGINE = {"static": "never", "browser": "always", "hybrid": "auto"}


def kind_of(spec: Spec) -> JobKind:
    if isinstance(spec, PagesSpec):
        return JobKind.PAGES
    if isinstance(spec, ExtractSpec):
        return JobKind.EXTRACT
    return JobKind.DOCS


def parameters_for(spec: Spec) -> Parameters:
    """The crawl limits of a kind. No document types: these kinds keep pages, not files."""
    if isinstance(spec, PagesSpec):
        return Parameters(
            single_page=True,
            timeout=PAGES_TIMEOUT_S,
            max_pages=1,
            max_depth=0,
            document_types=[],
            # A screenshot is taken of a rendered page: asking for one renders every page.
            render_js="always" if spec.screenshot else "auto",
            screenshot=spec.screenshot,
        )
    if isinstance(spec, ExtractSpec):
        follow = spec.follow_pagination
        return Parameters(
            single_page=not follow,
            timeout=spec.timeout,
            max_pages=MAX_PAGINATION_PAGES if follow else 1,
            max_depth=MAX_PAGINATION_PAGES if follow else 0,
            document_types=[],
            render_js=RENDER_BY_ENGINE[spec.engine_type],
        )
    return Parameters(
        timeout=DOCS_TIMEOUT_S,
        max_pages=spec.max_iterations,
        max_depth=DOCS_MAX_DEPTH,
        document_types=[],
    )


def prompt_of(spec: Spec) -> str:
    if isinstance(spec, PagesSpec):
        return (spec.prompt or "").strip()
    if isinstance(spec, ExtractSpec):
        return ""
    # Without an application name, the starter links' folders and the prompt steer.
    words = [spec.application_name, "documentation"]
    if spec.application_version not in ("", "current"):
        words.insert(1, spec.application_version)
    if spec.prompt:
        words.append(spec.prompt.strip())
    return " ".join(w for w in words if w)


def website_of(spec: Spec) -> str:
    if isinstance(spec, PagesSpec):
        return spec.urls[0]
    if isinstance(spec, ExtractSpec):
        return spec.url
    return spec.starter_links[0]


def job_for(owner: str, spec: Spec, cache_key: str | None = None) -> Job:
    """A new pending job for `spec`; documentation-scraper jobs get UUIDs, as its clients expect."""
    kind = kind_of(spec)
    return Job(
        job_id=str(uuid.uuid4()) if kind is JobKind.DOCS else new_id("job"),
        owner=owner,
        website=website_of(spec),
        prompt=prompt_of(spec),
        parameters=parameters_for(spec),
        status=JobStatus.PENDING,
        message="Job queued",
        created_at=utcnow(),
        kind=kind,
        spec=spec,
        cache_key=cache_key,
        session_id=spec.session_id if isinstance(spec, DocsSpec) else None,
    )


def cache_key(owner: str, spec: Spec) -> str:
    """Same owner, same request (schema keys in any order): same key. A docs job's session
    does not count: the same crawl asked for in another session is the same crawl."""
    if isinstance(spec, DocsSpec):
        spec = msgspec.structs.replace(spec, session_id="")
    if isinstance(spec, ExtractSpec):  # options accepted without effect: the same answer
        spec = msgspec.structs.replace(
            spec,
            llm_mode=NO_EFFECT.llm_mode,
            wait_for_content=NO_EFFECT.wait_for_content,
            extract_images=NO_EFFECT.extract_images,
        )
    canonical = msgspec.json.encode(msgspec.to_builtins(spec), order="sorted")
    return hashlib.sha256(owner.encode() + b"\0" + canonical).hexdigest()
