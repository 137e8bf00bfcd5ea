"""Crawl throughput: a bare aiohttp + lxml loop against the skopd daemon, on one site.

Run from the repository root: ``.venv/bin/python bench/crawl_bench.py [--pages N | --large]``.
The synthetic site (sitegen.py) is served from a separate process, so its CPU is not
charged to either crawler. Prints figures; asserts nothing about time.

The daemon's CPU time during the job (from /proc, all its threads) is printed too: on a
shared machine it moves far less than wall-clock rates. `--profile` samples the daemon with
py-spy during the job and prints the functions that cost the most.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, cast
from urllib.parse import urldefrag, urljoin, urlsplit

import aiohttp
import uvloop
from aiohttp import web
from lxml import etree
from sitegen import PROMPT, all_documents, make_bench_site

LARGE_PAGES = 20_000
POLL_S = 0.2
TOP_FUNCTIONS = 25
SUBMIT_EVERY_S = 0.25


def _serve(n_pages: int, seed: int, ready: Queue[int]) -> None:
    async def run() -> None:
        runner = web.AppRunner(make_bench_site(n_pages, seed), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, backlog=1024).start()
        ready.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


# ---------------------------------------------------------------- (a) the bare loop


@dataclass
class BareResult:
    pages: int
    documents: int
    seconds: float
    cpu_s: float  # this process's CPU time during the crawl


async def bare_crawl(origin: str, concurrency: int) -> BareResult:
    """Fetch every same-host URL once; parse HTML with lxml and follow //a/@href."""
    parser = etree.HTMLParser(recover=True)
    host = urlsplit(origin).netloc
    seen = {origin}
    queue: asyncio.Queue[str] = asyncio.Queue()
    queue.put_nowait(origin)
    counts = {"pages": 0, "documents": 0}

    async def worker(session: aiohttp.ClientSession) -> None:
        while True:
            url = await queue.get()
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    is_html = response.content_type == "text/html"
                counts["pages" if is_html else "documents"] += 1
                if not is_html:
                    continue
                root = etree.fromstring(body, parser)
                hrefs = cast("list[str]", root.xpath("//a/@href") if root is not None else [])
                for href in hrefs:
                    link = urldefrag(urljoin(url, href))[0]
                    if link not in seen and urlsplit(link).netloc == host:
                        seen.add(link)
                        queue.put_nowait(link)
            finally:
                queue.task_done()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started, cpu_started = time.perf_counter(), time.process_time()
        workers = [asyncio.create_task(worker(session)) for _ in range(concurrency)]
        await queue.join()
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_started
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return BareResult(counts["pages"], counts["documents"], seconds, cpu_s)


# ---------------------------------------------------------------- (b) the daemon


@dataclass
class SkopdResult:
    status: dict[str, Any]
    results: dict[str, Any]
    peak_rss_mb: float
    last_rss_mb: float
    cpu: dict[str, float] = field(default_factory=dict)  # thread name -> CPU seconds in the job
    profile: list[str] = field(default_factory=list)  # lines of the --profile report
    submit_ms: list[float] = field(default_factory=list)  # POST /scrape latencies (--submits)

    @property
    def seconds(self) -> float:
        started = datetime.fromisoformat(self.status["started_at"])
        return (datetime.fromisoformat(self.status["completed_at"]) - started).total_seconds()


class SkopdFailed(Exception):
    pass


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def call(url: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    with _NO_PROXY.open(urllib.request.Request(url, data, headers), timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MiB; zeros once it has gone."""
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value
    except OSError:
        return 0.0, 0.0
    kib = [int(fields.get(k, "0 kB").split()[0]) for k in ("VmRSS", "VmHWM")]
    return kib[0] / 1024, kib[1] / 1024


def thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of a process, keyed "name/tid"."""
    tick = os.sysconf("SC_CLK_TCK")
    times: dict[str, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return times
    for task in tasks:
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        times[f"{name}/{task.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return times


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each thread spent between two readings; the main thread first."""
    spent = {k: v - before.get(k, 0.0) for k, v in after.items()}
    # Threads that ended between the readings are lost; a pool's threads live on.
    return dict(sorted(spent.items(), key=lambda kv: -kv[1]))


def summarize_profile(raw: Path, top: int = TOP_FUNCTIONS) -> list[str]:
    """Self and inclusive sample shares by function, from py-spy's raw (collapsed) output."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return ["(no samples)"]
    lines = [f"{total} samples; self % (own code) and total % (with callees)"]
    lines.append("  self%  total%  function")
    for name, count in own.most_common(top):
        lines.append(f"  {100 * count / total:5.1f}  {100 * inclusive[name] / total:6.1f}  {name}")
    lines.append("  by total (with callees), skopd code only:")
    mine = [(n, c) for n, c in inclusive.most_common() if "(skopd/" in n][:top]
    for name, count in mine:
        lines.append(f"  {100 * own[name] / total:5.1f}  {100 * count / total:6.1f}  {name}")
    return lines


def _frame(frame: str) -> str:
    """From `func (/x/site-packages/aiohttp/client.py:123)` to `func (aiohttp/client.py)`,
    and `skopd/...` paths kept whole: one entry per function, lines merged."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rpartition(":")[0] or where.rstrip(")")
    parts = path.split("/")
    short = "/".join(parts[parts.index("skopd") :] if "skopd" in parts else parts[-2:])
    return f"{name} ({short})"


def _write_config(workdir: Path, port: int, concurrency: int) -> Path:
    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\napi_keys = []\n\n'
        f'[storage]\ndatabase = "{workdir}/skopd.db"\ndocuments_dir = "{workdir}/documents"\n\n'
        "[jobs]\nmax_concurrent_jobs = 1\n\n"
        f"[crawler]\nconcurrency = {concurrency}\nper_host_concurrency = {concurrency}\n"
        "per_host_delay_ms = 0\nallow_private_networks = true\n"
    )
    return config


def wait_healthy(api: str, daemon: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise SkopdFailed(f"the daemon exited with code {daemon.returncode}")
        try:
            call(f"{api}/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise SkopdFailed(f"no answer from {api}/healthz within {timeout_s:.0f} s")


def _watch_job(api: str, job_id: str, pid: int, timeout_s: float) -> SkopdResult:
    peak = last = 0.0
    deadline = time.monotonic() + timeout_s
    while True:
        status = call(f"{api}/scrape/status/{job_id}")
        last, hwm = memory_mb(pid)
        peak = max(peak, hwm)
        if not status["is_active"]:
            cpu = thread_cpu_s(pid)  # before reading the results: their cost is not the crawl's
            result = SkopdResult(status, call(f"{api}/scrape/results/{job_id}"), peak, last)
            result.cpu = cpu
            return result
        if time.monotonic() > deadline:
            raise SkopdFailed(f"job {job_id} still active after {timeout_s:.0f} s")
        time.sleep(POLL_S)


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (all threads, busy samples only) until sent SIGINT."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SkopdFailed("--profile needs py-spy: .venv/bin/pip install py-spy")
    command = [spy, "record", "--pid", str(pid), "--rate", "250", "--format", "raw"]
    command += ["--output", str(out), "--nonblocking"]
    spy_process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached before the job starts
    if spy_process.poll() is not None:
        error = spy_process.stderr.read().decode(errors="replace") if spy_process.stderr else ""
        raise SkopdFailed(f"py-spy could not attach: {error.strip()}")
    return spy_process


def stop_profiler(spy_process: subprocess.Popen[bytes], out: Path) -> list[str]:
    spy_process.send_signal(signal.SIGINT)
    try:
        spy_process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy_process.kill()
        spy_process.wait()
    return summarize_profile(out) if out.exists() else ["(py-spy wrote nothing)"]


class Submitter(threading.Thread):
    """Posts small jobs while the crawl runs, one every SUBMIT_EVERY_S, timing each answer."""

    def __init__(self, api: str, origin: str, count: int) -> None:
        super().__init__(daemon=True)
        self.api, self.origin, self.count = api, origin, count
        self.latencies_ms: list[float] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        self.stopped.wait(1.0)  # the crawl is under way
        payload = {"website": self.origin, "prompt": PROMPT, "parameters": {"max_pages": 1}}
        while len(self.latencies_ms) < self.count and not self.stopped.is_set():
            started = time.perf_counter()
            call(f"{self.api}/scrape", payload)
            self.latencies_ms.append(1000 * (time.perf_counter() - started))
            self.stopped.wait(SUBMIT_EVERY_S)


def run_skopd(
    origin: str,
    n_pages: int,
    concurrency: int,
    python: str,
    profile: bool = False,
    submits: int = 0,
) -> SkopdResult:
    with tempfile.TemporaryDirectory(prefix="skopd-bench-") as tmp:
        workdir, port = Path(tmp), free_port()
        config = _write_config(workdir, port, concurrency)
        if submits:  # room for the jobs posted while the crawl runs (they wait their turn)
            room = "max_queued_jobs = 10000\nmax_queued_per_key = 10000\n"
            config.write_text(config.read_text().replace("[jobs]\n", "[jobs]\n" + room))
        log_path = workdir / "skopd.log"
        api = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            command = [python, "-m", "skopd", "serve", "--config", str(config)]
            daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        spy_process = None
        try:
            wait_healthy(api, daemon, timeout_s=60)
            if profile:
                spy_process = start_profiler(daemon.pid, workdir / "profile.txt")
            parameters = {"max_pages": n_pages, "max_depth": 100, "timeout": 3600}
            before = thread_cpu_s(daemon.pid)
            job = call(
                f"{api}/scrape", {"website": origin, "prompt": PROMPT, "parameters": parameters}
            )
            submitter = Submitter(api, origin, submits)
            if submits:
                submitter.start()
            try:
                result = _watch_job(api, job["job_id"], daemon.pid, timeout_s=3700)
            finally:
                submitter.stopped.set()
                if submits:
                    submitter.join(timeout=60)
            result.cpu = cpu_between(before, result.cpu)
            result.submit_ms = submitter.latencies_ms
            if spy_process is not None:
                result.profile = stop_profiler(spy_process, workdir / "profile.txt")
                spy_process = None
            return result
        except (SkopdFailed, OSError, KeyError, ValueError) as exc:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SkopdFailed(f"{exc}\n--- daemon log (tail) ---\n{tail}") from exc
        finally:
            if spy_process is not None:
                spy_process.kill()
                spy_process.wait()
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


# ---------------------------------------------------------------- report


def _row(label: str, value: str) -> None:
    print(f"{label:<34}{value}")


def _report_skopd(skopd: SkopdResult, n_pages: int, seed: int, bare: BareResult | None) -> None:
    crawled = int(skopd.status["total_pages_crawled"])
    rate = crawled / skopd.seconds if skopd.seconds > 0 else float("nan")
    _row("skopd status", str(skopd.status["status"]))
    _row("skopd pages crawled", str(crawled))
    _row("skopd pages/s", f"{rate:.1f}  ({skopd.seconds:.2f} s, started_at..completed_at)")
    if bare is not None:
        ratio = rate / (bare.pages / bare.seconds)
        _row("ratio skopd/bare", f"{ratio:.2f}  (target >= 0.75 at 2,000 pages)")
    matching = {d.path for d in all_documents(n_pages, seed) if d.matching}
    returned = {urlsplit(str(d.get("url", ""))).path for d in skopd.results.get("documents", [])}
    engines = skopd.results.get("metadata", {}).get("pages_by_engine")
    _row("pages by engine", json.dumps(engines))  # a static site: no browser
    _row("documents found", str(skopd.results.get("total_documents_found")))
    _row("documents downloaded", str(skopd.results.get("total_documents_downloaded")))
    _row("  matching returned", f"{len(returned & matching)} of {len(matching)}")
    _row("  unrelated returned", str(len(returned - matching)))
    _row("skopd RSS MB (last / peak VmHWM)", f"{skopd.last_rss_mb:.0f} / {skopd.peak_rss_mb:.0f}")
    _row("", "(target peak <= 200 MB at 20,000 pages)")
    _report_cpu(skopd.cpu, crawled, bare)
    if skopd.submit_ms:
        ms = sorted(skopd.submit_ms)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        _row(
            "POST /scrape while crawling ms",
            f"p50 {statistics.median(ms):.0f}, p95 {p95:.0f}, max {ms[-1]:.0f}  ({len(ms)} jobs)",
        )
    if skopd.profile:
        print("daemon profile during the job (py-spy):")
        for line in skopd.profile:
            print(line)


def _report_cpu(cpu: dict[str, float], crawled: int, bare: BareResult | None) -> None:
    """The daemon's CPU during the job, in all and per thread (the first: the event loop)."""
    total = sum(cpu.values())
    per_1000 = 1000 * total / crawled if crawled else float("nan")
    _row("skopd CPU s (job)", f"{total:.2f}  ({per_1000:.2f} s per 1,000 pages)")
    if bare is not None and total > 0:
        # Both fetch the documents too; the bare loop only reads them.
        _row("CPU ratio bare/skopd", f"{bare.cpu_s / total:.2f}  (load-independent)")
    shown = [f"{name.rpartition('/')[0]} {spent:.2f}" for name, spent in cpu.items() if spent]
    _row("  by thread", ", ".join(shown[:6]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=2000, help="site size (default 2000)")
    parser.add_argument("--large", action="store_true", help=f"site of {LARGE_PAGES} pages")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-bare", action="store_true", help="skip the bare loop")
    parser.add_argument(
        "--bare-uvloop",
        action="store_true",
        help="run the bare loop on uvloop, as `skopd serve` runs (default: asyncio's own loop)",
    )
    parser.add_argument("--skip-skopd", action="store_true", help="skip the daemon")
    parser.add_argument("--python", default=sys.executable, help="interpreter for the daemon")
    parser.add_argument(
        "--profile", action="store_true", help="sample the daemon with py-spy during the job"
    )
    parser.add_argument(
        "--submits",
        type=int,
        default=0,
        help=f"post up to N one-page jobs while the crawl runs (one every {SUBMIT_EVERY_S} s) "
        "and print the answers' latency",
    )
    args = parser.parse_args(argv)
    n_pages = LARGE_PAGES if args.large else args.pages

    context = multiprocessing.get_context("fork")
    ready: Queue[int] = context.Queue()
    server = context.Process(target=_serve, args=(n_pages, args.seed, ready), daemon=True)
    server.start()
    try:
        origin = f"http://127.0.0.1:{ready.get(timeout=600)}/"
        documents = list(all_documents(n_pages, args.seed))
        _row("pages", f"{n_pages}  (concurrency {args.concurrency}, site at {origin})")
        _row(
            "documents on the site",
            f"{len(documents)} ({sum(d.matching for d in documents)} match)",
        )
        bare = None
        if not args.skip_bare:
            factory = uvloop.new_event_loop if args.bare_uvloop else None
            with asyncio.Runner(loop_factory=factory) as runner:
                bare = runner.run(bare_crawl(origin, args.concurrency))
            rate = bare.pages / bare.seconds
            _row("bare pages fetched", f"{bare.pages} pages + {bare.documents} documents")
            loop_name = "uvloop" if args.bare_uvloop else "asyncio's loop; skopd serve is on uvloop"
            _row("bare pages/s", f"{rate:.1f}  ({bare.seconds:.2f} s, {loop_name})")
            per_1000 = 1000 * bare.cpu_s / bare.pages
            _row("bare CPU s", f"{bare.cpu_s:.2f}  ({per_1000:.2f} s per 1,000 pages)")
        if not args.skip_skopd:
            try:
                skopd = run_skopd(
                    origin, n_pages, args.concurrency, args.python, args.profile, args.submits
                )
            except SkopdFailed as exc:
                print(f"skopd: failed: {exc}", file=sys.stderr)
                return 1
            _report_skopd(skopd, n_pages, args.seed, bare)
    finally:
        server.terminate()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
