"""What a running job has done, buffered and written to the store in batches.

The crawl records every page and decided candidate here; a flush writes them with the job's
counters in one transaction, at most every `FLUSH_INTERVAL_S` (and at once for documents,
so results appear as soon as they are stored).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from skopd.models import Job, JobErrorInfo, StoredDocument, new_id, utcnow
from skopd.store import CandidateRow, PageRow, ProgressBatch, Store

log = logging.getLogger("skopd.job")

FLUSH_INTERVAL_S = 0.5
MAX_ERRORS_STORED = 200


class Recorder:
    def __init__(self, store: Store, job: Job) -> None:
        self.store = store
        self.job = job
        self.pages_crawled = 0
        self.documents_found = 0
        self.documents_downloaded = 0
        self.errors_total = 0
        self.current_agent: str | None = None
        self.agents_completed: list[str] = []
        self.progress = 0.0
        self.estimated_completion: datetime | None = None
        self._batch = ProgressBatch()
        self._warned: set[str] = set()
        self._dirty = False
        self._lock = asyncio.Lock()

    def page(self, url: str, status: int | None, depth: int, links: int, elapsed_ms: int) -> None:
        self.pages_crawled += 1
        self._batch.pages.append(
            PageRow(self.job.job_id, url, status, depth, links, elapsed_ms, _now_text())
        )
        self._dirty = True

    def candidate(
        self,
        url: str,
        source_page: str,
        name: str,
        doc_type: str,
        score: float,
        decision: str,
        document_id: str | None = None,
    ) -> None:
        if decision in ("downloaded", "too_large"):
            self.documents_found += 1
        self._batch.candidates.append(
            CandidateRow(
                self.job.job_id,
                url,
                source_page,
                name,
                doc_type,
                score,
                decision,
                document_id,
                _now_text(),
            )
        )
        self._dirty = True

    def document(self, doc: StoredDocument) -> None:
        self.documents_downloaded += 1
        self._batch.documents.append(doc)
        self._dirty = True

    def error(
        self,
        error_type: str,
        message: str,
        page_url: str | None,
        agent: str | None = None,
        recoverable: bool = True,
    ) -> None:
        self.errors_total += 1
        if self.errors_total > MAX_ERRORS_STORED:
            self.warning(f"more than {MAX_ERRORS_STORED} errors; later ones are not listed")
            return
        self._batch.errors.append(
            JobErrorInfo(
                error_id=new_id("err"),
                agent_name=agent or self.current_agent or "navigator",
                error_type=error_type,
                error_message=message,
                page_url=page_url,
                timestamp=utcnow(),
                is_recoverable=recoverable,
            )
        )
        self._dirty = True

    def warning(self, message: str) -> None:
        """Each distinct warning once per job."""
        if message in self._warned:
            return
        self._warned.add(message)
        self._batch.warnings.append((message, utcnow()))
        self._dirty = True

    def enter(self, agent: str) -> None:
        if self.current_agent and self.current_agent not in self.agents_completed:
            self.agents_completed.append(self.current_agent)
        self.current_agent = agent
        self._dirty = True
        log.info("job %s agent=%s", self.job.job_id, agent)

    def finish_agents(self) -> None:
        if self.current_agent and self.current_agent not in self.agents_completed:
            self.agents_completed.append(self.current_agent)
        self.current_agent = None
        self._dirty = True

    def estimate(self, fraction: float) -> None:
        """Progress 0-100 from the fraction of the work done, and the ETA it implies."""
        fraction = min(max(fraction, 0.0), 1.0)
        self.progress = max(self.progress, round(100 * fraction, 1))
        started = self.job.started_at
        if started is not None and fraction >= 0.02:
            elapsed = (utcnow() - started).total_seconds()
            eta = started + timedelta(seconds=elapsed / fraction)
            limit = started + timedelta(seconds=self.job.parameters.timeout)
            self.estimated_completion = min(eta, limit)

    def job_fields(self) -> dict[str, Any]:
        return {
            "total_pages_crawled": self.pages_crawled,
            "total_documents_found": self.documents_found,
            "total_documents_downloaded": self.documents_downloaded,
            "current_agent": self.current_agent,
            "agents_completed": self.agents_completed,
            "progress": self.progress,
            "estimated_completion": self.estimated_completion,
        }

    async def flush(self, extra: dict[str, Any] | None = None) -> None:
        """Write what was recorded since the last flush; `extra` job fields win over counters."""
        async with self._lock:
            if not self._dirty and not extra:
                return
            batch, self._batch = self._batch, ProgressBatch()
            self._dirty = False
            batch.job_fields = self.job_fields()
            if extra:
                batch.job_fields.update(extra)
            await self.store.record_progress(self.job.job_id, batch)

    async def flush_every(self, interval: float = FLUSH_INTERVAL_S) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.flush()


def _now_text() -> str:
    return utcnow().isoformat().replace("+00:00", "Z")
