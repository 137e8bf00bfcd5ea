"""Live-progress fan-out: one crawl followed by many SSE subscribers, against the same crawl alone.

Run from the repository root: ``.venv/bin/python bench/sse_bench.py [--subscribers N]``.
The synthetic site (sitegen.py) and the subscribers each run in a process of their own, so
neither is charged to the daemon; they share the machine's CPUs with it, so the subscribers
read on bare sockets (on uvloop's event loop, a dependency of skopd's) to take
as little CPU from the daemon as they can. Each round crawls the site alone, then with the
subscribers joining as the job starts, then with them connected before it starts; the summary
gives every target met or missed, and how much other work shared the CPUs. Prints figures;
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import multiprocessing
import os
import queue
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, cast
from urllib.parse import urlsplit

from aiohttp import web
from crawl_bench import SkopdFailed, call, free_port, memory_mb
from sitegen import PROMPT, make_bench_site

POLL_S = 0.2
JOB_TIMEOUT_S = 3600
FD_SPARE = 256  # the daemon's database, log, listening socket and crawl connections
RESULT_WAIT_S = 300.0
ERRORS_SHOWN = 3
MAX_RESUMES = 50  # reconnections per subscriber before it gives up
_T = TypeVar("_T")
QUIET_SHARE = 0.05  # other processes using more of the CPUs than this make figures noisy
HANG_PATH = "hang"  # a start page that never answers: a job on it holds the only job slot

# ------------------------------------------- the site and the daemon (as in crawl_bench.py)


def _serve(n_pages: int, seed: int, ready: Queue[int]) -> None:
    async def hang(_: web.Request) -> web.StreamResponse:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def run() -> None:
        app = make_bench_site(n_pages, seed)
        app.router.add_get(f"/{HANG_PATH}", hang)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        ready.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


def _cpu_s(pid: int) -> tuple[float, float]:
    """(user + system, system) CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, int(fields[12]) / tick


def _raise_fd_limit(need: int) -> int:
    """Lift this process's soft RLIMIT_NOFILE towards `need` (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


@dataclass
class JobRun:
    status: dict[str, Any]
    cpu_s: float  # the daemon's, from the job's start until the bench saw it end
    sys_s: float  # of which in the kernel
    helper_s: float  # of which the live streams' fan-out helper process
    others_s: float  # CPU seconds used meanwhile by processes that are not the bench's

    @property
    def pages(self) -> int:
        return int(self.status["total_pages_crawled"])

    @property
    def seconds(self) -> float:
        started = datetime.fromisoformat(self.status["started_at"])
        return (datetime.fromisoformat(self.status["completed_at"]) - started).total_seconds()

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else float("nan")


@dataclass(frozen=True)
class Usage:
    """CPU seconds so far: the daemon's (all, system), the machine's, the bench's processes'."""

    daemon_s: float
    daemon_sys_s: float
    helper_s: float
    machine_s: float
    ours_s: float


def _machine_busy_s() -> float:
    """CPU seconds every process on the machine has used (not idle, not waiting on disk)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Daemon:
    """`python -m skopd serve` on a temporary config; stopped with SIGTERM on exit."""

    def __init__(self, python: str, concurrency: int, profile: Path | None = None) -> None:
        self.profile = profile
        self.ours: list[int] = []  # the bench's other processes: the site, the subscribers
        self._tmp = tempfile.TemporaryDirectory(prefix="skopd-sse-bench-")
        workdir, port = Path(self._tmp.name), free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.config = workdir / "config.toml"
        # The long request timeout keeps the job on HANG_PATH waiting until it is cancelled.
        self.config.write_text(
            f'[server]\nhost = "127.0.0.1"\nport = {port}\napi_keys = []\n\n'
            f'[storage]\ndatabase = "{workdir}/skopd.db"\n'
            f'documents_dir = "{workdir}/documents"\n\n'
            "[jobs]\nmax_concurrent_jobs = 1\n\n"
            f"[crawler]\nconcurrency = {concurrency}\nper_host_concurrency = {concurrency}\n"
            "per_host_delay_ms = 0\nallow_private_networks = true\nrequest_timeout_s = 600\n"
        )
        self.log_path = workdir / "skopd.log"
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [self.python, "-m", "skopd", "serve", "--config", str(self.config)]
        if self.profile is not None:  # sampled by py-spy, written as collapsed stacks on exit
            py_spy = str(Path(self.python).with_name("py-spy"))
            options = ["record", "-r", "250", "-f", "raw", "-o", str(self.profile)]
            command = [py_spy, *options, "--", *command]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        """The daemon's (under --profile, py-spy's child)."""
        assert self.process is not None
        if self.profile is None:
            return self.process.pid
        deadline = time.monotonic() + 30
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        while not (found := children.read_text().split()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return int(found[0])

    def family(self) -> list[int]:
        """The daemon and the processes it started (its live streams' fan-out helper)."""
        pids, at = [self.pid], 0
        while at < len(pids):
            pid, at = pids[at], at + 1
            with contextlib.suppress(OSError):
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
                pids += [int(c) for c in children.split()]
        return pids

    def cpu_s(self) -> tuple[float, float, float]:
        """(user + system, system, the helper's) CPU seconds of the daemon and its helper."""
        total = system = helper = 0.0
        for pid in self.family():
            with contextlib.suppress(OSError):
                cpu, sys_s = _cpu_s(pid)
                total, system = total + cpu, system + sys_s
                helper += cpu if pid != self.pid else 0.0
        return total, system, helper

    def usage(self) -> Usage:
        ours = 0.0
        for pid in {*self.ours, *self.family(), os.getpid()}:
            try:
                ours += _cpu_s(pid)[0]
            except OSError:
                pass
        return Usage(*self.cpu_s(), _machine_busy_s(), ours)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def wait_healthy(self, timeout_s: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SkopdFailed(f"the daemon exited with code {self.process.returncode}")
            try:
                call(f"{self.api}/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise SkopdFailed(f"no answer from {self.api}/healthz within {timeout_s:.0f} s")

    def submit(self, website: str, n_pages: int) -> str:
        parameters = {"max_pages": n_pages, "max_depth": 100, "timeout": JOB_TIMEOUT_S}
        job = call(
            f"{self.api}/scrape", {"website": website, "prompt": PROMPT, "parameters": parameters}
        )
        return str(job["job_id"])

    def cancel(self, job_id: str) -> None:
        call(f"{self.api}/scrape/cancel/{job_id}", {})

    def events_url(self, job_id: str) -> str:
        return f"{self.api}/scrape/events/{job_id}"

    def watch(self, job_id: str, before: Usage) -> JobRun:
        deadline = time.monotonic() + JOB_TIMEOUT_S + 60
        while True:
            status = call(f"{self.api}/scrape/status/{job_id}")
            if not status["is_active"]:
                now = self.usage()
                return JobRun(
                    status,
                    now.daemon_s - before.daemon_s,
                    now.daemon_sys_s - before.daemon_sys_s,
                    now.helper_s - before.helper_s,
                    max(0.0, now.machine_s - before.machine_s - (now.ours_s - before.ours_s)),
                )
            if time.monotonic() > deadline:
                raise SkopdFailed(f"job {job_id} still active after {JOB_TIMEOUT_S} s")
            time.sleep(POLL_S)


# ------------------------------------------------------------ the subscribers' process

_IDS = re.compile(rb"\nid: (\d+)")
_FIRST_PAGE = re.compile(rb'\nevent: page\ndata: [^\n]*"fetched_at":"([^"]+)"')
EVERY_ID_ONE_IN = 20  # subscribers that check each id one by one, not only at block edges
_ID_TEXT: list[bytes] = [b"0"]  # str(i).encode() at index i, grown on demand
_EPOCHS: dict[bytes, float] = {}  # fetched_at text -> epoch s; every subscriber sees the same


def _ids_from(first: int, n: int) -> list[bytes]:
    """The id texts first, first + 1, ... (n of them): what an exact stream must carry next."""
    while len(_ID_TEXT) < first + n:
        _ID_TEXT.extend(str(i).encode() for i in range(len(_ID_TEXT), len(_ID_TEXT) + 4096))
    return _ID_TEXT[first : first + n]


def _epoch(raw: bytes) -> float:
    epoch = _EPOCHS.get(raw)
    if epoch is None:
        epoch = _EPOCHS[raw] = datetime.fromisoformat(raw.decode()).timestamp()
    return epoch


@dataclass
class Follow:
    """What one subscriber saw."""

    events: int = 0
    last_id: int = 0
    in_order: bool = True  # ids exactly 1, 2, 3, ... so far
    done: bool = False
    connect_s: float = float("nan")
    error: str | None = None
    resumes: int = 0  # reconnections with Last-Event-ID after the daemon cut the stream
    every_id: bool = False  # checked each id, not only the first and last of each block


class _Stream(asyncio.Protocol):
    """One SSE connection on a bare asyncio socket: HTTP/1.1 by hand, chunked transfer undone,
    then every block of complete events checked at C speed (regexes, list comparison). One
    process reads 1,000 streams, so no per-event Python work and no HTTP client library: the
    client must not starve the daemon it measures.

    Every id is checked (each exactly once, in order); latency is sampled on the first page
    event of each block the daemon sent at once (its oldest, so the figure is pessimistic):
    received minus its `fetched_at`, which includes the daemon's 0.1 s batching."""

    def __init__(
        self, request: bytes, follow: Follow, latencies: Latencies, opened: asyncio.Event
    ) -> None:
        self.request, self.follow, self.latencies, self.opened = request, follow, latencies, opened
        self.every_id = follow.every_id
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.headers_at = 0.0
        self.fatal = False  # an answer that is not a stream: no point in resuming
        self._raw = b""  # received, not yet de-chunked
        self._body = b""  # de-chunked, not yet a complete event
        self._chunk_left = 0  # bytes of the current chunk still to come (+2 for its CRLF)
        self._transport: asyncio.Transport | None = None

    def itself(self) -> _Stream:
        """The protocol factory for `create_connection`."""
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast("asyncio.Transport", transport)  # uvloop's is no subclass
        self._transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ended.done():
            self.ended.set_result(None)

    def _fail(self, message: str) -> None:
        self.follow.error, self.fatal = message, True
        if self._transport is not None:
            self._transport.close()

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.headers_at:
            self._raw += data
            end = self._raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data, self._raw = self._raw[:end], self._raw[end + 4 :], b""
            self.headers_at = now
            self.opened.set()
            status = head.split(b"\r\n", 1)[0]
            if b" 200 " not in status:
                return self._fail(f"{status.decode(errors='replace')}: {data[:200]!r}")
            if b"transfer-encoding: chunked" not in head.lower():
                return self._fail("the stream is not chunked")
        if not (self._raw or self._chunk_left or self._body):  # the usual case: one chunk
            eol = data.find(b"\r\n", 0, 16)
            if eol > 0:
                start = eol + 2
                size = int(data[:eol].split(b";", 1)[0], 16)
                if size and len(data) == start + size + 2 and data.endswith(b"\n\n\r\n"):
                    return self._check(data[start : start + size], now)
        self._body += self._dechunk(data)
        end = self._body.rfind(b"\n\n")
        if end < 0:
            return
        block, self._body = self._body[: end + 2], self._body[end + 2 :]
        self._check(block, now)

    def _dechunk(self, data: bytes) -> bytes:
        """The payload bytes in `data` (HTTP/1.1 chunked transfer coding)."""
        raw, out, pos = self._raw + data if self._raw else data, [], 0
        self._raw = b""
        while pos < len(raw):
            if self._chunk_left:  # the rest of a chunk, then its CRLF
                n = min(self._chunk_left, len(raw) - pos)
                out.append(raw[pos : pos + max(0, min(n, self._chunk_left - 2))])
                pos += n
                self._chunk_left -= n
                continue
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                self._raw = raw[pos:]
                break
            size = int(raw[pos:eol].split(b";", 1)[0], 16)
            pos = eol + 2
            if size == 0:  # the last chunk: the daemon ended the stream
                break
            self._chunk_left = size + 2
        return b"".join(out)

    def _check(self, block: bytes, now: float) -> None:
        """`block`: whole events (and comments). O(1) for most subscribers: the block's first
        id must follow the last one seen, and its last id is read from the end (the daemon
        writes whole batches, the same bytes to everyone); a sampled subscriber also checks
        every id in between. No scan of the whole block: at 1,000 subscribers it would make
        this process the bottleneck."""
        follow = self.follow
        first_at = 0 if block.startswith(b"id: ") else block.find(b"\nid: ") + 1 or -1
        if first_at >= 0:
            last_at = block.rfind(b"\nid: ") + 1  # 0: the first is the only one
            first = int(block[first_at + 4 : block.index(b"\n", first_at + 4)])
            end = block.index(b"\n", last_at + 4)
            last = int(block[last_at + 4 : end])
            if (
                first != follow.last_id + 1
                or last < first
                or (
                    self.every_id
                    and _IDS.findall(b"\n" + block) != _ids_from(first, last - first + 1)
                )
            ):
                follow.in_order = False
            follow.events += last - first + 1
            follow.last_id = last
            if block.startswith(b"\nevent: done\n", end):  # `done` is always the last event
                follow.done = True
                if self._transport is not None:
                    self._transport.close()
        page = _FIRST_PAGE.search(block)
        if page is not None:
            fetched = _epoch(page.group(1))
            if fetched >= self.headers_at:  # live, not history replayed on connect
                self.latencies.fetched.append(now - fetched)
        if block.startswith(b": published "):  # a live block: when the daemon sent it
            self.latencies.published.append(now - float(block[12 : block.index(b"\n", 12)]))


async def _follow(
    host: str, port: int, path: str, latencies: Latencies, opened: asyncio.Event, every_id: bool
) -> Follow:
    """Read one stream until `done`, resuming with Last-Event-ID when the daemon cuts it (it
    drops subscribers that fall behind); `opened` is set once the first headers are in."""
    loop, follow = asyncio.get_running_loop(), Follow(every_id=every_id)
    asked = time.time()
    try:
        for _attempt in range(MAX_RESUMES + 1):
            resume = b"Last-Event-ID: %d\r\n" % follow.last_id if follow.last_id else b""
            request = b"GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n%s\r\n" % (
                path.encode(),
                host.encode(),
                port,
                resume,
            )
            stream = _Stream(request, follow, latencies, opened)
            try:
                transport, _ = await loop.create_connection(stream.itself, host, port)
            except OSError as exc:
                follow.error = f"{type(exc).__name__}: {exc}"
                break
            try:
                await stream.ended
            finally:
                transport.close()
            if stream.headers_at and follow.connect_s != follow.connect_s:  # NaN: the first
                follow.connect_s = stream.headers_at - asked
            if follow.done or stream.fatal:
                break
            follow.resumes += 1
            await asyncio.sleep(0.2)
        else:
            follow.error = f"no `done` after {follow.resumes} resumes"
    except ValueError as exc:
        follow.error = f"{type(exc).__name__}: {exc}"
    finally:
        opened.set()
    if follow.done:
        follow.error = None
    return follow


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank; NaN for no samples."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class Latencies:
    """Seconds from a moment the daemon names to the block's arrival, one per live block."""

    published: array[float] = field(default_factory=lambda: array("d"))  # `: published` comment
    fetched: array[float] = field(default_factory=lambda: array("d"))  # first page's fetched_at


@dataclass
class LoadResult:
    follows: list[Follow]
    connects_s: list[float]  # until the response headers, for the subscribers that got them
    errors: list[str]
    latencies: Latencies
    cpu_s: float = 0.0  # the subscribers' processes, for this run
    sys_s: float = 0.0  # of which in the kernel
    resumes: int = 0  # reconnections with Last-Event-ID, all subscribers together

    def add(self, other: LoadResult) -> None:
        self.follows += other.follows
        self.connects_s += other.connects_s
        self.errors += other.errors
        self.latencies.fetched += other.latencies.fetched
        self.latencies.published += other.latencies.published
        self.cpu_s += other.cpu_s
        self.sys_s += other.sys_s
        self.resumes += other.resumes


async def _fan_out(url: str, subscribers: int, all_open: Queue[int]) -> LoadResult:
    latencies = Latencies()
    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path
    opened = [asyncio.Event() for _ in range(subscribers)]
    tasks = [
        asyncio.create_task(_follow(host, port, path, latencies, e, i % EVERY_ID_ONE_IN == 0))
        for i, e in enumerate(opened)
    ]
    for event in opened:
        await event.wait()
    all_open.put(len(tasks))
    follows = await asyncio.gather(*tasks)
    return LoadResult(
        follows=follows,
        resumes=sum(f.resumes for f in follows),
        connects_s=[f.connect_s for f in follows if f.error is None],
        errors=[f.error for f in follows if f.error is not None],
        latencies=latencies,
    )


def _loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The subscribers' event loop: uvloop's (C, much cheaper per read) when asked for or,
    with "auto", when it is installed; None for asyncio's own."""
    if name == "asyncio":
        return None
    try:
        factory: Callable[[], asyncio.AbstractEventLoop] = importlib.import_module(
            "uvloop"
        ).new_event_loop
    except ImportError:
        if name == "uvloop":
            raise
        return None
    return factory


def _subscribe(
    subscribers: int,
    loop: str,
    urls: Queue[str | None],
    all_open: Queue[int],
    results: Queue[LoadResult],
) -> None:
    """A subscribers' process: follow each URL it is sent `subscribers` times, until None."""
    _raise_fd_limit(subscribers + FD_SPARE)
    factory = _loop_factory(loop)
    while (url := urls.get()) is not None:
        before = resource.getrusage(resource.RUSAGE_SELF)
        with asyncio.Runner(loop_factory=factory) as runner:
            result = runner.run(_fan_out(url, subscribers, all_open))
        after = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        result.sys_s = after.ru_stime - before.ru_stime
        results.put(result)


class Subscribers:
    """The subscribers, shared out over `processes` processes, each with one event loop."""

    def __init__(self, subscribers: int, processes: int, loop: str) -> None:
        context = multiprocessing.get_context("fork")
        self.all_open: Queue[int] = context.Queue()
        self.results: Queue[LoadResult] = context.Queue()
        self.urls: list[Queue[str | None]] = []
        self.processes: list[BaseProcess] = []
        for i in range(processes):
            share = subscribers // processes + (i < subscribers % processes)
            self.urls.append(context.Queue())
            args = (share, loop, self.urls[-1], self.all_open, self.results)
            self.processes.append(context.Process(target=_subscribe, args=args, daemon=True))
            self.processes[-1].start()

    def follow(self, url: str) -> None:
        for urls in self.urls:
            urls.put(url)

    def wait_open(self) -> None:
        """Block until every subscriber has its response headers (or has failed)."""
        for _ in self.processes:
            self._get(self.all_open)

    def result(self) -> LoadResult:
        total = self._get(self.results)
        for _ in self.processes[1:]:
            total.add(self._get(self.results))
        return total

    def _get(self, source: Queue[_T]) -> _T:
        deadline = time.monotonic() + RESULT_WAIT_S
        while time.monotonic() < deadline:
            try:
                return source.get(timeout=0.5)
            except queue.Empty:
                for process in self.processes:
                    if not process.is_alive():
                        code = process.exitcode
                        raise SkopdFailed(
                            f"a subscribers' process exited with code {code}"
                        ) from None
        raise SkopdFailed(f"the subscribers did not finish within {RESULT_WAIT_S:.0f} s")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.join()


# --------------------------------------------------------------------------- runs


def run_alone(daemon: Daemon, origin: str, n_pages: int) -> JobRun:
    before = daemon.usage()
    return daemon.watch(daemon.submit(origin, n_pages), before)


def run_joining(
    daemon: Daemon, clients: Subscribers, origin: str, n_pages: int
) -> tuple[JobRun, LoadResult]:
    """The subscribers connect as the job starts; late ones get its history replayed first."""
    before = daemon.usage()
    job_id = daemon.submit(origin, n_pages)
    clients.follow(daemon.events_url(job_id))
    run = daemon.watch(job_id, before)
    clients.wait_open()
    return run, clients.result()


def run_waiting(
    daemon: Daemon, clients: Subscribers, origin: str, n_pages: int
) -> tuple[JobRun, LoadResult]:
    """Every subscriber is connected before the job starts: live fan-out only."""
    blocker = daemon.submit(origin + HANG_PATH, 1)
    job_id = daemon.submit(origin, n_pages)  # pending behind the blocker
    clients.follow(daemon.events_url(job_id))
    clients.wait_open()
    before = daemon.usage()
    daemon.cancel(blocker)
    return daemon.watch(job_id, before), clients.result()


SCENARIOS = (
    "joining: the subscribers connect as the job starts (late ones get the history replayed);"
    " waiting: all are connected before it starts (live fan-out only); default: both"
)
SCENARIO_RUNS = (
    ("joining", "subscribers join at start", run_joining),
    ("waiting", "subscribers waiting before start", run_waiting),
)

# ---------------------------------------------------------------------------- report


def _row(label: str, value: str) -> None:
    print(f"{label:<42}{value}")


def _busy(run: JobRun) -> str:
    share = _share(run)
    return f" ({100 * share:.0f} % of the CPUs: figures are noisy)" if share > QUIET_SHARE else ""


def _share(run: JobRun) -> float:
    """The part of the machine's CPUs other work took while `run` ran."""
    return run.others_s / (run.seconds * (os.cpu_count() or 1))


def _slowdown(run: JobRun, alone: JobRun) -> float:
    return 100 * (1 - run.pages_per_s / alone.pages_per_s)


def _report_run(label: str, run: JobRun, alone: JobRun | None) -> None:
    _row(
        f"{label}: pages/s",
        f"{run.pages_per_s:.1f}  ({run.pages} pages in {run.seconds:.2f} s, "
        f"{run.status['status']}; daemon CPU {run.cpu_s:.2f} s, {run.sys_s:.2f} s of it system, "
        f"{run.helper_s:.2f} s the fan-out helper's)",
    )
    _row("  other work on the machine meanwhile", f"{run.others_s:.2f} CPU-s{_busy(run)}")
    if alone is not None:
        _row("  slowdown vs this round's alone run", f"{_slowdown(run, alone):.1f} %")


@dataclass
class Outcome:
    """One scenario run's figures, for the summary."""

    slowdown: float
    exact: int  # subscribers that got every event exactly once, in order
    subscribers: int
    total: int  # the job's events
    p50_ms: float  # published -> received
    p99_ms: float
    fetched_p50_ms: float  # fetched_at -> received
    fetched_p99_ms: float
    client_cpu_s: float
    daemon_extra: float = 0.0  # % more daemon CPU than the alone run: a less noisy proxy


def _report_load(load: LoadResult, subscribers: int, slowdown: float) -> Outcome:
    connects = sorted(load.connects_s)
    _row(
        "  subscribers connected",
        f"{len(connects)} of {subscribers}  (headers after p50"
        f" {1000 * _percentile(connects, 0.5):.0f} ms, max {1000 * _percentile(connects, 1):.0f}"
        " ms)",
    )
    total = max((f.last_id for f in load.follows if f.done), default=0)
    counts = [f.events for f in load.follows] or [0]
    _row("  events per subscriber", f"min {min(counts)}, max {max(counts)} (job's total {total})")
    exact = [f for f in load.follows if f.in_order and f.done and f.last_id == total == f.events]
    _row(
        "  got every event exactly once, in order",
        f"{len(exact)} of {subscribers}  ({sum(f.every_id for f in exact)} of the"
        f" {sum(f.every_id for f in load.follows)} that checked every id one by one; the"
        " others checked ids at the edges of each block the daemon sent)",
    )
    _row("  resumed with Last-Event-ID", f"{load.resumes} times (cut off for falling behind)")
    if load.errors:
        _row("  subscriber errors", f"{len(load.errors)}, e.g. {load.errors[:ERRORS_SHOWN]}")
    published = sorted(load.latencies.published)
    p50, p99, top = (1000 * _percentile(published, q) for q in (0.5, 0.99, 1))
    _row(
        "  latency published -> received",
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {top:.0f} ms  ({len(published)} live blocks:"
        " the daemon's `: published` time on each block, when its oldest events were committed"
        " and published: includes the bus's fan-out interval, 0.1 s or more)",
    )
    fetched = sorted(load.latencies.fetched)
    f50, f99, ftop = (1000 * _percentile(fetched, q) for q in (0.5, 0.99, 1))
    _row(
        "  latency fetched_at -> received",
        f"p50 {f50:.0f} ms, p99 {f99:.0f} ms, max {ftop:.0f} ms  ({len(fetched)} live page"
        " events, the oldest of each block; adds the daemon's 0.1 s batching and commit)",
    )
    _row("  subscribers' processes CPU", f"{load.cpu_s:.2f} s ({load.sys_s:.2f} s of it system)")
    return Outcome(slowdown, len(exact), subscribers, total, p50, p99, f50, f99, load.cpu_s)


def _spread(values: Sequence[float], fmt: str) -> str:
    """median [min - max] of the rounds, or the one value."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return fmt.format(ordered[0])
    middle = ordered[len(ordered) // 2]
    return f"{fmt.format(middle)} [{fmt.format(ordered[0])} - {fmt.format(ordered[-1])}]"


def _summary(
    alone: list[JobRun],
    outcomes: dict[str, list[Outcome]],
    subscribers: int,
    rss_mb: float,
    all_runs: list[JobRun],
) -> bool:
    """The targets, met or missed, over all rounds; True when every target was met."""
    rounds = len(alone)
    print(f"\n=== summary: {subscribers} subscribers, {rounds} round(s)", end="")
    print("; median [min - max] over the rounds ===" if rounds > 1 else " ===")
    _row("alone: pages/s", _spread([r.pages_per_s for r in alone], "{:.0f}"))
    every_round = most_rounds = True
    for name, label, _ in SCENARIO_RUNS:
        runs = outcomes.get(name)
        if not runs:
            continue
        print(f"{label}:")
        exact = sum(o.exact for o in runs)
        everyone = sum(o.subscribers for o in runs)
        checks = (
            (
                "  crawl slowdown",
                _spread([o.slowdown for o in runs], "{:.1f} %"),
                "< 20 %",
                sum(o.slowdown < 20 for o in runs),
            ),
            (
                "  every event to every subscriber",
                f"{exact} of {everyone} (events per job"
                f" {_spread([o.total for o in runs], '{:.0f}')})",
                "all",
                sum(o.exact == o.subscribers for o in runs),
            ),
            ("  latency p50 published -> received", _spread([o.p50_ms for o in runs], "{:.0f} ms"),
             "", 0),
            ("  latency p99 published -> received", _spread([o.p99_ms for o in runs], "{:.0f} ms"),
             "< 250 ms", sum(o.p99_ms < 250 for o in runs)),
            ("  latency p50 fetched_at -> received",
             _spread([o.fetched_p50_ms for o in runs], "{:.0f} ms"), "", 0),
            ("  latency p99 fetched_at -> received",
             _spread([o.fetched_p99_ms for o in runs], "{:.0f} ms"), "", 0),
            (
                "  subscribers' CPU",
                _spread([o.client_cpu_s for o in runs], "{:.2f} s"),
                "",
                0,
            ),
            (
                "  daemon CPU over its alone run",
                _spread([o.daemon_extra for o in runs], "+{:.0f} %")
                + " (what the subscribers cost the daemon; less noisy than pages/s)",
                "",
                0,
            ),
        )  # fmt: skip
        for what, value, target, met in checks:
            verdict = ""
            if target:
                every_round = every_round and met == len(runs)
                most_rounds = most_rounds and 2 * met > len(runs)
                verdict = f"   target {target}: " + (
                    "met" if met == len(runs) else "MISSED" if not met else "met in"
                )
                if 0 < met < len(runs):
                    verdict += f" {met} of {len(runs)} rounds"
            _row(what, value + verdict)
    _row("daemon RSS MB (peak VmHWM)", f"{rss_mb:.0f}  (with its fan-out helper)")
    shares = [100 * _share(r) for r in all_runs]
    noisy = max(shares) > 100 * QUIET_SHARE
    _row(
        "other work on the machine",
        _spread(shares, "{:.0f} %")
        + " of the CPUs during the runs"
        + (": NOT QUIET, pages/s, slowdown and latency are noisy" if noisy else ": quiet"),
    )
    print(
        "targets:",
        "all met in every round"
        if every_round
        else "all met in most rounds, some MISSED in others"
        if most_rounds
        else "some MISSED in most rounds",
    )
    return every_round


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=2000, help="site size (default 2000)")
    parser.add_argument("--subscribers", type=int, default=1000, help="SSE clients (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--profile",
        type=Path,
        help="sample the daemon with py-spy (pip install py-spy) into this file, collapsed stacks",
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter for the daemon")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 4),
        help="processes the subscribers are shared out over (default: a quarter of the CPUs)",
    )
    parser.add_argument(
        "--scenario", choices=("both", "joining", "waiting"), default="both", help=SCENARIOS
    )
    parser.add_argument(
        "--client-loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="the subscribers' event loop (auto: uvloop when installed; the daemon's is not"
        " changed)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="alone + scenarios this many times; the summary gives median and range (default 3)",
    )
    args = parser.parse_args(argv)
    n, fd_limit = args.subscribers, _raise_fd_limit(args.subscribers + FD_SPARE)

    ready: Queue[int] = multiprocessing.get_context("fork").Queue()
    site = multiprocessing.get_context("fork").Process(
        target=_serve, args=(args.pages, args.seed, ready), daemon=True
    )
    site.start()
    clients = Subscribers(n, max(1, min(args.client_processes, n)), args.client_loop)
    client_loop = "uvloop" if _loop_factory(args.client_loop) else "asyncio"
    try:
        origin = f"http://127.0.0.1:{ready.get(timeout=600)}/"
        _row("pages", f"{args.pages}  (concurrency {args.concurrency}, site at {origin})")
        _row(
            "subscribers",
            f"{n} in {len(clients.processes)} process(es), {client_loop} event loop"
            f"  (RLIMIT_NOFILE {fd_limit}, {os.cpu_count()} CPUs)",
        )
        with Daemon(args.python, args.concurrency, args.profile) as daemon:
            daemon.ours = [pid for pid in (site.pid, *(c.pid for c in clients.processes)) if pid]
            try:
                daemon.wait_healthy()
                alones: list[JobRun] = []
                runs: list[JobRun] = []
                outcomes: dict[str, list[Outcome]] = {}
                for round_no in range(1, args.rounds + 1):
                    print(f"--- round {round_no} of {args.rounds}")
                    alones.append(alone := run_alone(daemon, origin, args.pages))
                    runs.append(alone)
                    _report_run("alone", alone, None)
                    for name, label, run in SCENARIO_RUNS:
                        if args.scenario in ("both", name):
                            loaded, load = run(daemon, clients, origin, args.pages)
                            runs.append(loaded)
                            if not any(f.done for f in load.follows):
                                raise SkopdFailed(f"no subscriber saw `done`: {load.errors[:1]}")
                            _report_run(label, loaded, alone)
                            outcome = _report_load(load, n, _slowdown(loaded, alone))
                            outcome.daemon_extra = 100 * (loaded.cpu_s / alone.cpu_s - 1)
                            outcomes.setdefault(name, []).append(outcome)
                peak = sum(memory_mb(pid)[1] for pid in daemon.family())
                _summary(alones, outcomes, n, peak, runs)
            except (SkopdFailed, OSError, KeyError, ValueError) as exc:
                print(f"sse_bench: failed: {exc}", file=sys.stderr)
                print(f"--- daemon log (tail) ---\n{daemon.log_tail()}", file=sys.stderr)
                return 1
    finally:
        clients.stop()
        site.terminate()
        site.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
