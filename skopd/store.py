"""The only module that speaks SQL: jobs, pages, candidates, documents, errors, warnings.

One writer connection (SQLite allows one writer; a second one gets "database is locked")
and one reader connection, both in WAL mode so reads never wait for the crawl's writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from skopd.events import Event
from skopd.models import (
    ChunkOut,
    Job,
    JobErrorInfo,
    JobKind,
    JobOutput,
    JobStatus,
    PageContent,
    PageSummary,
    Parameters,
    Screenshot,
    Spec,
    StoredDocument,
)

_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        website TEXT NOT NULL,
        prompt TEXT NOT NULL,
        parameters TEXT NOT NULL,
        status TEXT NOT NULL,
        message TEXT NOT NULL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        completed_at TEXT,
        estimated_completion TEXT,
        progress REAL,
        current_agent TEXT,
        agents_completed TEXT NOT NULL DEFAULT '[]',
        total_pages_crawled INTEGER NOT NULL DEFAULT 0,
        total_documents_found INTEGER NOT NULL DEFAULT 0,
        total_documents_downloaded INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_owner_seq ON jobs (owner, seq);
    CREATE INDEX jobs_status ON jobs (status);
    CREATE TABLE pages (
        job_id TEXT NOT NULL,
        url TEXT NOT NULL,
        http_status INTEGER,
        depth INTEGER NOT NULL,
        links INTEGER NOT NULL,
        elapsed_ms INTEGER NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE INDEX pages_job ON pages (job_id);
    CREATE TABLE candidates (
        job_id TEXT NOT NULL,
        url TEXT NOT NULL,
        source_page TEXT NOT NULL,
        name TEXT NOT NULL,
        document_type TEXT NOT NULL,
        confidence_score REAL NOT NULL,
        decision TEXT NOT NULL,
        document_id TEXT,
        decided_at TEXT NOT NULL
    );
    CREATE INDEX candidates_job ON candidates (job_id);
    CREATE TABLE documents (
        job_id TEXT NOT NULL,
        document_id TEXT NOT NULL,
        name TEXT NOT NULL,
        url TEXT NOT NULL,
        source_page TEXT NOT NULL,
        document_type TEXT NOT NULL,
        confidence_score REAL NOT NULL,
        size_bytes INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        file_name TEXT NOT NULL,
        extracted_at TEXT NOT NULL,
        PRIMARY KEY (job_id, document_id)
    );
    CREATE TABLE errors (
        job_id TEXT NOT NULL,
        error_id TEXT NOT NULL,
        agent_name TEXT NOT NULL,
        error_type TEXT NOT NULL,
        error_message TEXT NOT NULL,
        page_url TEXT,
        timestamp TEXT NOT NULL,
        is_recoverable INTEGER NOT NULL
    );
    CREATE INDEX errors_job ON errors (job_id);
    CREATE TABLE warnings (
        job_id TEXT NOT NULL,
        message TEXT NOT NULL,
        timestamp TEXT NOT NULL
    );
    CREATE INDEX warnings_job ON warnings (job_id);
    """,
    """
    CREATE TABLE events (
        job_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        name TEXT NOT NULL,
        frame BLOB NOT NULL,
        PRIMARY KEY (job_id, seq)
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE jobs ADD COLUMN relevance_backend TEXT;
    ALTER TABLE jobs ADD COLUMN model TEXT;
    ALTER TABLE jobs ADD COLUMN llm_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN input_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN output_tokens INTEGER NOT NULL DEFAULT 0;
    """,
    """
    ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'documents';
    ALTER TABLE jobs ADD COLUMN spec TEXT;
    ALTER TABLE jobs ADD COLUMN cache_key TEXT;
    ALTER TABLE jobs ADD COLUMN session_id TEXT;
    CREATE INDEX jobs_cache_key ON jobs (cache_key, seq) WHERE cache_key IS NOT NULL;
    CREATE INDEX jobs_session ON jobs (session_id, seq) WHERE session_id IS NOT NULL;
    CREATE TABLE page_contents (
        job_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        url TEXT NOT NULL,
        title TEXT NOT NULL,
        markdown TEXT NOT NULL,
        chunks TEXT NOT NULL,
        chunk_count INTEGER NOT NULL,
        success INTEGER NOT NULL,
        error TEXT,
        scraped_at TEXT NOT NULL,
        PRIMARY KEY (job_id, position)
    ) WITHOUT ROWID;
    CREATE TABLE job_outputs (
        job_id TEXT PRIMARY KEY,
        output TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # The crawl's checkpoint: one row per URL the crawl has seen (its frontier entry while it
    # waits, then done), and the engine's own counters, written with each flush.
    """
    CREATE TABLE frontier (
        job_id TEXT NOT NULL,
        key TEXT NOT NULL,
        state INTEGER NOT NULL,
        priority REAL,
        ord INTEGER,
        kind TEXT,
        item BLOB,
        PRIMARY KEY (job_id, key)
    ) WITHOUT ROWID;
    ALTER TABLE jobs ADD COLUMN crawl_state BLOB;
    """,
    """
    ALTER TABLE pages ADD COLUMN engine TEXT NOT NULL DEFAULT 'http';
    ALTER TABLE jobs ADD COLUMN pages_rendered INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE screenshots (
        job_id TEXT NOT NULL,
        screenshot_id TEXT NOT NULL,
        url TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        file_name TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        PRIMARY KEY (job_id, screenshot_id)
    );
    """,
)

_JOB_TABLES = (
    "pages",
    "candidates",
    "documents",
    "screenshots",
    "errors",
    "warnings",
    "events",
    "page_contents",
    "job_outputs",
    "frontier",
    "jobs",
)
_JOB_COLUMNS = (
    "seq job_id owner website prompt parameters status message created_at started_at "
    "completed_at estimated_completion progress current_agent agents_completed "
    "total_pages_crawled total_documents_found total_documents_downloaded "
    "relevance_backend model llm_calls input_tokens output_tokens kind spec cache_key session_id "
    "pages_rendered"
).split()
_UPDATABLE = frozenset(_JOB_COLUMNS) - {
    "seq",
    "job_id",
    "owner",
    "website",
    "prompt",
    "kind",
    "spec",
    "cache_key",
    "session_id",
}


def _settle(ended: asyncio.Future[None]) -> None:
    if not ended.done():
        ended.set_result(None)


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _encode(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return _ts(value)
    if name == "parameters" or (name == "spec" and value is not None):
        return msgspec.json.encode(value).decode()
    if name == "agents_completed":
        return msgspec.json.encode(list(value)).decode()
    if isinstance(value, JobStatus | JobKind):
        return value.value
    return value


def _job(row: sqlite3.Row) -> Job:
    created = _dt(row["created_at"])
    assert created is not None
    return Job(
        seq=row["seq"],
        job_id=row["job_id"],
        owner=row["owner"],
        website=row["website"],
        prompt=row["prompt"],
        parameters=msgspec.json.decode(row["parameters"], type=Parameters),
        status=JobStatus(row["status"]),
        message=row["message"],
        created_at=created,
        started_at=_dt(row["started_at"]),
        completed_at=_dt(row["completed_at"]),
        estimated_completion=_dt(row["estimated_completion"]),
        progress=row["progress"],
        current_agent=row["current_agent"],
        agents_completed=msgspec.json.decode(row["agents_completed"], type=list[str]),
        total_pages_crawled=row["total_pages_crawled"],
        total_documents_found=row["total_documents_found"],
        total_documents_downloaded=row["total_documents_downloaded"],
        relevance_backend=row["relevance_backend"],
        model=row["model"],
        llm_calls=row["llm_calls"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        kind=JobKind(row["kind"]),
        spec=None if row["spec"] is None else msgspec.json.decode(row["spec"], type=Spec),
        cache_key=row["cache_key"],
        session_id=row["session_id"],
        pages_rendered=row["pages_rendered"],
    )


_INSERT_DOCUMENT = (
    f"INSERT INTO documents ({', '.join(StoredDocument.__struct_fields__)}) "
    f"VALUES ({', '.join('?' * len(StoredDocument.__struct_fields__))})"
)


_INSERT_SCREENSHOT = (
    f"INSERT INTO screenshots ({', '.join(Screenshot.__struct_fields__)}) "
    f"VALUES ({', '.join('?' * len(Screenshot.__struct_fields__))})"
)


def _document_values(doc: StoredDocument | Screenshot) -> list[Any]:
    return [_encode(f, getattr(doc, f)) for f in doc.__struct_fields__]


def _error_values(job_id: str, e: JobErrorInfo) -> tuple[Any, ...]:
    return (
        job_id,
        e.error_id,
        e.agent_name,
        e.error_type,
        e.error_message,
        e.page_url,
        _ts(e.timestamp),
        int(e.is_recoverable),
    )


class PageRow(msgspec.Struct, array_like=True):
    job_id: str
    url: str
    http_status: int | None
    depth: int
    links: int
    elapsed_ms: int
    fetched_at: str
    engine: str  # "http" or "browser"


class CandidateRow(msgspec.Struct, array_like=True):
    job_id: str
    url: str
    source_page: str
    name: str
    document_type: str
    confidence_score: float
    decision: str
    document_id: str | None
    decided_at: str


class FrontierRow(msgspec.Struct, array_like=True):
    """A URL the crawl has seen: SEEN (nothing to do), DEFERRED (a sitemap document waiting
    to be judged), QUEUED (work in the frontier, `item` holding what the engine needs to do
    it), DONE. A row only moves up that order."""

    key: str
    state: int
    priority: float | None = None
    ord: int | None = None
    kind: str | None = None
    item: bytes | None = None


SEEN, DEFERRED, QUEUED, DONE = 0, 1, 2, 3


class Checkpoint(msgspec.Struct):
    """What a crawl interrupted by a restart continues from."""

    state: bytes | None
    frontier: list[FrontierRow]
    decided: list[str]  # URLs of candidates with a decision
    pages: list[str]  # URLs of pages recorded
    documents: list[StoredDocument]


class ProgressBatch(msgspec.Struct):
    pages: list[PageRow] = msgspec.field(default_factory=list)
    candidates: list[CandidateRow] = msgspec.field(default_factory=list)
    documents: list[StoredDocument] = msgspec.field(default_factory=list)
    screenshots: list[Screenshot] = msgspec.field(default_factory=list)
    errors: list[JobErrorInfo] = msgspec.field(default_factory=list)
    warnings: list[tuple[str, datetime]] = msgspec.field(default_factory=list)
    events: list[Event] = msgspec.field(default_factory=list)
    job_fields: dict[str, Any] = msgspec.field(default_factory=dict)
    frontier: list[FrontierRow] = msgspec.field(default_factory=list)
    crawl_state: bytes | None = None


_UPSERT_FRONTIER = """
    INSERT INTO frontier VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (job_id, key) DO UPDATE SET
        priority = CASE WHEN excluded.state > frontier.state THEN excluded.priority
                        ELSE frontier.priority END,
        ord = CASE WHEN excluded.state > frontier.state THEN excluded.ord ELSE frontier.ord END,
        kind = CASE WHEN excluded.state > frontier.state THEN excluded.kind ELSE frontier.kind END,
        item = CASE WHEN excluded.state > frontier.state THEN excluded.item ELSE frontier.item END,
        state = max(excluded.state, frontier.state)
"""


class Snapshot(msgspec.Struct):
    job: Job
    errors: list[JobErrorInfo]
    warnings: list[str]
    documents: list[StoredDocument]
    screenshots: list[Screenshot] = msgspec.field(default_factory=list)
    last_seq: int = 0  # the job's last event in this snapshot (asked with with_seq)


class _Rows:
    """A query's rows, all read in one trip to its connection's thread (see _read)."""

    def __init__(self, rows: Iterable[sqlite3.Row]) -> None:
        self._rows = list(rows)

    async def fetchone(self) -> sqlite3.Row | None:
        return self._rows[0] if self._rows else None

    async def fetchall(self) -> list[sqlite3.Row]:
        return self._rows


@contextlib.asynccontextmanager
async def _read(
    conn: aiosqlite.Connection, sql: str, args: Sequence[Any] = ()
) -> AsyncIterator[_Rows]:
    """Run a query to its end in one trip to the connection's thread. A cursor read in
    several trips (execute, fetch, close) keeps its statement open between them, and with it
    a read transaction: every other read on the connection meanwhile sees that older
    snapshot (a job inserted a moment before is not there). One trip is also one loop turn
    of waiting instead of three, on a loop busy crawling."""
    yield _Rows(await conn.execute_fetchall(sql, args))


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # Snapshots hold a read transaction open across several queries: on a connection of
        # their own, or every other read interleaved with one would see its stale view.
        self._snapshots: aiosqlite.Connection | None = None
        # Writes need no lock: the writer's thread runs one call at a time, in the order they
        # were made, and a transaction is one call (see _atomic).
        # A snapshot is BEGIN ... COMMIT on its own connection: one at a time.
        self._read_lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        await self._migrate(self._writer)
        self._reader = await self._connect()
        self._snapshots = await self._connect()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = row[0] if row else 0
        if version > len(_MIGRATIONS):
            raise RuntimeError(
                f"database {self.path} has schema version {version}, newer than this "
                f"skopd understands ({len(_MIGRATIONS)})"
            )
        for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
            await conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    async def close(self) -> None:
        for conn in (self._snapshots, self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._snapshots = self._reader = self._writer = None

    @property
    def w(self) -> aiosqlite.Connection:
        assert self._writer is not None, "store is not open"
        return self._writer

    @property
    def r(self) -> aiosqlite.Connection:
        assert self._reader is not None, "store is not open"
        return self._reader

    async def ping(self) -> bool:
        async with _read(self.r, "SELECT 1") as cur:
            return (await cur.fetchone()) is not None

    # -- jobs -------------------------------------------------------------

    async def insert_job(
        self,
        job: Job,
        first: ProgressBatch | None = None,
        committed: Callable[[], None] | None = None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> int:
        """Store a new job's row, and with it (same transaction) the `first` records of its
        recorder and what `also` writes; returns its seq. `committed` as in record_progress."""
        seq: list[int] = []

        def write(conn: sqlite3.Connection) -> None:
            seq.append(_insert_job_row(conn, job))
            if first is not None:
                _write_progress(conn, job.job_id, first)
            if also is not None:
                also(conn)

        await self._atomic(write, committed)
        return seq[0]

    @staticmethod
    def stored_answer(
        source_job: str, job_id: str, output: JobOutput
    ) -> Callable[[sqlite3.Connection], None]:
        """For insert_job's `also`: a cache hit's answer, the saved pages of `source_job`
        copied to `job_id` and its `output`, in the transaction that stores the job, so a
        restart finds no such job or a completed one, never a half-copied job it would crawl."""

        def write(conn: sqlite3.Connection) -> None:
            _copy_pages(conn, source_job, job_id)
            _write_output(conn, job_id, output)

        return write

    async def get_job(self, job_id: str, conn: aiosqlite.Connection | None = None) -> Job | None:
        async with _read(conn or self.r, "SELECT * FROM jobs WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _job(row)

    async def list_jobs(
        self,
        owner: str,
        status: JobStatus | None,
        limit: int,
        before_seq: int | None,
        kind: JobKind | None = None,
        offset: int = 0,
        conn: aiosqlite.Connection | None = None,
    ) -> list[Job]:
        where, args = _job_filter(owner, status, kind)
        if before_seq is not None:
            where += " AND seq < ?"
            args.append(before_seq)
        async with _read(
            conn or self.r,
            f"SELECT * FROM jobs WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ) as cur:
            return [_job(row) for row in await cur.fetchall()]

    async def count_jobs(
        self,
        owner: str,
        status: JobStatus | None,
        kind: JobKind | None,
        conn: aiosqlite.Connection | None = None,
    ) -> int:
        where, args = _job_filter(owner, status, kind)
        async with _read(conn or self.r, f"SELECT count(*) FROM jobs WHERE {where}", args) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def cached_job(self, cache_key: str, since: datetime) -> Job | None:
        """The newest completed crawl with this cache key that ended at `since` or later.
        Only a job that crawled is a source: a cache hit is not (hits are stored without a
        key, and those of an older skopd, which kept it, are recognised by their answer), or
        each hit would start the window again and the site would never be read again while
        hits keep coming."""
        async with _read(
            self.r,
            "SELECT * FROM jobs WHERE cache_key = ? AND status = ? AND NOT EXISTS ("
            "SELECT 1 FROM job_outputs o WHERE o.job_id = jobs.job_id "
            "AND json_extract(o.output, '$.cache_hit') = 1) ORDER BY seq DESC LIMIT 1",
            (cache_key, JobStatus.COMPLETED.value),
        ) as cur:
            row = await cur.fetchone()
        job = None if row is None else _job(row)
        if job is None or job.completed_at is None or job.completed_at < since:
            return None
        return job

    async def jobs_with_status(self, status: JobStatus) -> list[Job]:
        async with _read(
            self.r, "SELECT * FROM jobs WHERE status = ? ORDER BY seq", (status.value,)
        ) as cur:
            return [_job(row) for row in await cur.fetchall()]

    async def delete_job(self, job_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            for table in _JOB_TABLES:
                conn.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))

        await self._atomic(delete)

    async def _atomic(
        self,
        body: Callable[[sqlite3.Connection], None],
        committed: Callable[[], None] | None = None,
    ) -> None:
        """Run `body` as one transaction, whole, on the writer's thread; `committed` is called
        on the loop once it is in the store, before this returns.

        One call to the thread, and the caller waits for it directly: under a busy event loop
        every hop, task or shield between the thread and the caller costs a full loop turn
        (a turn of a crawl is several pages' work), and every write waits that long. The
        thread runs calls one at a time in the order made, so transactions never interleave,
        and `committed` callbacks run in commit order. aiosqlite has no public call for this,
        hence its `_execute` (the versions are bounded in pyproject.toml). The thread
        finishes the transaction even when the awaiting task is cancelled: the caller then
        still returns only once it has ended.
        """
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def transaction(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("BEGIN")
                try:
                    body(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                if committed is not None:  # before the caller's wake-up, which follows
                    loop.call_soon_threadsafe(committed)
            finally:
                loop.call_soon_threadsafe(_settle, ended)

        writer = self.w
        try:
            await writer._execute(transaction, writer._conn)  # type: ignore[no-untyped-call]
        except asyncio.CancelledError:
            # However often the caller is cancelled meanwhile (two cancels of a job, a cancel
            # during shutdown), it returns only once the transaction has ended.
            while not ended.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(ended)
            raise

    # -- crawl records ----------------------------------------------------

    async def record_progress(
        self, job_id: str, batch: ProgressBatch, committed: Callable[[], None] | None = None
    ) -> None:
        """One transaction: what a job did since the last call, with its counters.

        Documents and the counters that count them change together, so the status and the
        results endpoints never disagree. `committed` runs on the loop once the transaction
        is in the store (even when the caller was cancelled meanwhile), in commit order.
        """

        def write(conn: sqlite3.Connection) -> None:
            _write_progress(conn, job_id, batch)

        await self._atomic(write, committed)

    async def checkpoint(self, job_id: str) -> Checkpoint:
        """A crawl's checkpoint, read on the writer's connection: nothing of it is in flight."""
        conn = self.w
        async with _read(conn, "SELECT crawl_state FROM jobs WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        async with _read(
            conn,
            "SELECT key, state, priority, ord, kind, item FROM frontier WHERE job_id = ? "
            "ORDER BY ord",
            (job_id,),
        ) as cur:
            frontier = [FrontierRow(*r) for r in await cur.fetchall()]
        async with _read(conn, "SELECT url FROM candidates WHERE job_id = ?", (job_id,)) as cur:
            decided = [r[0] for r in await cur.fetchall()]
        async with _read(conn, "SELECT url FROM pages WHERE job_id = ?", (job_id,)) as cur:
            pages = [r[0] for r in await cur.fetchall()]
        return Checkpoint(
            state=row[0] if row else None,
            frontier=frontier,
            decided=decided,
            pages=pages,
            documents=await self.documents(job_id, conn),
        )

    async def snapshot(
        self, job_id: str, with_documents: bool = False, with_seq: bool = False
    ) -> Snapshot | None:
        """The job, its errors, warnings and (optionally) documents, all as of one moment;
        `with_seq`: and, for an active job, the last of its events in that moment."""
        task = asyncio.ensure_future(self._snapshot(job_id, with_documents, with_seq))
        return await asyncio.shield(task)

    async def _snapshot(
        self, job_id: str, with_documents: bool, with_seq: bool = False
    ) -> Snapshot | None:
        conn = self._snapshots
        assert conn is not None, "store is not open"
        async with self._read_lock:
            await conn.execute("BEGIN")
            try:
                job = await self.get_job(job_id, conn)
                if job is None:
                    return None
                return Snapshot(
                    job=job,
                    errors=await self.errors(job_id, conn),
                    warnings=await self.warnings(job_id, conn),
                    documents=await self.documents(job_id, conn) if with_documents else [],
                    screenshots=await self.screenshots(job_id, conn) if with_documents else [],
                    last_seq=await self._last_seq(job_id, conn)
                    if with_seq and job.status.is_active
                    else 0,
                )
            finally:
                await conn.execute("COMMIT")

    async def job_listing(
        self, owner: str, status: JobStatus | None, kind: JobKind | None, limit: int, offset: int
    ) -> tuple[int, list[tuple[Snapshot, JobOutput | None]]]:
        """How many of the owner's jobs match, and a page of them (newest first), as of one
        moment: each with its fatal errors only (what a listing says of a failure) and its
        answer when completed. Four queries in one read transaction, whatever the page's size."""
        task = asyncio.ensure_future(self._job_listing(owner, status, kind, limit, offset))
        return await asyncio.shield(task)

    async def _job_listing(
        self, owner: str, status: JobStatus | None, kind: JobKind | None, limit: int, offset: int
    ) -> tuple[int, list[tuple[Snapshot, JobOutput | None]]]:
        conn = self._snapshots
        assert conn is not None, "store is not open"
        async with self._read_lock:
            await conn.execute("BEGIN")
            try:
                total = await self.count_jobs(owner, status, kind, conn)
                jobs = await self.list_jobs(owner, status, limit, None, kind, offset, conn)
                ids = [job.job_id for job in jobs]
                marks = ", ".join("?" * len(ids))
                fatal: dict[str, list[JobErrorInfo]] = {i: [] for i in ids}
                outputs: dict[str, JobOutput] = {}
                if ids:
                    async with _read(
                        conn,
                        f"SELECT * FROM errors WHERE job_id IN ({marks}) AND is_recoverable = 0 "
                        "ORDER BY rowid",
                        ids,
                    ) as cur:
                        for r in await cur.fetchall():
                            fatal[r["job_id"]].append(_error_info(r))
                    async with _read(
                        conn,
                        f"SELECT o.job_id, o.output FROM job_outputs o JOIN jobs j USING (job_id) "
                        f"WHERE o.job_id IN ({marks}) AND j.status = ?",
                        [*ids, JobStatus.COMPLETED.value],
                    ) as cur:
                        for r in await cur.fetchall():
                            outputs[r[0]] = msgspec.json.decode(r[1], type=JobOutput)
            finally:
                await conn.execute("COMMIT")
        listed = [
            (Snapshot(job, fatal[job.job_id], [], []), outputs.get(job.job_id)) for job in jobs
        ]
        return total, listed

    async def events_after(
        self, job_id: str, after: int, limit: int = 1000
    ) -> list[tuple[int, str, bytes]]:
        """(seq, name, SSE frame) of the job's events after `after`, in order."""
        async with _read(
            self.r,
            "SELECT seq, name, frame FROM events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
            (job_id, after, limit),
        ) as cur:
            return [(row[0], row[1], row[2]) for row in await cur.fetchall()]

    async def last_event_seq(self, job_id: str) -> int:
        return await self._last_seq(job_id, self.r)

    async def _last_seq(self, job_id: str, conn: aiosqlite.Connection) -> int:
        async with _read(conn, "SELECT max(seq) FROM events WHERE job_id = ?", (job_id,)) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # -- page contents, outputs and sessions (the other faces' kinds) -------

    async def save_page(self, job_id: str, page: PageContent) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO page_contents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    page.position,
                    page.url,
                    page.title,
                    page.markdown,
                    msgspec.json.encode(page.chunks).decode(),
                    len(page.chunks),
                    int(page.success),
                    page.error,
                    _ts(page.scraped_at),
                ),
            )

        await self._atomic(write)

    async def pages_of(self, job_id: str, url: str | None = None) -> list[PageContent]:
        """The job's saved pages in the order they were fetched (or the one at `url`)."""
        sql = "SELECT * FROM page_contents WHERE job_id = ?"
        args: list[Any] = [job_id]
        if url is not None:
            sql += " AND url = ?"
            args.append(url)
        async with _read(self.r, sql + " ORDER BY position", args) as cur:
            return [_page_content(row) for row in await cur.fetchall()]

    async def page_summaries(self, job_id: str) -> list[PageSummary]:
        """The job's saved pages without their text: for status views polled often."""
        async with _read(
            self.r,
            "SELECT url, title, chunk_count, success, error, scraped_at FROM page_contents "
            "WHERE job_id = ? ORDER BY position",
            (job_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [
            PageSummary(
                url=row["url"],
                title=row["title"],
                chunk_count=row["chunk_count"],
                success=bool(row["success"]),
                error=row["error"],
                scraped_at=_dt(row["scraped_at"]) or datetime.min,
            )
            for row in rows
        ]

    async def saved_pages(self, job_id: str) -> list[tuple[int, str, bool]]:
        """(position, url, success) of the job's saved pages, read on the writer's connection
        (as `checkpoint`): what a resumed job continues from."""
        async with _read(
            self.w,
            "SELECT position, url, success FROM page_contents WHERE job_id = ? ORDER BY position",
            (job_id,),
        ) as cur:
            return [(int(r[0]), str(r[1]), bool(r[2])) for r in await cur.fetchall()]

    async def clear_pages(self, job_id: str) -> None:
        """A job that does its pages again from the start: the ones saved before go."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM page_contents WHERE job_id = ?", (job_id,))

        await self._atomic(write)

    async def reset_frontier(self, job_id: str, crawl_state: bytes) -> None:
        """A job that begins another crawl (the next starter link of a docs job): the last
        crawl's checkpoint goes, and `crawl_state` says where the job is, in one transaction."""

        def write(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM frontier WHERE job_id = ?", (job_id,))
            conn.execute("UPDATE jobs SET crawl_state = ? WHERE job_id = ?", (crawl_state, job_id))

        await self._atomic(write)

    async def save_output(self, job_id: str, output: JobOutput) -> None:
        def write(conn: sqlite3.Connection) -> None:
            _write_output(conn, job_id, output)

        await self._atomic(write)

    async def output(self, job_id: str) -> JobOutput | None:
        async with _read(
            self.r, "SELECT output FROM job_outputs WHERE job_id = ?", (job_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else msgspec.json.decode(row[0], type=JobOutput)

    async def session_owner(self, session_id: str) -> str | None:
        async with _read(
            self.r, "SELECT owner FROM sessions WHERE session_id = ?", (session_id,)
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def create_session(self, session_id: str, owner: str, created_at: datetime) -> bool:
        """False when the session exists already (whoever owns it)."""
        created = False

        def write(conn: sqlite3.Connection) -> None:
            nonlocal created
            cur = conn.execute(
                "INSERT OR IGNORE INTO sessions VALUES (?, ?, ?)",
                (session_id, owner, _ts(created_at)),
            )
            created = cur.rowcount == 1

        await self._atomic(write)
        return created

    async def session_jobs(self, session_id: str, limit: int = 1) -> list[Job]:
        """The session's jobs, newest first."""
        async with _read(
            self.r,
            "SELECT * FROM jobs WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
            (session_id, limit),
        ) as cur:
            return [_job(row) for row in await cur.fetchall()]

    async def documents(
        self, job_id: str, conn: aiosqlite.Connection | None = None
    ) -> list[StoredDocument]:
        async with _read(
            conn or self.r,
            "SELECT * FROM documents WHERE job_id = ? ORDER BY confidence_score DESC, rowid",
            (job_id,),
        ) as cur:
            rows = await cur.fetchall()
        return [_document(row) for row in rows]

    async def get_document(self, job_id: str, document_id: str) -> StoredDocument | None:
        async with _read(
            self.r,
            "SELECT * FROM documents WHERE job_id = ? AND document_id = ?",
            (job_id, document_id),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _document(row)

    async def screenshots(
        self, job_id: str, conn: aiosqlite.Connection | None = None
    ) -> list[Screenshot]:
        async with _read(
            conn or self.r, "SELECT * FROM screenshots WHERE job_id = ? ORDER BY rowid", (job_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [_screenshot(row) for row in rows]

    async def get_screenshot(self, job_id: str, screenshot_id: str) -> Screenshot | None:
        async with _read(
            self.r,
            "SELECT * FROM screenshots WHERE job_id = ? AND screenshot_id = ?",
            (job_id, screenshot_id),
        ) as cur:
            row = await cur.fetchone()
        return None if row is None else _screenshot(row)

    async def errors(
        self, job_id: str, conn: aiosqlite.Connection | None = None
    ) -> list[JobErrorInfo]:
        async with _read(
            conn or self.r, "SELECT * FROM errors WHERE job_id = ? ORDER BY rowid", (job_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [_error_info(row) for row in rows]

    async def warnings(self, job_id: str, conn: aiosqlite.Connection | None = None) -> list[str]:
        async with _read(
            conn or self.r,
            "SELECT message FROM warnings WHERE job_id = ? ORDER BY rowid",
            (job_id,),
        ) as cur:
            return [row[0] for row in await cur.fetchall()]


def _insert_job_row(conn: sqlite3.Connection, job: Job) -> int:
    cols = [c for c in _JOB_COLUMNS if c != "seq"]
    values = [_encode(c, getattr(job, c)) for c in cols]
    cur = conn.execute(
        f"INSERT INTO jobs ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", values
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def _copy_pages(conn: sqlite3.Connection, source_job: str, job_id: str) -> None:
    """A cache hit: the new job answers with the saved pages of the job it reuses."""
    conn.execute(
        "INSERT INTO page_contents SELECT ?, position, url, title, markdown, chunks, "
        "chunk_count, success, error, scraped_at FROM page_contents WHERE job_id = ?",
        (job_id, source_job),
    )


def _write_output(conn: sqlite3.Connection, job_id: str, output: JobOutput) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO job_outputs VALUES (?, ?)",
        (job_id, msgspec.json.encode(output).decode()),
    )


def _write_progress(conn: sqlite3.Connection, job_id: str, batch: ProgressBatch) -> None:
    if batch.pages:
        conn.executemany(
            "INSERT INTO pages (job_id, url, http_status, depth, links, elapsed_ms, "
            "fetched_at, engine) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [msgspec.structs.astuple(p) for p in batch.pages],
        )
    if batch.candidates:
        conn.executemany(
            "INSERT INTO candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [msgspec.structs.astuple(c) for c in batch.candidates],
        )
    for doc in batch.documents:
        conn.execute(_INSERT_DOCUMENT, _document_values(doc))
    for shot in batch.screenshots:
        conn.execute(_INSERT_SCREENSHOT, _document_values(shot))
    if batch.errors:
        conn.executemany(
            "INSERT INTO errors VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [_error_values(job_id, e) for e in batch.errors],
        )
    if batch.warnings:
        conn.executemany(
            "INSERT INTO warnings VALUES (?, ?, ?)",
            [(job_id, m, _ts(t)) for m, t in batch.warnings],
        )
    if batch.events:
        conn.executemany(
            "INSERT INTO events VALUES (?, ?, ?, ?)",
            [(job_id, e.seq, e.name, e.frame) for e in batch.events],
        )
    if batch.frontier:
        rows = [(job_id, *msgspec.structs.astuple(f)) for f in batch.frontier]
        conn.executemany(_UPSERT_FRONTIER, rows)
    fields = dict(batch.job_fields)
    if batch.crawl_state is not None:
        fields["crawl_state"] = batch.crawl_state
    status = fields.get("status")
    if status is not None and not JobStatus(status).is_active:
        # An ended job never resumes: its checkpoint goes.
        conn.execute("DELETE FROM frontier WHERE job_id = ?", (job_id,))
        fields["crawl_state"] = None
    if fields:
        sets = ", ".join(f"{k} = ?" for k in fields)
        values = [_encode(k, v) for k, v in fields.items()]
        conn.execute(f"UPDATE jobs SET {sets} WHERE job_id = ?", [*values, job_id])


def _job_filter(
    owner: str, status: JobStatus | None, kind: JobKind | None
) -> tuple[str, list[Any]]:
    where = "owner = ?"
    args: list[Any] = [owner]
    if status is not None:
        where += " AND status = ?"
        args.append(status.value)
    if kind is not None:
        where += " AND kind = ?"
        args.append(kind.value)
    return where, args


def _error_info(row: sqlite3.Row) -> JobErrorInfo:
    return JobErrorInfo(
        error_id=row["error_id"],
        agent_name=row["agent_name"],
        error_type=row["error_type"],
        error_message=row["error_message"],
        page_url=row["page_url"],
        timestamp=_dt(row["timestamp"]) or datetime.min,
        is_recoverable=bool(row["is_recoverable"]),
    )


def _page_content(row: sqlite3.Row) -> PageContent:
    scraped = _dt(row["scraped_at"])
    assert scraped is not None
    return PageContent(
        position=row["position"],
        url=row["url"],
        title=row["title"],
        markdown=row["markdown"],
        chunks=msgspec.json.decode(row["chunks"], type=list[ChunkOut]),
        success=bool(row["success"]),
        error=row["error"],
        scraped_at=scraped,
    )


def _document(row: sqlite3.Row) -> StoredDocument:
    extracted = _dt(row["extracted_at"])
    assert extracted is not None
    return StoredDocument(
        job_id=row["job_id"],
        document_id=row["document_id"],
        name=row["name"],
        url=row["url"],
        source_page=row["source_page"],
        document_type=row["document_type"],
        confidence_score=row["confidence_score"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        file_name=row["file_name"],
        extracted_at=extracted,
    )


def _screenshot(row: sqlite3.Row) -> Screenshot:
    taken = _dt(row["taken_at"])
    assert taken is not None
    return Screenshot(
        job_id=row["job_id"],
        screenshot_id=row["screenshot_id"],
        url=row["url"],
        size_bytes=row["size_bytes"],
        file_name=row["file_name"],
        taken_at=taken,
    )
