"""Spidra's kind: the content of 1-5 given pages (no link is followed), as Markdown, and
optionally what the local model extracts from it for a prompt."""

from __future__ import annotations

import asyncio
import re
from typing import Literal

from skopd.crawl import doctypes
from skopd.crawl.engine import JobFailed
from skopd.crawl.recorder import Recorder
from skopd.crawl.urls import normalize_url
from skopd.kinds.runner import KindRunner, add_usage
from skopd.kinds.sink import ContentSink
from skopd.models import Job, JobOutput, PageContent, PagesSpec, utcnow

SEPARATOR = "\n\n---\n\n"
_START_PAGE = re.compile(r"^start page \S+?(: | (?=\S))")


async def run(ctx: KindRunner, job: Job, rec: Recorder, resumed: bool = False) -> str | None:
    spec = job.spec
    assert isinstance(spec, PagesSpec)
    judge = ctx.lexical(rec)
    rec.update(message=f"Scraping {len(spec.urls)} page(s)")
    limits = await ctx.rendering(job, rec)
    done_before = await _kept(ctx, job) if resumed else set()
    interrupted = False

    async def fetch(position: int, url: str) -> None:
        nonlocal interrupted
        sink = ContentSink(ctx.store, job.job_id, first_position=position)
        problem = None
        crawl = ctx.crawl(job, rec, judge, url, sink, **limits)
        try:
            outcome = await crawl.run()
            if outcome.reason == "interrupted":
                interrupted = True
                return
        except JobFailed as exc:
            problem = _reason(exc.message, url)
            rec.error(exc.error_type, exc.message, url)
        if not sink.saved:
            if problem is None:
                problem = _recorded(rec, url)
            if problem is None:
                # Nothing went wrong, yet no page: the address holds a document.
                problem = _not_a_page(url, crawl.pages_started)
                rec.error("not_a_page", f"{url}: {problem}", url)
            await ctx.store.save_page(
                job.job_id,
                PageContent(
                    position=position,
                    url=url,
                    title="",
                    markdown="",
                    chunks=[],
                    success=False,
                    error=problem,
                    scraped_at=utcnow(),
                ),
            )

    # At most five pages, checked at the edge.
    await asyncio.gather(
        *(fetch(i, url) for i, url in enumerate(spec.urls) if i not in done_before)
    )
    if interrupted:
        return None  # the daemon is stopping; the job resumes at the next start
    pages = await ctx.store.pages_of(job.job_id)
    done = [p for p in pages if p.success]
    if not done:
        raise JobFailed(
            "scrape_failed", "; ".join(f"Failed to scrape {p.url} — {p.error}" for p in pages)
        )
    raw = SEPARATOR.join(p.markdown.strip() for p in done)
    output = JobOutput(content=raw, engine_used="static")
    if spec.prompt:
        rec.update(message="Processing content with AI...")
        await _extract(ctx, rec, spec, raw, output)
    await ctx.finish(job, rec, output)
    failed = len(pages) - len(done)
    if failed:
        return f"Scrape completed: {len(done)} page(s) scraped, {failed} failed"
    return "Scrape completed successfully"


def _reason(message: str, url: str) -> str:
    """A crawl's message about `url`, without the URL (the caller names the page once):
    "start page U answered HTTP 500" -> "answered HTTP 500"."""
    message = _START_PAGE.sub("", message, count=1)
    for spelling in dict.fromkeys((url, normalize_url(url))):
        message = message.replace(spelling, "the page")
    return message


def _recorded(rec: Recorder, url: str) -> str | None:
    """The last error the crawl recorded about `url`, as a reason."""
    key = normalize_url(url)
    for error in reversed(rec.errors):
        if error.page_url is not None and normalize_url(error.page_url) == key:
            return _reason(error.error_message, url)
    return None


def _not_a_page(url: str, pages_started: int) -> str:
    if pages_started == 0:  # the crawl found a document where it expected a page
        kind = doctypes.type_from_url(url)
        return f"a {kind.upper()} document, not an HTML page" if kind else "not an HTML page"
    return "no HTML page could be read from it"


async def _extract(
    ctx: KindRunner, rec: Recorder, spec: PagesSpec, raw: str, output: JobOutput
) -> None:
    """The model's answer as the content; the raw Markdown stays, flagged, when it fails."""
    assert spec.prompt
    extractor = ctx.extractor()
    reason = await extractor.unavailable()
    if reason is not None:
        output.ai_extraction_failed = True
        output.extraction_error = reason
        rec.warning(f"AI extraction failed: {reason}; the content is the pages' Markdown")
        return
    output_kind: Literal["markdown", "json"] = "json" if spec.output == "json" else "markdown"
    ex = await extractor.extract(raw, spec.prompt, schema=spec.schema, output=output_kind)
    add_usage(output, ex, rec)
    if ex.failed:
        output.ai_extraction_failed = True
        output.extraction_error = ex.error or "the model gave no usable answer"
        rec.warning(f"AI extraction failed: {output.extraction_error}; the content is Markdown")
        return
    if ex.data is not None and (spec.output == "json" or spec.schema is not None):
        output.content = ex.data
    elif ex.content is not None:
        output.content = ex.content


async def _kept(ctx: KindRunner, job: Job) -> set[int]:
    """After a restart: the positions done before it, kept (and not fetched again). A page
    is done once the crawl recorded it (its screenshot with it); a failure, once saved."""
    recorded = {normalize_url(url) for url in (await ctx.store.checkpoint(job.job_id)).pages}
    return {
        position
        for position, url, success in await ctx.store.saved_pages(job.job_id)
        if not success or normalize_url(url) in recorded
    }
