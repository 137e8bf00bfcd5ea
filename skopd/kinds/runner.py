"""Runs the jobs of every kind but Skop's documents, on the same crawl engine, store and
recorder; the scheduler hands each such job here and records how it ended."""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from skopd.config import Config
from skopd.crawl.browser import BrowserPool
from skopd.crawl.engine import Crawl, DownloadLimits, JobFailed
from skopd.crawl.fetch import Downloader
from skopd.crawl.recorder import Recorder
from skopd.kinds.sink import ContentSink
from skopd.models import Job, JobKind, JobOutput
from skopd.relevance.backend import JobRelevance, Relevance
from skopd.store import Store

if TYPE_CHECKING:
    from skopd.content.extract import Extraction, Extractor

MODEL_NEEDED = (
    "the page has no structured data (JSON-LD, microdata or a table) that fits the schema, "
    "and extracting it needs a local model"
)


class KindRunner:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        downloader: Downloader,
        relevance: Relevance,
        documents_dir: Path,
        browser: BrowserPool | None = None,
    ) -> None:
        self.cfg = cfg
        self.browser = browser  # pages that need JavaScript are rendered, as for documents
        self.store = store
        self.downloader = downloader
        self.relevance = relevance
        self.documents_dir = documents_dir
        self._extractor: Extractor | None = None
        # The daemon is stopping: crawls take no new work, and jobs return None (see run).
        self.stopping = False
        self._crawls: weakref.WeakSet[Crawl] = weakref.WeakSet()

    def extractor(self) -> Extractor:
        """One per daemon, made when a job first needs the model."""
        if self._extractor is None:
            from skopd.content.extract import Extractor

            # The relevance backend's line to the model, when it has one: one bound on calls.
            self._extractor = Extractor(self.cfg.relevance, self.relevance.ollama)
        return self._extractor

    async def close(self) -> None:
        if self._extractor is not None:
            await self._extractor.close()
            self._extractor = None

    def stop(self) -> None:
        """The daemon is stopping: running crawls take no new work; jobs stay in_progress."""
        self.stopping = True
        for crawl in list(self._crawls):
            crawl.stop()

    async def run(self, job: Job, rec: Recorder, resumed: bool = False) -> str | None:
        """Run `job` to its end; the final message. Raises JobFailed when it cannot be done.
        None when the daemon stopped it: it stays in_progress and resumes at the next start
        (`resumed`), keeping or doing again what it did before, so that it ends as a run
        never interrupted would."""
        from skopd.kinds import docs, documents, extract, pages

        runners = {
            JobKind.DOCUMENTS: documents.run,
            JobKind.PAGES: pages.run,
            JobKind.EXTRACT: extract.run,
            JobKind.DOCS: docs.run,
        }
        return await runners[job.kind](self, job, rec, resumed)

    def crawl(
        self,
        job: Job,
        rec: Recorder,
        judge: JobRelevance,
        website: str | None = None,
        sink: ContentSink | None = None,
        **limits: Any,
    ) -> Crawl:
        """A crawl of `website` (the job's own by default) for `job`, its pages going to
        `sink` when given (documents are looked for otherwise)."""
        view = job
        if website is not None or limits:
            params = msgspec.structs.replace(job.parameters, **limits)
            view = msgspec.structs.replace(job, website=website or job.website, parameters=params)
        crawl = Crawl(
            view,
            rec,
            self.downloader,
            judge,
            self.documents_dir,
            self.cfg.relevance,
            sink=sink,
            limits=DownloadLimits.of(self.cfg),
            browser=self.browser,
        )
        self._crawls.add(crawl)
        if self.stopping:
            crawl.stop()
        return crawl

    async def rendering(self, job: Job, rec: Recorder) -> dict[str, Any]:
        """Crawl limits that differ from the job's: a job that asks for the browser (every
        page rendered, screenshots) reads static HTML, with a warning, when there is none.
        Its crawls then render nothing ("never"): a shell page would add a second warning,
        and a Chromium back within the job would make this one untrue."""
        if job.parameters.render_js != "always":
            return {}
        reason = "no browser" if self.browser is None else await self.browser.available()
        if reason is None:
            return {}
        rec.warning(f"pages were read without a browser ({reason}); no screenshots")
        return {"render_js": "never", "screenshot": False}

    @staticmethod
    def engine_used(job: Job) -> str:
        """static, browser or hybrid: how the job's pages were read."""
        if job.pages_rendered == 0:
            return "static"
        return "browser" if job.pages_rendered >= job.total_pages_crawled else "hybrid"

    @staticmethod
    def lexical(rec: Recorder) -> JobRelevance:
        """The judge of kinds that judge no links: the built-in scorer, no model calls."""
        return JobRelevance(rec.warning)

    async def finish(self, job: Job, rec: Recorder, output: JobOutput) -> None:
        """Store what the job answers with, before its final state is recorded."""
        output.engine_used = self.engine_used(rec.job)
        rec.usage(output.llm_calls, output.input_tokens, output.output_tokens)
        await self.store.save_output(job.job_id, output)


def add_usage(output: JobOutput, ex: Extraction, rec: Recorder | None = None) -> None:
    """Count an extraction's model use, and tell the job (when given) what it left out or cut."""
    if rec is not None:
        for warning in ex.warnings:
            rec.warning(f"extraction: {warning}")
    output.llm_calls += ex.llm_calls
    output.input_tokens += ex.input_tokens
    output.output_tokens += ex.output_tokens


__all__ = ["MODEL_NEEDED", "JobFailed", "KindRunner", "add_usage"]
