"""Live-progress fan-out: one crawl followed by many SSE subscribers, against the same crawl alone.

Run from the repository root: ``.venv/bin/python bench/sse_bench.py [--subscribers N]``.
The synthetic site (sitegen.py) and the subscribers each run in a process of their own, so
neither is charged to the daemon. Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


class Daemon:
    """`python -m skopd serve` on a temporary config; stopped with SIGTERM on exit."""

    def __init__(self, python: str, concurrency: int) -> None:
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
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def cpu_s(self) -> float:
        return _cpu_s(self.pid)

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

    def watch(self, job_id: str, cpu_before: float) -> JobRun:
        deadline = time.monotonic() + JOB_TIMEOUT_S + 60
        while True:
            status = call(f"{self.api}/scrape/status/{job_id}")
            if not status["is_active"]:
                return JobRun(status, self.cpu_s() - cpu_before)
            if time.monotonic() > deadline:
                raise SkopdFailed(f"job {job_id} still active after {JOB_TIMEOUT_S} s")
            time.sleep(POLL_S)


# ------------------------------------------------------------ the subscribers' process


class SseReader:
    """Cuts a text/event-stream into complete events, however the chunks fall."""

    def __init__(self) -> None:
        self._rest = b""

    def complete(self, chunk: bytes) -> bytes:
        """The complete events received so far, as one block (LF line ends)."""
        buf = self._rest + chunk
        if b"\r" in buf:  # aiohttp-sse ends its pings with CRLF; skopd's frames use LF
            buf = buf.replace(b"\r\n", b"\n")
        end = buf.rfind(b"\n\n")
        if end < 0:
            self._rest = buf
            return b""
        self._rest = buf[end + 2 :]
        return b"\n" + buf[: end + 2]


_EPOCHS: dict[bytes, float] = {}  # fetched_at text -> epoch s; every subscriber sees the same


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


async def _follow(
    session: aiohttp.ClientSession, url: str, latencies: array[float], opened: asyncio.Event
) -> Follow:
    """Read one stream until `done`, resuming with Last-Event-ID when the daemon cuts it (it
    drops subscribers that fall behind); `opened` is set once the first headers are in."""
    follow = Follow()
    asked = time.time()
    try:
        for _attempt in range(MAX_RESUMES + 1):
            headers = {"Last-Event-ID": str(follow.last_id)} if follow.last_id else {}
            try:
                async with session.get(url, headers=headers) as resp:
                    since = time.time()
                    if follow.connect_s != follow.connect_s:  # NaN: the first connection
                        follow.connect_s = since - asked
                    opened.set()
                    if resp.status != 200:
                        follow.error = f"HTTP {resp.status}: {(await resp.text())[:200]}"
                        return follow
                    await _read(resp, follow, since, latencies)
            except (aiohttp.ClientError, TimeoutError) as exc:
                follow.error = f"{type(exc).__name__}: {exc}"
            if follow.done:
                follow.error = None
                return follow
            follow.resumes += 1
            await asyncio.sleep(0.2)
    except ValueError as exc:
        follow.error = f"{type(exc).__name__}: {exc}"
    finally:
        opened.set()
    return follow


_IDS = re.compile(rb"^id: (\d+)$", re.MULTILINE)
_FIRST_PAGE = re.compile(rb'^event: page\ndata: [^\n]*"fetched_at":"([^"]+)"', re.MULTILINE)


async def _read(
    resp: aiohttp.ClientResponse, follow: Follow, since: float, latencies: array[float]
) -> None:
    """Check ids and sample latency a whole block at a time (C-speed regexes): one process
    reads 1,000 streams, and a per-event Python loop would make it the bottleneck. Every id
    is checked; latency is sampled on the first page event of each block the daemon sent
    at once (its oldest, so the figure is pessimistic)."""
    reader, count, last, in_order = SseReader(), follow.events, follow.last_id, follow.in_order
    try:
        async for chunk in resp.content.iter_any():
            now = time.time()
            block = reader.complete(chunk)
            if not block:
                continue
            ids = [int(x) for x in _IDS.findall(block)]
            if ids:
                in_order = in_order and ids == list(range(last + 1, last + 1 + len(ids)))
                last = ids[-1]
                count += len(ids)
            page = _FIRST_PAGE.search(block)
            if page is not None:
                fetched = _epoch(page.group(1))
                if fetched >= since:  # live, not history replayed on connect
                    latencies.append(now - fetched)
            if b"\nevent: done\n" in block:
                follow.done = True
                return
    finally:
        follow.events, follow.last_id, follow.in_order = count, last, in_order


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest rank; NaN for no samples."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


@dataclass
class LoadResult:
    follows: list[tuple[int, int, bool, bool]]  # events, last id, in order, done
    connects_s: list[float]  # until the response headers, for the subscribers that got them
    errors: list[str]
    latencies_s: array[float]  # live page events: received - fetched_at
    cpu_s: float = 0.0  # the subscribers' processes, for this run
    resumes: int = 0  # reconnections with Last-Event-ID, all subscribers together

    def add(self, other: LoadResult) -> None:
        self.follows += other.follows
        self.connects_s += other.connects_s
        self.errors += other.errors
        self.latencies_s += other.latencies_s
        self.cpu_s += other.cpu_s
        self.resumes += other.resumes


async def _fan_out(url: str, subscribers: int, all_open: Queue[int]) -> LoadResult:
    latencies: array[float] = array("d")
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=60, sock_read=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        opened = [asyncio.Event() for _ in range(subscribers)]
        tasks = [asyncio.create_task(_follow(session, url, latencies, e)) for e in opened]
        for event in opened:
            await event.wait()
        all_open.put(len(tasks))
        follows = await asyncio.gather(*tasks)
    return LoadResult(
        follows=[(f.events, f.last_id, f.in_order, f.done) for f in follows],
        resumes=sum(f.resumes for f in follows),
        connects_s=[f.connect_s for f in follows if f.error is None],
        errors=[f.error for f in follows if f.error is not None],
        latencies_s=latencies,
    )


def _subscribe(
    subscribers: int, urls: Queue[str | None], all_open: Queue[int], results: Queue[LoadResult]
) -> None:
    """A subscribers' process: follow each URL it is sent `subscribers` times, until None."""
    _raise_fd_limit(subscribers + FD_SPARE)
    while (url := urls.get()) is not None:
        before = resource.getrusage(resource.RUSAGE_SELF)
        result = asyncio.run(_fan_out(url, subscribers, all_open))
        after = resource.getrusage(resource.RUSAGE_SELF)
        result.cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        results.put(result)


class Subscribers:
    """The subscribers, shared out over `processes` processes, each with one event loop."""

    def __init__(self, subscribers: int, processes: int) -> None:
        context = multiprocessing.get_context("fork")
        self.all_open: Queue[int] = context.Queue()
        self.results: Queue[LoadResult] = context.Queue()
        self.urls: list[Queue[str | None]] = []
        self.processes: list[BaseProcess] = []
        for i in range(processes):
            share = subscribers // processes + (i < subscribers % processes)
            self.urls.append(context.Queue())
            args = (share, self.urls[-1], self.all_open, self.results)
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
    cpu = daemon.cpu_s()
    return daemon.watch(daemon.submit(origin, n_pages), cpu)


def run_joining(
    daemon: Daemon, clients: Subscribers, origin: str, n_pages: int
) -> tuple[JobRun, LoadResult]:
    """The subscribers connect as the job starts; late ones get its history replayed first."""
    cpu = daemon.cpu_s()
    job_id = daemon.submit(origin, n_pages)
    clients.follow(daemon.events_url(job_id))
    run = daemon.watch(job_id, cpu)
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
    cpu = daemon.cpu_s()
    daemon.cancel(blocker)
    return daemon.watch(job_id, cpu), clients.result()


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


def _report_run(label: str, run: JobRun, alone: JobRun | None) -> None:
    _row(
        f"{label}: pages/s",
        f"{run.pages_per_s:.1f}  ({run.pages} pages in {run.seconds:.2f} s, "
        f"{run.status['status']}; daemon CPU {run.cpu_s:.2f} s)",
    )
    if alone is not None:
        slowdown = 100 * (1 - run.pages_per_s / alone.pages_per_s)
        _row("  slowdown", f"{slowdown:.1f} %  (target < 20 %)")


def _report_load(load: LoadResult, subscribers: int) -> None:
    connects = sorted(load.connects_s)
    _row(
        "  subscribers connected",
        f"{len(connects)} of {subscribers}  (headers after p50"
        f" {1000 * _percentile(connects, 0.5):.0f} ms, max {1000 * _percentile(connects, 1):.0f}"
        " ms)",
    )
    total = max((last for _, last, _, done in load.follows if done), default=0)
    counts = [events for events, *_ in load.follows]
    _row("  events per subscriber", f"min {min(counts)}, max {max(counts)} (job's total {total})")
    exact = sum(ordered and done and last == total for _, last, ordered, done in load.follows)
    _row("  got every event exactly once", f"{exact} of {subscribers}  (target: all)")
    _row("  resumed with Last-Event-ID", f"{load.resumes} times (cut off for falling behind)")
    if load.errors:
        _row("  subscriber errors", f"{len(load.errors)}, e.g. {load.errors[:ERRORS_SHOWN]}")
    latencies = sorted(load.latencies_s)
    p50, p99, top = (1000 * _percentile(latencies, q) for q in (0.5, 0.99, 1))
    _row(
        "  page latency (received - fetched_at)",
        f"p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {top:.0f} ms"
        f"  (target p99 < 250 ms; {len(latencies)} live page events)",
    )
    _row("  subscribers' processes CPU", f"{load.cpu_s:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=2000, help="site size (default 2000)")
    parser.add_argument("--subscribers", type=int, default=1000, help="SSE clients (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seed", type=int, default=1)
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
    args = parser.parse_args(argv)
    n, fd_limit = args.subscribers, _raise_fd_limit(args.subscribers + FD_SPARE)

    ready: Queue[int] = multiprocessing.get_context("fork").Queue()
    site = multiprocessing.get_context("fork").Process(
        target=_serve, args=(args.pages, args.seed, ready), daemon=True
    )
    site.start()
    clients = Subscribers(n, max(1, min(args.client_processes, n)))
    try:
        origin = f"http://127.0.0.1:{ready.get(timeout=600)}/"
        _row("pages", f"{args.pages}  (concurrency {args.concurrency}, site at {origin})")
        _row(
            "subscribers",
            f"{n} in {len(clients.processes)} process(es)  (RLIMIT_NOFILE {fd_limit},"
            f" {os.cpu_count()} CPUs)",
        )
        with Daemon(args.python, args.concurrency) as daemon:
            try:
                daemon.wait_healthy()
                alone = run_alone(daemon, origin, args.pages)
                _report_run("alone", alone, None)
                for name, label, run in SCENARIO_RUNS:
                    if args.scenario in ("both", name):
                        loaded, load = run(daemon, clients, origin, args.pages)
                        if not any(done for *_, done in load.follows):
                            raise SkopdFailed(f"no subscriber saw `done`: {load.errors[:1]}")
                        _report_run(label, loaded, alone)
                        _report_load(load, n)
                _row("daemon RSS MB (peak VmHWM)", f"{memory_mb(daemon.pid)[1]:.0f}")
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
