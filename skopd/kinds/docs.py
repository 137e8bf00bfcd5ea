"""The documentation scraper's kind: a crawl from the starter links that saves up to
`max_iterations` pages as Markdown chunks, following the links judged relevant.

A link is relevant when it stays under a starter link's folder or its text and URL speak
of what is asked (the application's name, the prompt, and with a local model the plan's
synonyms and sections), and it is not a login, shop, share or other-year link. With a local
model, the links of the site that neither rule decides are shown to the model, which keeps
those it judges to be the application's documentation. The most promising are fetched
first."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from skopd.crawl import doctypes
from skopd.crawl.engine import Crawl, JobFailed
from skopd.crawl.extract import Link, Page
from skopd.crawl.recorder import Recorder
from skopd.kinds.runner import KindRunner, add_usage
from skopd.kinds.sink import ContentSink
from skopd.models import DocsSpec, Job, JobOutput, PageContent
from skopd.relevance.backend import RelevanceUnavailable
from skopd.relevance.query import Query, build_query, link_priority

if TYPE_CHECKING:
    from skopd.content.extract import Extractor

MAX_QUESTIONS = 20  # model calls per job judging links
MAX_LINKS_SHOWN = 60  # links per question
LINKS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"relevant": {"type": "array", "items": {"type": "integer"}}},
    "required": ["relevant"],
}
JUNK_BELOW = 0.25  # link_priority of login/shop/share links and other years' pages
NEUTRAL = 0.3  # link_priority of a link that says nothing about the request


def folder(url: str) -> tuple[str, str]:
    """(host, path folder) of a URL: /docs/guide/intro.html -> /docs/guide/."""
    parts = urlsplit(url)
    path = parts.path or "/"
    return (parts.hostname or "").removeprefix("www."), path[: path.rfind("/") + 1]


class ModelLinks:
    """Asks the local model which of a page's undecided links are documentation of the
    application: one call per page at most, MAX_QUESTIONS per job."""

    def __init__(self, extractor: Extractor, question: str, output: JobOutput) -> None:
        self.extractor = extractor
        self.question = question
        self.output = output  # where the calls' cost is counted
        self.asked = 0

    async def __call__(self, links: list[Link]) -> list[Link]:
        if self.asked >= MAX_QUESTIONS:
            return []
        self.asked += 1
        shown = links[:MAX_LINKS_SHOWN]
        listing = "\n".join(
            f"{i}. [{' '.join(link.text.split()) or link.url}]({link.url})"
            for i, link in enumerate(shown)
        )
        ex = await self.extractor.extract(
            listing, self.question, schema=LINKS_SCHEMA, output="json"
        )
        add_usage(self.output, ex)
        numbers = ex.data.get("relevant") if isinstance(ex.data, dict) else None
        if ex.failed or not isinstance(numbers, list):
            return []
        picked = {n for n in numbers if isinstance(n, int) and 0 <= n < len(shown)}
        return [shown[n] for n in sorted(picked)]


class RelevantLinks:
    """The chooser of a docs crawl."""

    def __init__(
        self,
        query: Query,
        starters: list[str],
        sink: ContentSink,
        ask: ModelLinks | None = None,
    ) -> None:
        self.query = query
        self.folders = [folder(u) for u in starters]
        self.hosts = {host for host, _ in self.folders}
        self.sink = sink
        self.ask = ask

    def relevant(self, link: Link) -> bool | None:
        """True or False when the words decide; None when only a model could."""
        if doctypes.type_from_url(link.url) is not None or self.sink.has(link.url):
            return False
        score = link_priority(self.query, link.url, link.text)
        if score < JUNK_BELOW:
            return False
        host, path = folder(link.url)
        if any(host == h and path.startswith(p) for h, p in self.folders) or score > NEUTRAL:
            return True
        return None if host in self.hosts else False

    async def __call__(self, page: Page, body: bytes, content: PageContent) -> list[Link]:
        kept: list[Link] = []
        undecided: list[Link] = []
        for link in page.links:
            verdict = self.relevant(link)
            if verdict:
                kept.append(link)
            elif verdict is None:
                undecided.append(link)
        if undecided and self.ask is not None:
            kept.extend(await self.ask(undecided))
        return kept


class Progress(msgspec.Struct, omit_defaults=True):
    """Where a docs job is, written with every flush as its checkpoint's state: the starter
    link whose crawl is under way (that crawl's own state in `crawl`), what the crawls of the
    earlier ones ended with, and the model's work so far."""

    starter: int = 0
    max_pages: int = 0  # the page budget the crawl under way began with
    elapsed_s: float = 0.0  # time spent crawling when it began
    reasons: list[str] = msgspec.field(default_factory=list)
    failures: list[str] = msgspec.field(default_factory=list)
    asked: int = 0  # questions put to the model about links
    usage: tuple[int, int, int] = (0, 0, 0)  # model calls, input and output tokens
    crawl: bytes | None = None

    @classmethod
    def of(cls, state: bytes | None) -> Progress:
        if state is None:
            return cls()
        try:
            return msgspec.msgpack.decode(state, type=cls)
        except msgspec.DecodeError:  # a crawl's own state (an older skopd): the first one's
            return cls(crawl=state)


async def run(ctx: KindRunner, job: Job, rec: Recorder, resumed: bool = False) -> str | None:
    """The crawls of the starter links, one after the other, saving into one sink. After a
    restart, the crawl that was under way continues from its checkpoint (and the sink from
    the pages saved), and the later starter links follow, as in a run never interrupted."""
    spec = job.spec
    assert isinstance(spec, DocsSpec)
    try:
        judge = await ctx.relevance.for_job(rec.warning)
    except RelevanceUnavailable as exc:
        raise JobFailed("relevance_unavailable", str(exc)) from exc
    rec.update(relevance_backend=judge.name, model=judge.model, message="Scraping documentation")
    query = await judge.plan(build_query(job.prompt))
    sink = ContentSink(ctx.store, job.job_id, max_saved=spec.max_iterations)
    checkpoint = await ctx.store.checkpoint(job.job_id) if resumed else None
    progress = Progress.of(checkpoint.state if checkpoint else None)
    output = JobOutput(engine_used="static")
    ask = None
    if judge.name == "ollama" and await ctx.extractor().unavailable() is None:
        ask = ModelLinks(ctx.extractor(), _question(spec), output)
        ask.asked = progress.asked
    sink.choose = RelevantLinks(query, spec.starter_links, sink, ask)
    crawl: Crawl | None = None
    before = progress.usage

    def usage() -> tuple[int, int, int]:
        return (
            before[0] + output.llm_calls + judge.llm_calls,
            before[1] + output.input_tokens + judge.input_tokens,
            before[2] + output.output_tokens + judge.output_tokens,
        )

    def state() -> bytes:
        progress.asked = ask.asked if ask is not None else 0
        progress.usage = usage()
        progress.crawl = None if crawl is None else crawl._state()
        return msgspec.msgpack.encode(progress)

    first = progress.starter
    for index in range(first, len(spec.starter_links)):
        url = spec.starter_links[index]
        restoring = checkpoint is not None and index == first
        if not restoring:
            if sink.full:
                break
            if sink.has(url):
                continue
            if ctx.stopping:
                return None  # the daemon is stopping; the job resumes at the next start
            progress.starter = index
            progress.max_pages = spec.max_iterations - len(sink.saved)
            if crawl is not None:  # the last crawl's checkpoint goes: this one begins
                progress.elapsed_s = crawl._elapsed()
                crawl = None
                await rec.commit()
                await ctx.store.reset_frontier(job.job_id, state())
        budget = progress.max_pages or spec.max_iterations
        crawl = ctx.crawl(job, rec, judge, url, sink, max_pages=budget)
        if restoring:
            assert checkpoint is not None
            await crawl.restore(msgspec.structs.replace(checkpoint, state=progress.crawl))
        if progress.elapsed_s and (not restoring or progress.crawl is None):
            crawl.elapsed_before = progress.elapsed_s  # the time of the crawls before
        rec.crawl_state = state
        try:
            outcome = await crawl.run()
        except JobFailed as exc:
            progress.failures.append(exc.message)
            rec.error(exc.error_type, exc.message, url)
            continue
        if outcome.reason == "interrupted":
            return None  # the daemon is stopping; the job resumes at the next start
        progress.reasons.append(outcome.reason)
    if not sink.saved:
        raise JobFailed("scrape_failed", "; ".join(progress.failures) or "no page could be saved")
    reasons = progress.reasons
    if "timeout" in reasons:
        finish = "timeout"
    elif sink.full or "max_pages" in reasons:
        finish = "max_iterations"
    else:
        finish = "no_more_links"
    output.finish_reason = finish
    output.llm_calls, output.input_tokens, output.output_tokens = usage()
    await ctx.finish(job, rec, output)
    return f"Scraping completed: {len(sink.saved)} page(s) saved ({finish})"


def _question(spec: DocsSpec) -> str:
    name = spec.application_name
    if name and spec.application_version not in ("", "current"):
        name += f" {spec.application_version}"
    subject = f"the documentation of {name}" if name else "the documentation this page is part of"
    wanted = f" ({spec.prompt})" if spec.prompt else ""
    return (
        f"Which of these links lead to pages of {subject}{wanted}: "
        "manuals, guides, references, installation or configuration pages? Answer with the "
        "numbers of those links only; leave out blog posts, news, pricing, login and "
        "marketing pages unless they document the application."
    )
