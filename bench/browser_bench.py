"""Browser rendering: pages/s with 1 and 4 pages in flight, and memory of Python + Chromium.

    .venv/bin/python bench/browser_bench.py                # 40 pages, 1 then 4 in flight
    .venv/bin/python bench/browser_bench.py --pages 80 --concurrency 1,2,4
    .venv/bin/python bench/browser_bench.py --no-proxy     # Chromium connects by itself
    .venv/bin/python bench/browser_bench.py --daemon       # whole jobs through skopd serve

Serves a generated JavaScript site from a separate process on 127.0.0.1: every page is a
shell whose 20 links (next pages, documents) a script writes from a fetched JSON list.
Renders every page once per concurrency with skopd.crawl.browser.BrowserPool (images
blocked, default scrolls and clicks), after one warm-up render that also launches Chromium;
as in the daemon, Chromium connects through the address-policy proxy (an open policy here,
the site being on loopback) unless --no-proxy.
Prints, per concurrency: pages/s, seconds, links found; then memory: this Python process
(VmRSS) and all Chromium processes of the pool (sum of VmRSS, which counts shared pages once
per process, and sum of Pss, which shares them out), sampled every 0.1 s, last and peak.

With --daemon, each concurrency is instead one job through a `skopd serve` subprocess
(browser.max_pages = the concurrency, render_js "auto": the first shell is rendered after
its static fetch, the rest directly), crawling the whole site from /p/0: pages/s from the
job's own runtime, pages by engine, and the memory of the daemon and of its Chromium
processes (its descendants).
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.queues import Queue
from pathlib import Path

from aiohttp import web
from crawl_bench import SkopdFailed, call, free_port, wait_healthy

from skopd.crawl.browser import BrowserPool, RenderError
from skopd.crawl.netpolicy import AddressPolicy
from skopd.crawl.proxy import PolicyDestinations

CHROMIUM = "/usr/bin/chromium"
LINKS_PER_PAGE = 20


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    executable: str = CHROMIUM
    max_pages: int = 4
    page_timeout_s: float = 20.0
    block_resources: bool = True


# ---------------------------------------------------------------- the generated site


def _page(n: int, pages: int) -> str:
    paragraphs = "".join(
        f"<p>Item {n}.{i}: the council published the minutes of its meeting and the "
        f"documents of the committee on planning, budget and transport.</p>"
        for i in range(8)
    )
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8><title>Page {n}</title>
<style>li {{ margin: 4px }} .logo {{ width: 120px }}</style></head><body>
<img class=logo src="/logo.png" alt=""><h1>Archive page {n} of {pages}</h1>{paragraphs}
<ul id=list></ul><noscript>You need to enable JavaScript to see the documents.</noscript>
<script>
fetch("/api/{n}.json").then((r) => r.json()).then((links) => {{
  const list = document.getElementById("list");
  for (const l of links) {{
    const a = document.createElement("a"); a.href = l.href; a.textContent = l.title;
    const li = document.createElement("li"); li.append(a); list.append(li);
  }}
}});
</script></body></html>"""


def _links(n: int, pages: int) -> list[dict[str, str]]:
    out = [{"href": f"/p/{(n + k) % pages}", "title": f"Page {(n + k) % pages}"} for k in (1, 2)]
    out += [
        {"href": f"/files/{n}-{k}.pdf", "title": f"Minutes {n}-{k}"}
        for k in range(LINKS_PER_PAGE - 2)
    ]
    return out


def _serve(pages: int, ready: Queue[int]) -> None:
    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(text=_page(n, pages), content_type="text/html")

    async def api(request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)  # a backend answers in 20 ms
        return web.json_response(_links(int(request.match_info["n"]), pages))

    async def run() -> None:
        app = web.Application()
        app.router.add_get("/p/{n:\\d+}", page)
        app.router.add_get("/api/{n:\\d+}.json", api)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ready.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(run())


# ---------------------------------------------------------------- memory


def _status_kib(pid: int | str, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _chromium_pids(profile: Path | None) -> list[str]:
    if profile is None:
        return []
    marker = f"--user-data-dir={profile} ".encode()
    pids = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                arguments = Path(f"/proc/{entry.name}/cmdline").read_bytes()
            except OSError:
                continue
            # Chromium's helpers rewrite their command line as one space-separated string.
            if marker in arguments.replace(b"\0", b" ") + b" ":
                pids.append(entry.name)
    return pids


@dataclass
class Memory:
    python_mb: float = 0.0
    chromium_rss_mb: float = 0.0
    chromium_pss_mb: float = 0.0
    processes: int = 0


def _measure(pool: BrowserPool) -> Memory:
    pids = _chromium_pids(pool.profile_dir)
    return Memory(
        python_mb=_status_kib(os.getpid(), "VmRSS") / 1024,
        chromium_rss_mb=sum(_status_kib(p, "VmRSS") for p in pids) / 1024,
        chromium_pss_mb=sum(_pss_kib(p) for p in pids) / 1024,
        processes=len(pids),
    )


# ---------------------------------------------------------------- the runs


@dataclass
class Run:
    concurrency: int
    seconds: float
    rendered: int
    failed: int
    links: int


async def _render_all(pool: BrowserPool, urls: list[str], concurrency: int) -> Run:
    queue = list(reversed(urls))
    counts = {"rendered": 0, "failed": 0, "links": 0}

    async def worker() -> None:
        while queue:
            url = queue.pop()
            try:
                rendered = await pool.render(url)
            except RenderError as exc:
                counts["failed"] += 1
                print(f"  failed: {exc}", file=sys.stderr)
                continue
            counts["rendered"] += 1
            counts["links"] += len(rendered.links)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Run(concurrency, time.perf_counter() - began, **counts)


async def _bench(origin: str, pages: int, levels: list[int], proxy: bool) -> None:
    urls = [f"{origin}/p/{n}" for n in range(pages)]
    peak = Memory()
    last = Memory()

    for level in levels:
        policy = PolicyDestinations(AddressPolicy(allow_private=True)) if proxy else None
        pool = BrowserPool(Settings(max_pages=level), policy=policy)
        stop = asyncio.Event()

        async def sample(pool: BrowserPool = pool, stop: asyncio.Event = stop) -> None:
            nonlocal peak, last
            while not stop.is_set():
                last = await asyncio.to_thread(_measure, pool)
                peak = _larger(peak, last)
                await asyncio.sleep(0.1)

        try:
            began = time.perf_counter()
            await pool.render(urls[0])
            warm = time.perf_counter() - began
            sampler = asyncio.ensure_future(sample())
            run = await _render_all(pool, urls, level)
            stop.set()
            await sampler
        finally:
            await pool.close()
        rate = run.rendered / run.seconds if run.seconds > 0 else float("nan")
        _row(f"{level} in flight: pages/s", f"{rate:.2f}  ({run.rendered} in {run.seconds:.1f} s)")
        _row("  links found / expected", f"{run.links} / {run.rendered * LINKS_PER_PAGE}")
        _row("  failed renders", str(run.failed))
        _row("  first render incl. launch", f"{warm:.2f} s")
        _row("  memory last: python / chromium", _memory(last))
    _row("memory peak: python / chromium", _memory(peak))


def _larger(a: Memory, b: Memory) -> Memory:
    return Memory(
        max(a.python_mb, b.python_mb),
        max(a.chromium_rss_mb, b.chromium_rss_mb),
        max(a.chromium_pss_mb, b.chromium_pss_mb),
        max(a.processes, b.processes),
    )


def _memory(m: Memory) -> str:
    return (
        f"{m.python_mb:.0f} MB / {m.chromium_rss_mb:.0f} MB RSS sum, "
        f"{m.chromium_pss_mb:.0f} MB PSS sum, {m.processes} processes"
    )


def _row(label: str, value: str) -> None:
    print(f"{label:<36}{value}")


# ---------------------------------------------------------------- through the daemon


def _descendants(root: int) -> list[str]:
    parents: dict[str, str] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_text()
            except OSError:
                continue
            parents[entry.name] = stat.rpartition(")")[2].split()[1]
    found: list[str] = []
    frontier = [str(root)]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        frontier += children
    return found


def _daemon_memory(pid: int) -> Memory:
    pids = _descendants(pid)
    return Memory(
        python_mb=_status_kib(pid, "VmRSS") / 1024,
        chromium_rss_mb=sum(_status_kib(p, "VmRSS") for p in pids) / 1024,
        chromium_pss_mb=sum(_pss_kib(p) for p in pids) / 1024,
        processes=len(pids),
    )


def _daemon_run(origin: str, pages: int, level: int) -> None:
    with tempfile.TemporaryDirectory(prefix="skopd-bench-") as tmp:
        port = free_port()
        config = Path(tmp) / "config.toml"
        config.write_text(
            f"[server]\nport = {port}\n"
            f'[storage]\ndatabase = "{tmp}/skopd.db"\ndocuments_dir = "{tmp}/documents"\n'
            "[crawler]\nallow_private_networks = true\n"
            '[relevance]\nbackend = "lexical"\n'
            f"[browser]\nmax_pages = {level}\n"
        )
        api = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "skopd", "serve", "--config", str(config)]
        daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = last = Memory()
        try:
            wait_healthy(api, daemon, timeout_s=60)
            parameters = {"max_pages": pages, "max_depth": 100, "confidence_threshold": 1.0}
            job = call(
                f"{api}/scrape",
                {"website": f"{origin}/p/0", "prompt": "council minutes", "parameters": parameters},
            )
            while True:
                status = call(f"{api}/scrape/status/{job['job_id']}")
                last = _daemon_memory(daemon.pid)
                peak = _larger(peak, last)
                if not status["is_active"]:
                    break
                time.sleep(0.2)
            results = call(f"{api}/scrape/results/{job['job_id']}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    crawled = results["total_pages_crawled"]
    runtime = results["total_runtime_seconds"]
    rate = crawled / runtime if runtime else float("nan")
    engines = results["metadata"]["pages_by_engine"]
    _row(f"{level} in flight (daemon): pages/s", f"{rate:.2f}  ({crawled} in {runtime:.1f} s)")
    _row("  pages by engine", f"{engines}  (job {status['status']})")
    _row("  render errors", str(sum(e["error_type"] == "render_failed" for e in results["errors"])))
    _row("  memory last: daemon / chromium", _memory(last))
    _row("  memory peak: daemon / chromium", _memory(peak))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=40, help="site size (default 40)")
    parser.add_argument("--concurrency", default="1,4", help="pages in flight, comma-separated")
    parser.add_argument("--no-proxy", action="store_true", help="no address-policy proxy")
    parser.add_argument("--daemon", action="store_true", help="whole jobs through skopd serve")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    if not os.access(CHROMIUM, os.X_OK):
        print(f"{CHROMIUM} is missing: apt-get install -y chromium", file=sys.stderr)
        return 1

    context = multiprocessing.get_context("fork")
    ready: Queue[int] = context.Queue()
    server = context.Process(target=_serve, args=(args.pages, ready), daemon=True)
    server.start()
    try:
        origin = f"http://127.0.0.1:{ready.get(timeout=60)}"
        _row("pages", str(args.pages))
        if args.daemon:
            for level in levels:
                try:
                    _daemon_run(origin, args.pages, level)
                except SkopdFailed as exc:
                    print(f"skopd: failed: {exc}", file=sys.stderr)
                    return 1
            return 0
        _row("proxy", "no" if args.no_proxy else "yes (address policy)")
        asyncio.run(_bench(origin, args.pages, levels, not args.no_proxy))
    finally:
        server.terminate()
        server.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
