"""Live streams written by the fan-out helper process: slow clients are cut and resume, the
helper's death loses nothing, keepalives and the stream's end come through it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from skopd.fanout import Fanout
from skopd.web import sse as sse_routes
from skopd.web.state import FANOUT
from tests.conftest import Daemon, submit, wait_done
from tests.test_events import PROMPT, collect, sse

DaemonFactory = Callable[..., Awaitable[Daemon]]
ServerFactory = Callable[..., Awaitable[TestServer]]
FRAME = re.compile(rb"id: (\d+)\nevent: (\w+)\ndata: [^\n]*\n\n")


def link_site(pages: int, delay: float = 0.0, hold: asyncio.Event | None = None) -> web.Application:
    """Pages /p/0 .. /p/{pages-1}, a tree: page n links 3n+1 to 3n+3. With `hold`, the home
    page waits for it to be set."""

    async def page(request: web.Request) -> web.Response:
        n = int(request.match_info.get("n", "0"))
        if hold is not None and n == 0:
            await hold.wait()
        if delay:
            await asyncio.sleep(delay)
        links = "".join(
            f'<a href="/p/{m}">page {m}</a>' for m in range(3 * n + 1, min(3 * n + 4, pages))
        )
        body = f"<html><body><p>page {n}</p>{links}</body></html>"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/p/{n}", page)
    return app


async def test_a_client_that_stops_reading_is_cut_off_and_resumes_losing_nothing(
    daemon_factory: DaemonFactory,
    aiohttp_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse_routes, "MAX_UNSENT_BYTES", 4096)
    monkeypatch.setattr(sse_routes, "SEND_BUFFER_BYTES", 4096)
    site = await aiohttp_server(link_site(600), host="127.0.0.1")
    d = await daemon_factory(crawler={"per_host_delay_ms": 0})
    assert d.client is not None
    job_id = await submit(d.client, str(site.make_url("/")), PROMPT, max_pages=600, max_depth=20)
    # A client with a tiny receive window that reads the headers, then nothing more.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.setblocking(False)
    port = d.client.server.port
    assert port is not None
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    writer.write(f"GET /scrape/events/{job_id} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    done = await wait_done(d.client, job_id)
    assert done["status"] == "completed"
    # The daemon gave up on it: what it has ends before `done`, and the connection is closed.
    raw = bytearray()
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            raw += chunk
    except ConnectionResetError:
        pass

    writer.close()
    got = [(int(i), name) for i, name in FRAME.findall(bytes(raw))]
    assert got and all(name != b"done" for _, name in got)
    assert [i for i, _ in got] == list(range(1, len(got) + 1))
    # It resumes where it stopped and gets the rest once, to `done`.
    last = got[-1][0]
    rest = await collect(d.client, f"/scrape/events/{job_id}", {"Last-Event-ID": str(last)})
    assert [e["id"] for e in rest] == list(range(last + 1, last + 1 + len(rest)))
    assert rest[-1]["event"] == "done"
    assert d.client.app[FANOUT].streams() == 0


async def test_streams_resume_with_nothing_lost_when_the_helper_dies(
    daemon_factory: DaemonFactory, aiohttp_server: ServerFactory
) -> None:
    site = await aiohttp_server(link_site(80, delay=0.03), host="127.0.0.1")
    d = await daemon_factory(crawler={"per_host_delay_ms": 0, "concurrency": 2})
    assert d.client is not None
    fanout = d.client.app[FANOUT]
    job_id = await submit(d.client, str(site.make_url("/")), PROMPT, max_pages=80, max_depth=20)
    path = f"/scrape/events/{job_id}"
    seen: list[dict[str, Any]] = []
    killed = None
    with pytest.raises(aiohttp.ClientError):  # the connection is cut mid-stream
        async with d.client.get(path) as resp:
            async for event in sse(resp):
                seen.append(event)
                if killed is None and len(seen) >= 10 and fanout.streams() == 1:
                    killed = fanout.helper_pid()
                    assert killed is not None
                    os.kill(killed, signal.SIGKILL)
    assert killed is not None and seen[-1]["event"] != "done"
    rest = await collect(d.client, path, {"Last-Event-ID": str(seen[-1]["id"])})
    ids = [e["id"] for e in seen + rest]
    assert ids == list(range(1, len(ids) + 1))
    assert rest[-1]["event"] == "done"
    assert fanout.helper_pid() not in (None, killed)  # a new helper wrote the resumed stream


async def test_a_waiting_live_stream_gets_keepalives_through_the_helper(
    daemon_factory: DaemonFactory,
    aiohttp_server: ServerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sse_routes, "PING_S", 0.1)
    hold = asyncio.Event()
    site = await aiohttp_server(link_site(3, hold=hold), host="127.0.0.1")
    d = await daemon_factory()
    assert d.client is not None
    job_id = await submit(d.client, str(site.make_url("/")), PROMPT)
    async with d.client.get(f"/scrape/events/{job_id}") as resp:
        pings = 0
        while pings < 3:  # the job waits on its first page: nothing but keepalives
            line = await asyncio.wait_for(resp.content.readline(), 10)
            pings += line == b": ping\n"
        assert d.client.app[FANOUT].streams() == 1
        hold.set()
        events = [event async for event in sse(resp)]
    assert events[-1]["event"] == "done"
    assert d.client.app[FANOUT].streams() == 0


async def _recv(sock: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = b""
    while len(got) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, size - len(got)), 10)
        assert chunk, "closed"
        got += chunk
    return got


async def test_a_helper_that_stops_reading_is_replaced_and_its_streams_resume() -> None:
    """A stalled (not dead) helper must not let the daemon's queue of messages to it grow
    without end: past max_queued bytes it is killed, its streams end as dropped (their
    clients resume from the store), and the next stream gets a new helper."""
    limit = 512 * 1024
    fanout = Fanout(max_unsent=1 << 20, max_queued=limit)
    ours, theirs = socket.socketpair()
    ours2, theirs2 = socket.socketpair()
    for sock in (theirs, theirs2):
        sock.setblocking(False)
    stalled = None
    try:
        gone: list[str] = []
        wid = fanout.attach(ours, lambda: gone.append("first"))
        assert wid and fanout.write(wid, b"hello")
        assert await _recv(theirs, 5) == b"hello"  # the helper is up and writing
        stalled = fanout.helper_pid()
        assert stalled is not None
        os.kill(stalled, signal.SIGSTOP)
        chunk = b"x" * 65536
        for _ in range(1000):
            if gone:
                break
            fanout.write(wid, bytes(chunk))  # a new object each time: one message each
            assert fanout.queued() <= limit
            await asyncio.sleep(0)  # the write's group is closed and queued
        assert gone == ["first"], "the stalled helper was never given up"
        assert fanout.streams() == 0 and fanout.queued() == 0
        assert not fanout.write(wid, b"late")
        with pytest.raises(ProcessLookupError):  # killed and reaped, not left stopped
            os.kill(stalled, 0)
        wid2 = fanout.attach(ours2, lambda: gone.append("second"))
        assert wid2 and fanout.write(wid2, b"again")
        assert await _recv(theirs2, 5) == b"again"
        assert fanout.helper_pid() not in (None, stalled)
    finally:
        if stalled is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stalled, signal.SIGKILL)
        await fanout.close()
        for sock in (ours, theirs, ours2, theirs2):
            sock.close()
