"""Skop's kind: crawl the website for the documents the prompt asks for."""

from __future__ import annotations

from skopd.crawl.engine import JobFailed
from skopd.crawl.recorder import Recorder
from skopd.kinds.runner import KindRunner
from skopd.models import Job
from skopd.relevance.backend import RelevanceUnavailable

NOTES = {
    "completed": "",
    "max_pages": " (stopped at max_pages)",
    "timeout": " (stopped at the timeout)",
}


async def run(ctx: KindRunner, job: Job, rec: Recorder, resumed: bool = False) -> str | None:
    """The final message; from the job's checkpoint when `resumed`. None when the daemon
    stopped it (it resumes at the next start)."""
    try:
        judge = await ctx.relevance.for_job(rec.warning)
    except RelevanceUnavailable as exc:
        raise JobFailed("relevance_unavailable", str(exc)) from exc
    rec.update(relevance_backend=judge.name, model=judge.model)
    crawl = ctx.crawl(job, rec, judge)
    if resumed:
        await crawl.restore(await ctx.store.checkpoint(job.job_id))
    outcome = await crawl.run()
    if outcome.reason == "interrupted":
        return None
    found = job.total_documents_found
    return f"Job completed successfully. Found {found} document(s){NOTES[outcome.reason]}."
