"""Operating the daemon: `skopd serve` as a real process under a fake systemd: readiness and
stopping notifications, graceful SIGTERM/SIGINT with jobs and streams open, 503 while
stopping, JSON logs that never show an API key."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import signal
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skopd.logs import JsonFormatter, TextFormatter
from skopd.notify import notify
from tests.process import SkopdProcess

PROMPT = "board meeting minutes from 2024"
STOP_LIMIT_S = 10.0
SLOW_PAGE_S = 1.0


class Notifications:
    """A Unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`."""

    def __init__(self, address: str) -> None:
        self.address = address  # what NOTIFY_SOCKET says: a path, or "@name" for abstract
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.sock.setblocking(False)

    async def next(self, timeout: float = 30.0) -> list[str]:
        data = await asyncio.wait_for(
            asyncio.get_running_loop().sock_recv(self.sock, 4096), timeout
        )
        return data.decode().split("\n")

    def close(self) -> None:
        self.sock.close()


class Skopd(SkopdProcess):
    """The daemon told to notify `notify_to`, as systemd's `$NOTIFY_SOCKET` would."""

    def __init__(self, workdir: Path, notify_to: Notifications, **server: Any) -> None:
        keys = ", ".join(json.dumps(k) for k in server.get("api_keys", ()))
        super().__init__(
            workdir,
            '[relevance]\nbackend = "lexical"\n'
            "[crawler]\nallow_private_networks = true\nrequest_timeout_s = 10.0\n",
            server=f"api_keys = [{keys}]\n",
            env={"NOTIFY_SOCKET": notify_to.address},
        )
        self.notifications = notify_to

    async def ready(self, *extra: str) -> list[str]:
        """Starts the daemon and returns its first notification."""
        proc = await self.launch(*extra)
        told = asyncio.ensure_future(self.notifications.next())
        died = asyncio.ensure_future(proc.wait())
        await asyncio.wait([told, died], return_when=asyncio.FIRST_COMPLETED)
        died.cancel()
        if not told.done():
            told.cancel()
            raise AssertionError(f"skopd exited before it was ready; stderr:\n{self.stderr()}")
        return told.result()

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> float:
        """Signals the daemon; returns how long it took to exit, after checking it exited 0."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.proc.send_signal(sig)
        assert "STOPPING=1" in await self.notifications.next(timeout=5)
        code = await self.exit_code(STOP_LIMIT_S)
        took = loop.time() - start
        assert code == 0, f"exit code {code}; stderr:\n{self.stderr()}"
        return took


@pytest.fixture
def notifications(request: pytest.FixtureRequest) -> Iterator[Notifications]:
    """An abstract socket unless a test asks for "path" (through indirect parametrisation)."""
    if getattr(request, "param", "abstract") == "abstract":
        n = Notifications(f"@skopd-test-{secrets.token_hex(8)}")
        yield n
        n.close()
        return
    # pytest's tmp_path can be longer than a Unix socket path may be (108 bytes).
    with tempfile.TemporaryDirectory(prefix="skopd-") as short:
        n = Notifications(f"{short}/notify")
        yield n
        n.close()


@pytest.fixture
async def spawn(
    tmp_path: Path, notifications: Notifications
) -> AsyncIterator[Callable[..., Skopd]]:
    daemons: list[Skopd] = []

    def factory(**server: Any) -> Skopd:
        d = Skopd(tmp_path, notifications, **server)
        daemons.append(d)
        return d

    yield factory
    for d in daemons:
        await d.close()


@pytest.fixture
async def slow_site(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> str:
    """Forty pages that each take a second: a job on it runs for a while."""

    async def page(request: web.Request) -> web.Response:
        await asyncio.sleep(SLOW_PAGE_S)
        links = "".join(f'<a href="/p/{i}">board minutes {i}</a>' for i in range(40))
        return web.Response(
            text=f"<html><body><h1>Board {request.path}</h1>{links}</body></html>",
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    server = await aiohttp_server(app, host="127.0.0.1")
    return str(server.make_url("/"))


async def submit(
    http: aiohttp.ClientSession, d: Skopd, website: str, headers: dict[str, str] | None = None
) -> str:
    body = {"website": website, "prompt": PROMPT, "parameters": {"max_pages": 40}}
    async with http.post(f"{d.base}/scrape", json=body, headers=headers) as resp:
        assert resp.status == 201, await resp.text()
        job_id: str = (await resp.json())["job_id"]
    return job_id


async def status_of(
    http: aiohttp.ClientSession, d: Skopd, job_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    async with http.get(f"{d.base}/scrape/status/{job_id}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        body: dict[str, Any] = await resp.json()
    return body


async def wait_ended(
    http: aiohttp.ClientSession, d: Skopd, job_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    for _ in range(600):
        status = await status_of(http, d, job_id, headers)
        if not status["is_active"]:
            break
        await asyncio.sleep(0.1)
    return status


# -- readiness -------------------------------------------------------------------------


@pytest.mark.parametrize("notifications", ["path", "abstract"], indirect=True)
async def test_ready_once_serving_and_stopping_on_sigterm(
    spawn: Callable[..., Skopd], notifications: Notifications
) -> None:
    d = spawn()
    assert "READY=1" in await d.ready()
    async with aiohttp.ClientSession() as http, http.get(f"{d.base}/healthz") as resp:
        assert resp.status == 200  # already serving when READY arrives, not just listening
        assert (await resp.json())["database"] == "ok"
    await d.stop()  # STOPPING=1 arrives, then exit 0


def test_notify_without_systemd_or_with_a_dead_socket_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    notify("READY=1")
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    notify("READY=1")


# -- graceful stop ---------------------------------------------------------------------


async def _read_until_crawling(stream: aiohttp.StreamReader) -> None:
    """Until the first page was fetched: the job is then deep in its crawl."""
    async with asyncio.timeout(20):
        while line := await stream.readline():
            if line.startswith(b"event: page"):
                return
    raise AssertionError("the stream ended before the job crawled a page")


async def _drained(stream: aiohttp.StreamReader) -> None:
    while await stream.read(65536):
        pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_stops_at_once_with_a_job_and_a_stream_open(
    spawn: Callable[..., Skopd], slow_site: str, sig: signal.Signals
) -> None:
    d = spawn()
    await d.ready()
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as http:
        job_id = await submit(http, d, slow_site)
        async with http.get(f"{d.base}/scrape/events/{job_id}") as stream:
            assert stream.status == 200
            await _read_until_crawling(stream.content)
            signalled = loop.time()
            assert d.proc is not None
            d.proc.send_signal(sig)
            await asyncio.wait_for(_drained(stream.content), 2.0)
            assert loop.time() - signalled < 2.0
            assert "STOPPING=1" in await d.notifications.next(timeout=5)
        assert await d.exit_code(STOP_LIMIT_S) == 0
        assert loop.time() - signalled < STOP_LIMIT_S
        assert "Traceback" not in d.stderr()

        # The next start resumes the job and takes it to an end.
        assert "READY=1" in await d.ready()
        ended = await wait_ended(http, d, job_id)
        assert ended["status"] == "completed", ended
        assert any(w.startswith("resumed after daemon restart") for w in ended["warnings"])
        await d.stop()


async def test_while_stopping_new_work_gets_503_and_requests_in_flight_finish(
    spawn: Callable[..., Skopd], notifications: Notifications, minutes_site: str
) -> None:
    key = "sk-ops-" + secrets.token_hex(8)
    d = spawn(api_keys=[key])
    await d.ready()
    # A submission in flight: headers sent, body held back until the daemon is stopping.
    body = json.dumps({"website": minutes_site, "prompt": PROMPT}).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", d.port)
    writer.write(
        b"POST /scrape HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Expect: 100-continue\r\nX-API-Key: %s\r\nContent-Length: %d\r\n\r\n"
        % (key.encode(), len(body))
    )
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
    await asyncio.sleep(0.1)
    assert d.proc is not None
    d.proc.send_signal(signal.SIGTERM)
    assert "STOPPING=1" in await notifications.next(timeout=5)

    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{d.base}/scrape", json={"website": minutes_site, "prompt": PROMPT}, headers=headers
        ) as resp:
            assert resp.status == 503
            assert int(resp.headers["Retry-After"]) > 0
            err = await resp.json()
        assert err["error"] is True and err["status_code"] == 503 and err["path"] == "/scrape"
        assert "shutting down" in err["message"]
        async with http.get(f"{d.base}/scrape/jobs", headers=headers) as resp:
            assert resp.status == 200  # reading goes on until the daemon is gone

    writer.write(body)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 201"), head
    writer.close()
    assert await d.exit_code(STOP_LIMIT_S) == 0


# -- logs --------------------------------------------------------------------------------


async def test_json_logs_show_job_transitions_and_never_an_api_key(
    spawn: Callable[..., Skopd], minutes_site: str
) -> None:
    key = "sk-ops-" + secrets.token_hex(12)
    wrong = "sk-wrong-" + secrets.token_hex(12)
    d = spawn(api_keys=[key])
    await d.ready("--log-format", "json", "--log-level", "debug")
    async with aiohttp.ClientSession() as http:
        job_id = await submit(http, d, minutes_site, {"X-API-Key": key})
        ended = await wait_ended(http, d, job_id, {"Authorization": f"Bearer {key}"})
        assert ended["status"] == "completed"
        async with http.get(f"{d.base}/scrape/jobs", headers={"X-API-Key": wrong}) as resp:
            assert resp.status == 401
    await d.stop()

    text = d.stderr()
    records = [json.loads(line) for line in text.splitlines()]
    assert records
    for rec in records:
        assert {"ts", "level", "logger", "msg"} <= set(rec), rec
        assert datetime.fromisoformat(rec["ts"]).utcoffset() is not None
        assert rec["level"] in ("debug", "info", "warning", "error", "critical")
    about_job = " ".join(
        r["msg"] + " " + str(r.get("state", "")) for r in records if _mentions(r, job_id)
    )
    for state in ("pending", "in_progress", "completed"):
        assert state in about_job, about_job
    everything = text + d.stdout_log.read_text()
    assert key not in everything and wrong not in everything


async def test_json_logs_show_each_error_and_why_a_job_failed(
    spawn: Callable[..., Skopd], aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    """One JSON line per error with the job's id and the error's code; a failed job's
    state=failed line says why."""

    async def home(_: web.Request) -> web.Response:
        return web.Response(
            text='<html><body><a href="/gone">board minutes 2024</a></body></html>',
            content_type="text/html",
        )

    app = web.Application()
    app.router.add_get("/", home)
    server = await aiohttp_server(app, host="127.0.0.1")
    d = spawn()
    await d.ready("--log-format", "json")
    async with aiohttp.ClientSession() as http:
        erring = await submit(http, d, str(server.make_url("/")))
        failing = await submit(http, d, str(server.make_url("/nothing-here")))
        assert (await wait_ended(http, d, erring))["status"] == "completed"
        assert (await wait_ended(http, d, failing))["status"] == "failed"
    await d.stop()

    records = [json.loads(line) for line in d.stderr().splitlines()]
    errors = [r for r in records if r.get("code") and r.get("job_id") == erring]
    assert len(errors) == 1, errors
    assert errors[0]["code"] == "http_404" and errors[0]["level"] == "warning"
    assert errors[0]["url"] == str(server.make_url("/gone"))
    ended = [r for r in records if r.get("job_id") == failing and r.get("state") == "failed"]
    assert len(ended) == 1, records
    assert "HTTP 404" in ended[0]["reason"], ended
    assert "exc" not in ended[0]


def _mentions(record: dict[str, Any], job_id: str) -> bool:
    return bool(record.get("job_id") == job_id or job_id in record["msg"])


def _format(formatter: logging.Formatter, **extra: Any) -> list[str]:
    """A line with `extra` fields, then an error with its traceback, through `formatter`."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"skopd.test.{secrets.token_hex(4)}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    logger.info("job %s ended", "job_abc", extra=extra)
    try:
        raise ZeroDivisionError("no pages")
    except ZeroDivisionError:
        logger.exception("crawl crashed")
    return out.getvalue().splitlines()


def test_structured_fields_become_json_keys_and_text_pairs() -> None:
    lines = _format(JsonFormatter(), job_id="job_abc", state="failed", elapsed_s=1.5)
    assert len(lines) == 2  # a traceback stays inside its line
    first, second = (json.loads(line) for line in lines)
    assert first["msg"] == "job job_abc ended" and first["logger"].startswith("skopd.test.")
    assert (first["job_id"], first["state"], first["elapsed_s"]) == ("job_abc", "failed", 1.5)
    assert first["ts"].endswith("Z") and first["level"] == "info"
    assert second["level"] == "error" and "ZeroDivisionError: no pages" in second["exc"]

    text = _format(TextFormatter(), job_id="job_abc", state="failed")
    assert " INFO skopd.test." in text[0]
    assert text[0].endswith(" job job_abc ended job_id=job_abc state=failed")
    assert "ZeroDivisionError: no pages" in text[-1]
