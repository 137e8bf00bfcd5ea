"""`skopd submit | watch | scrape` run against a real daemon and the fixture website."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import re
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from skopd import cli
from tests.conftest import Daemon, submit, wait_done

Client = TestClient[web.Request, web.Application]
DaemonFactory = Callable[..., Awaitable[Daemon]]
PROMPT = "board meeting minutes from 2024"
FAST = {"request_timeout_s": 2.0}  # the docsite's /slow page then costs 2 s, not 5
SUMMARY = re.compile(r"^(\w+): (\d+) documents? from (\d+) pages? in \S+( \(.*\))?$")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    code: int
    out: str
    err: str


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="skopd")
    cli.add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Run:
    """Runs a command in a thread with its own event loop, as the daemon needs this one."""
    args = parse(*argv)
    code = await asyncio.to_thread(args.func, args)
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


def base(d: Daemon) -> str:
    assert d.client is not None
    return str(d.client.make_url("/"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def results_of(client: Client, job_id: str, headers: dict[str, str] | None = None) -> Any:
    resp = await client.get(f"/scrape/results/{job_id}", headers=headers)
    assert resp.status == 200
    return await resp.json()


def document_urls(err: str) -> list[str]:
    return [line.rsplit(" ", 1)[1] for line in err.splitlines() if line.startswith("downloaded ")]


def assert_table(out: str, results: dict[str, Any]) -> None:
    lines = out.splitlines()
    assert lines[0].split() == ["name", "type", "size", "MB", "confidence", "URL"]
    rows = lines[1:-1]
    assert len(rows) == len(results["documents"]) > 0
    for doc in results["documents"]:
        [row] = [r for r in rows if r.endswith(" " + doc["url"])]
        assert f"{doc['confidence_score']:.2f}" in row
    status, docs, pages, _ = SUMMARY.match(lines[-1]).groups()  # type: ignore[union-attr]
    assert (status, int(docs), int(pages)) == (
        results["status"],
        len(results["documents"]),
        results["total_pages_crawled"],
    )


@pytest.fixture
async def tiny_site(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """One page linking one long-named PDF at a long URL."""
    pdf = b"%PDF-1.4\n% minutes\n" + b"x" * 2000 + b"\n%%EOF\n"
    doc = "/files/2024/regular-sessions/board-meeting-minutes-2024-01-approved-final.pdf"

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text="<html><head><title>Board</title></head><body><h1>Board meetings 2024</h1>"
            f'<a href="{doc}">Board meeting minutes January 2024, regular session of the '
            "city council\x1b]0;owned\x07 as approved on February 12</a></body></html>",
            content_type="text/html",
        )

    async def minutes(_: web.Request) -> web.Response:
        return web.Response(body=pdf, content_type="application/pdf")

    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get(doc, minutes)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/"))


@pytest.fixture(autouse=True)
def _no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("SKOPD_URL", raising=False)
    monkeypatch.delenv("SKOPD_API_KEY", raising=False)


async def test_submit_prints_only_the_job_id(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory, tiny_site: str
) -> None:
    d = await daemon_factory()
    run = await run_cli(capsys, "submit", tiny_site, PROMPT, "--server", base(d))
    assert run.code == 0, run.err
    assert re.fullmatch(r"job_[a-z0-9]+\n", run.out)
    assert run.err == ""
    assert d.client is not None
    assert (await wait_done(d.client, run.out.strip()))["status"] == "completed"


async def test_params_are_json_when_they_parse_else_strings(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory, tiny_site: str
) -> None:
    d = await daemon_factory()
    assert d.client is not None
    params = [
        "max_pages=50",
        "single_page=true",
        'document_types=["pdf","docx"]',
        "confidence_threshold=0.3",
        "file_type=document",
    ]
    argv = ["submit", tiny_site, PROMPT, "--server", base(d)]
    run = await run_cli(capsys, *argv, *(a for p in params for a in ("--param", p)))
    assert run.code == 0, run.err
    await wait_done(d.client, run.out.strip())
    sent = (await results_of(d.client, run.out.strip()))["metadata"]["parameters"]
    assert sent["max_pages"] == 50
    assert sent["single_page"] is True
    assert sent["document_types"] == ["pdf", "docx"]
    assert sent["confidence_threshold"] == 0.3
    assert sent["file_type"] == "document"


async def test_a_bad_param_shows_the_servers_message(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory, tiny_site: str
) -> None:
    d = await daemon_factory()
    run = await run_cli(
        capsys, "submit", tiny_site, PROMPT, "--server", base(d), "--param", "timeout=59"
    )
    assert run.code == 2
    assert run.out == ""
    assert "parameters.timeout: must be between 60 and 3600" in run.err
    with pytest.raises(SystemExit) as exc:
        parse("submit", tiny_site, PROMPT, "--param", "no-equals-sign")
    assert exc.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


async def test_no_daemon_is_a_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    server = f"http://127.0.0.1:{closed_port()}"
    for argv in (["submit", "http://127.0.0.1/", PROMPT], ["watch", "job_abc"]):
        run = await run_cli(capsys, *argv, "--server", server)
        assert run.code == 2
        assert f"cannot reach skopd at {server}: is it running?" in run.err
        assert run.out == ""


async def test_scrape_prints_the_table_and_watch_json_the_results(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    d = await daemon_factory(crawler=FAST)
    assert d.client is not None
    argv = ["--server", base(d), "--param", "max_depth=10"]
    run = await run_cli(capsys, "scrape", str(docsite.make_url("/")), PROMPT, *argv)
    assert run.code == 0, run.err
    [job_id] = re.findall(r"^submitted (job_[a-z0-9]+)$", run.err, re.M)
    results = await results_of(d.client, job_id)
    assert len(results["documents"]) >= 10
    assert_table(run.out, results)
    assert "\r" not in run.err and "\x1b" not in run.err
    assert sorted(document_urls(run.err)) == sorted(doc["url"] for doc in results["documents"])
    assert re.search(r"^completed: \d+ pages, \d+ documents, 100%$", run.err, re.M)

    again = await run_cli(capsys, "watch", job_id, "--json", "--server", base(d))
    assert again.code == 0, again.err
    assert json.loads(again.out) == results


async def test_a_cancelled_job_exits_1(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    d = await daemon_factory()
    assert d.client is not None
    job_id = await submit(d.client, str(docsite.make_url("/")), PROMPT, max_depth=10)
    watching = asyncio.create_task(run_cli(capsys, "watch", job_id, "--server", base(d)))
    await asyncio.sleep(0.5)
    assert (await d.client.post(f"/scrape/cancel/{job_id}")).status == 200
    run = await watching
    assert run.code == 1
    assert run.out.splitlines()[-1].startswith("cancelled: ")


async def test_a_failed_job_exits_1(
    capsys: pytest.CaptureFixture[str], daemon_factory: DaemonFactory
) -> None:
    d = await daemon_factory()
    site = f"http://127.0.0.1:{closed_port()}/"
    run = await run_cli(capsys, "scrape", site, PROMPT, "--server", base(d))
    assert run.code == 1
    assert run.out.startswith("failed: 0 documents")
    assert re.search(r"^error: ", run.err, re.M), run.err


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_a_terminal_gets_a_throttled_live_bar(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    daemon_factory: DaemonFactory,
    docsite: TestServer,
) -> None:
    d = await daemon_factory(crawler=FAST)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setenv("COLUMNS", "70")
    started = time.monotonic()
    argv = ["--server", base(d), "--param", "max_depth=10"]
    run = await run_cli(capsys, "scrape", str(docsite.make_url("/")), PROMPT, *argv)
    elapsed = time.monotonic() - started
    assert run.code == 0
    shown = terminal.getvalue()
    bars = [s for s in shown.split("\r\x1b[K") if s.startswith("[")]
    assert bars, shown
    assert len(bars) <= elapsed / cli.REDRAW_EVERY_S + 2
    assert all(len(bar) <= 69 and "\n" not in bar for bar in bars)
    assert any(re.search(r"navigator  \d+ pages  \d+ docs  ETA \d", bar) for bar in bars), bars
    assert shown.endswith("\r\x1b[K"), "the bar is erased at the end"
    printed = "\n".join(shown.split("\r\x1b[K"))
    assert len(document_urls(printed)) == len(run.out.splitlines()) - 2


async def test_the_table_fits_the_terminal_and_stays_clean(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    daemon_factory: DaemonFactory,
    tiny_site: str,
) -> None:
    d = await daemon_factory()
    monkeypatch.setenv("COLUMNS", "60")
    run = await run_cli(capsys, "scrape", tiny_site, PROMPT, "--server", base(d))
    assert run.code == 0, run.err
    header, row, summary = run.out.splitlines()
    assert all(len(line) <= 60 for line in (header, row))
    assert row.startswith("Board meeting") and "…" in row
    assert SUMMARY.match(summary)
    assert "\x1b" not in run.out + run.err and "\x07" not in run.out + run.err


class DroppingProxy:
    """Sits between the CLI and the daemon. Cuts the first event stream once, in the middle of
    its third download, and hides Last-Event-ID from the daemon so that it replays the
    whole history: the CLI must resume and skip what it already has."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.sent = b""
        self.cut = False
        self.last_event_ids: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Accept")}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.upstream + request.path_qs,
                headers=headers,
                data=await request.read(),
            ) as up,
        ):
            if not request.path.startswith("/scrape/events/"):
                body = await up.read()
                return web.Response(body=body, status=up.status, content_type=up.content_type)
            self.last_event_ids.append(request.headers.get("Last-Event-ID"))
            resp = web.StreamResponse(status=up.status)
            resp.content_type = up.content_type
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                if not self.cut and (at := self._cut_point(self.sent + chunk)) is not None:
                    self.cut = True
                    await resp.write(chunk[: max(at - len(self.sent), 0)])
                    self.sent = (self.sent + chunk)[: max(at, len(self.sent))]
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if not self.cut:
                    self.sent += chunk
                await resp.write(chunk)
            return resp

    @staticmethod
    def _cut_point(stream: bytes) -> int | None:
        downloads = rb'event: document\ndata: [^\n]*"decision": ?"downloaded"'
        starts = [m.start() for m in re.finditer(downloads, stream)]
        return starts[2] + 10 if len(starts) >= 3 else None

    def last_complete_id(self) -> int:
        complete = re.split(rb"\n\n", self.sent)[:-1]
        return max(int(m) for part in complete for m in re.findall(rb"^id: (\d+)$", part, re.M))


async def test_a_dropped_stream_resumes_without_duplicates(
    capsys: pytest.CaptureFixture[str],
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    daemon_factory: DaemonFactory,
    docsite: TestServer,
) -> None:
    d = await daemon_factory(crawler=FAST)
    assert d.client is not None
    proxy = DroppingProxy(base(d))
    front = await aiohttp_server(proxy.app, host="127.0.0.1")
    argv = ["--server", str(front.make_url("/")), "--param", "max_depth=10"]
    run = await run_cli(capsys, "scrape", str(docsite.make_url("/")), PROMPT, *argv)
    assert run.code == 0, run.err
    assert proxy.cut
    assert proxy.last_event_ids[0] is None
    assert proxy.last_event_ids[1] == str(proxy.last_complete_id())
    [job_id] = re.findall(r"^submitted (job_[a-z0-9]+)$", run.err, re.M)
    results = await results_of(d.client, job_id)
    urls = document_urls(run.err)
    assert Counter(urls).most_common(1)[0][1] == 1
    assert sorted(urls) == sorted(doc["url"] for doc in results["documents"])
    assert_table(run.out, results)


async def test_gives_up_when_the_stream_keeps_failing(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
) -> None:
    """A server that always ends the stream early, replaying the same event: no progress."""
    seen: list[str | None] = []

    async def events(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Last-Event-ID"))
        if len(seen) > 40:  # a client that never gives up: end the test instead of hanging
            raise web.HTTPNotFound(text='{"message": "enough"}', content_type="application/json")
        status = {"status": "in_progress", "current_agent": "navigator", "progress": 10}
        body = f"retry: 100\n\nid: 1\nevent: status\ndata: {json.dumps(status)}\n\n"
        return web.Response(text=body, content_type="text/event-stream")

    app = web.Application()
    app.router.add_get("/scrape/events/job_x", events)
    server = await aiohttp_server(app, host="127.0.0.1")
    monkeypatch.setattr(cli, "GIVE_UP_AFTER_S", 1.0)
    run = await run_cli(capsys, "watch", "job_x", "--server", str(server.make_url("/")))
    assert run.code == 2
    assert "lost the event stream" in run.err and "job_x" in run.err
    assert run.err.count("in_progress (navigator)") == 1
    assert seen[0] is None and set(seen[1:]) == {"1"} and len(seen) >= 3


async def test_env_vars_and_a_wrong_key(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    daemon_factory: DaemonFactory,
    tiny_site: str,
) -> None:
    d = await daemon_factory(server={"api_keys": ["sk-alice"]})
    assert d.client is not None
    monkeypatch.setenv("SKOPD_URL", base(d))
    monkeypatch.setenv("SKOPD_API_KEY", "sk-alice")
    run = await run_cli(capsys, "scrape", tiny_site, PROMPT, "--json")
    assert run.code == 0, run.err
    alice = {"Authorization": "Bearer sk-alice"}
    assert json.loads(run.out) == await results_of(d.client, json.loads(run.out)["job_id"], alice)

    for argv in (["submit", tiny_site, PROMPT], ["watch", json.loads(run.out)["job_id"]]):
        wrong = await run_cli(capsys, *argv, "--api-key", "sk-eve")
        assert wrong.code == 2
        assert "invalid API key" in wrong.err and "401" in wrong.err
        assert wrong.out == ""


async def test_ctrl_c_stops_watching_and_the_job_goes_on(
    daemon_factory: DaemonFactory, docsite: TestServer
) -> None:
    d = await daemon_factory()  # /slow keeps this crawl busy for 5 s
    assert d.client is not None
    job_id = await submit(d.client, str(docsite.make_url("/")), PROMPT, max_depth=10)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skopd",
        "watch",
        job_id,
        "--server",
        base(d),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    first = await asyncio.wait_for(proc.stderr.readline(), 10)
    assert first.startswith((b"pending", b"in_progress")), first
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 130
    assert f"stopped watching; job {job_id} continues" in err.decode()
    assert out == b""
    status = await (await d.client.get(f"/scrape/status/{job_id}")).json()
    assert status["is_active"] is True
    assert (await d.client.post(f"/scrape/cancel/{job_id}")).status == 200


async def test_python_m_skopd_scrape_json(daemon_factory: DaemonFactory, tiny_site: str) -> None:
    d = await daemon_factory()
    assert d.client is not None
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skopd",
        "scrape",
        tiny_site,
        PROMPT,
        "--json",
        "--server",
        base(d),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    [job_id] = re.findall(rb"^submitted (job_[a-z0-9]+)$", err, re.M)
    assert json.loads(out) == await results_of(d.client, job_id.decode())
    assert b"\r" not in err
