"""The documentation scraper's kind: a crawl from the starter links that saves up to
`max_iterations` pages as Markdown chunks, following the links judged relevant.

A link is relevant when it stays under a starter link's folder or its text and URL speak
of what is asked (the application's name, the prompt, and with a local model the plan's
synonyms and sections), and it is not a login, shop, share or other-year link; the most
promising are fetched first."""

from __future__ import annotations

from urllib.parse import urlsplit

from skopd.crawl import doctypes
from skopd.crawl.engine import JobFailed
from skopd.crawl.extract import Link, Page
from skopd.crawl.recorder import Recorder
from skopd.kinds.runner import KindRunner
from skopd.kinds.sink import ContentSink
from skopd.models import DocsSpec, Job, JobOutput, PageContent
from skopd.relevance.backend import RelevanceUnavailable
from skopd.relevance.query import Query, build_query, link_priority

JUNK_BELOW = 0.25  # link_priority of login/shop/share links and other years' pages
NEUTRAL = 0.3  # link_priority of a link that says nothing about the request


def folder(url: str) -> tuple[str, str]:
    """(host, path folder) of a URL: /docs/guide/intro.html -> /docs/guide/."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return (parts.hostname or "").removeprefix("www."), path[: path.rfind("/") + 1]


class RelevantLinks:
    """The chooser of a docs crawl."""

    def __init__(self, query: Query, starters: list[str], sink: ContentSink) -> None:
        self.query = query
        self.folders = [folder(u) for u in starters]
        self.sink = sink

    def relevant(self, link: Link) -> bool:
        if doctypes.type_from_url(link.url) is not None or self.sink.has(link.url):
            return False
        score = link_priority(self.query, link.url, link.text)
        if score < JUNK_BELOW:
            return False
        host, path = folder(link.url)
        inside = any(host == h and path.startswith(p) for h, p in self.folders)
        return inside or score > NEUTRAL

    async def __call__(self, page: Page, body: bytes, content: PageContent) -> list[Link]:
        return [link for link in page.links if self.relevant(link)]


async def run(ctx: KindRunner, job: Job, rec: Recorder) -> str:
    spec = job.spec
    assert isinstance(spec, DocsSpec)
    try:
        judge = await ctx.relevance.for_job(rec.warning)
    except RelevanceUnavailable as exc:
        raise JobFailed("relevance_unavailable", str(exc)) from exc
    rec.update(relevance_backend=judge.name, model=judge.model, message="Scraping documentation")
    query = await judge.plan(build_query(job.prompt))
    sink = ContentSink(ctx.store, job.job_id, max_saved=spec.max_iterations)
    sink.choose = RelevantLinks(query, spec.starter_links, sink)
    reasons: list[str] = []
    failures: list[str] = []
    for url in spec.starter_links:
        if sink.full:
            break
        if sink.has(url):
            continue
        left = spec.max_iterations - len(sink.saved)
        try:
            outcome = await ctx.crawl(job, rec, judge, url, sink, max_pages=left).run()
        except JobFailed as exc:
            failures.append(exc.message)
            rec.error(exc.error_type, exc.message, url)
            continue
        reasons.append(outcome.reason)
    if not sink.saved:
        raise JobFailed("scrape_failed", "; ".join(failures) or "no page could be saved")
    if "timeout" in reasons:
        finish = "timeout"
    elif sink.full or "max_pages" in reasons:
        finish = "max_iterations"
    else:
        finish = "no_more_links"
    output = JobOutput(finish_reason=finish, engine_used="static")
    output.llm_calls, output.input_tokens = judge.llm_calls, judge.input_tokens
    output.output_tokens = judge.output_tokens
    await ctx.finish(job, rec, output)
    return f"Scraping completed: {len(sink.saved)} page(s) saved ({finish})"
