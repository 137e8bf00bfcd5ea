"""The other API faces under load: what saving pages as Markdown costs a crawl, how fast
Spidra-style jobs of five pages go through the scheduler, and how fast a cached answer
(an identical documentation-scraper request) comes back.

Run from the repository root: ``.venv/bin/python bench/faces_bench.py [--pages N]``.
The synthetic site (sitegen.py) is served from a separate process. Prints figures; asserts
nothing about time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from crawl_bench import SkopdFailed, _serve, _write_config, call, free_port, memory_mb
from crawl_bench import wait_healthy as _wait_healthy
from sitegen import PROMPT, page_path

POLL_S = 0.1


def _row(label: str, value: str) -> None:
    print(f"{label:<40}{value}")


def _seconds(started: str, ended: str) -> float:
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds()


class Daemon:
    def __init__(self, python: str, concurrency: int, jobs: int) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="skopd-faces-bench-")
        workdir, port = Path(self._tmp.name), free_port()
        config = _write_config(workdir, port, concurrency)
        text = config.read_text().replace(
            "max_concurrent_jobs = 1",
            f"max_concurrent_jobs = {jobs}\nmax_queued_jobs = 1000\nmax_queued_per_key = 1000",
        )
        config.write_text(text + '\n[relevance]\nbackend = "lexical"\n')
        self.log_path = workdir / "skopd.log"
        self.api = f"http://127.0.0.1:{port}"
        with self.log_path.open("wb") as log:
            command = [python, "-m", "skopd", "serve", "--config", str(config)]
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _wait_healthy(self.api, self.process, timeout_s=60)
        self.peak_mb = 0.0

    def sample(self) -> None:
        self.peak_mb = max(self.peak_mb, memory_mb(self.process.pid)[1])

    def until(self, done: Callable[[], bool], timeout_s: float = 3600) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self.sample()
            if time.monotonic() > deadline:
                raise SkopdFailed(f"not done after {timeout_s:.0f} s")
            time.sleep(POLL_S)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._tmp.cleanup()


def skop_crawl(d: Daemon, origin: str, n_pages: int) -> float:
    params = {"max_pages": n_pages, "max_depth": 100, "timeout": 3600}
    job = call(f"{d.api}/scrape", {"website": origin, "prompt": PROMPT, "parameters": params})
    status: dict[str, Any] = {}

    def ended() -> bool:
        status.update(call(f"{d.api}/scrape/status/{job['job_id']}"))
        return not status["is_active"]

    d.until(ended)
    rate = status["total_pages_crawled"] / _seconds(status["started_at"], status["completed_at"])
    _row("Skop job: pages crawled", f"{status['total_pages_crawled']}  ({rate:.1f} pages/s)")
    return rate


def docs_crawl(d: Daemon, origin: str, n_pages: int, skop_rate: float) -> None:
    session = str(uuid.uuid4())
    body = {"starterLinks": [origin], "applicationName": "Budget", "maxIterations": n_pages}
    call(f"{d.api}/api/v1/scrape/{session}/scrape", body)
    status: dict[str, Any] = {}

    def ended() -> bool:
        status.update(call(f"{d.api}/api/v1/scrape/{session}/scrape"))
        return status["status"] in ("finished", "failed")

    d.until(ended)
    result = status.get("result", {})
    saved = result.get("savedPagesCount", 0)
    rate = saved / _seconds(status["startedAt"], status["updatedAt"])
    _row("docs job: pages saved (Markdown+chunks)", f"{saved}  ({rate:.1f} pages/s)")
    _row("  chunks", str(result.get("pageChunksCount")))
    _row("  finish reason", str(result.get("finishReason")))
    _row("  speed against the Skop job", f"{rate / skop_rate:.2f}")


def spidra_jobs(d: Daemon, origin: str, n_jobs: int, n_pages: int) -> None:
    began = time.monotonic()
    ids = []
    for j in range(n_jobs):
        paths = [page_path(1 + (5 * j + k) % (n_pages - 1)) for k in range(5)]
        urls = [{"url": origin.rstrip("/") + path} for path in paths]
        ids.append(call(f"{d.api}/api/scrape", {"urls": urls})["jobId"])
    submitted = time.monotonic() - began
    left = set(ids)

    def ended() -> bool:
        for job_id in list(left):
            if call(f"{d.api}/api/scrape/{job_id}")["status"] in ("completed", "failed"):
                left.discard(job_id)
        return not left

    d.until(ended)
    seconds = time.monotonic() - began
    _row("Spidra jobs of 5 pages", f"{n_jobs} in {seconds:.2f} s ({n_jobs / seconds:.1f} jobs/s,")
    _row("", f"{5 * n_jobs / seconds:.1f} pages/s; submitting took {submitted:.2f} s)")


def docs_cache(d: Daemon, origin: str, rounds: int) -> None:
    """An identical documentation-scraper request answered from the stored pages."""
    body = {"starterLinks": [origin], "applicationName": "Budget", "maxIterations": 20}
    first = str(uuid.uuid4())
    call(f"{d.api}/api/v1/scrape/{first}/scrape", body)
    d.until(
        lambda: call(f"{d.api}/api/v1/scrape/{first}/scrape")["status"] in ("finished", "failed")
    )
    times = []
    for _ in range(rounds):
        session = str(uuid.uuid4())
        began = time.perf_counter()
        call(f"{d.api}/api/v1/scrape/{session}/scrape", body)
        answer = call(f"{d.api}/api/v1/scrape/{session}/scrape")
        times.append(time.perf_counter() - began)
        assert answer["status"] == "finished", answer
    times.sort()
    _row(
        "cached answer (POST, then GET finished)",
        f"median {1000 * times[len(times) // 2]:.1f} ms, p95 "
        f"{1000 * times[int(len(times) * 0.95)]:.1f} ms ({rounds} requests)",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=1000, help="site size and crawl length")
    parser.add_argument("--spidra-jobs", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("fork")
    ready: Queue[int] = context.Queue()
    server = context.Process(target=_serve, args=(args.pages, 1, ready), daemon=True)
    server.start()
    d = None
    try:
        origin = f"http://127.0.0.1:{ready.get(timeout=600)}/"
        _row("site pages", f"{args.pages}  (concurrency {args.concurrency})")
        d = Daemon(args.python, args.concurrency, jobs=4)
        skop_rate = skop_crawl(d, origin, args.pages)
        docs_crawl(d, origin, args.pages, skop_rate)
        spidra_jobs(d, origin, args.spidra_jobs, args.pages)
        docs_cache(d, origin, 100)
        _row("daemon peak RSS MB (VmHWM)", f"{d.peak_mb:.0f}")
    except SkopdFailed as exc:
        print(f"skopd: failed: {exc}", file=sys.stderr)
        if d is not None:
            print(d.log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 1
    finally:
        if d is not None:
            d.stop()
        server.terminate()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
