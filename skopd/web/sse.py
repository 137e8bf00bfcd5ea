"""Server-sent events: a job's lossless stream, the all-jobs status stream, stream tokens.

A job stream subscribes to the bus first, then replays what came after `Last-Event-ID` (from
the live job's in-memory ring when it reaches back that far, else from the store), then
follows the live tail, skipping what the replay already covered: no gap, no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import weakref
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from skopd.errors import BadRequest, NotFound, Unauthorized
from skopd.events import EventBus, Sink, Subscription, encode, http_chunk, status_frame
from skopd.models import JobStatus, StatusResponse, status_view
from skopd.store import Store
from skopd.web.middleware import OWNER, SIGNER_KEY, TOKEN_JOB
from skopd.web.routes import json_response
from skopd.web.state import BUS, FANOUT, SCHEDULER, STORE

RETRY_MS = 2000
PING_S = 15.0
SEND_TIMEOUT_S = 30.0
REPLAY_PAGE = 200  # events per read and write while replaying: bounds memory per stream
MAX_UNSENT_BYTES = 256 * 1024  # a live client with more than this not yet taken is cut off
SEND_BUFFER_BYTES = 64 * 1024  # a live stream's kernel send buffer (not autotuned to MBs)
SHUTDOWN_GRACE_S = 1.0  # for the fan-out helper to send what it holds when the daemon stops
DRAIN_POLL_S = 0.01
PING = b": ping\n\n"
PING_CHUNK = http_chunk(PING)
_DIGITS = re.compile(r"[0-9]{1,18}")

STREAMS: web.AppKey[weakref.WeakSet[EventSourceResponse]] = web.AppKey("streams")
routes = web.RouteTableDef()


class TokenRequest(msgspec.Struct, forbid_unknown_fields=True):
    job_id: str | None = None


class TokenResponse(msgspec.Struct):
    token: str
    expires_at: datetime
    job_id: str | None


@routes.post("/scrape/events/token")
async def mint_token(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        req = msgspec.json.decode(body, type=TokenRequest) if body.strip() else TokenRequest()
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadRequest(f"body: {exc}") from exc
    if req.job_id is not None:
        await request.app[SCHEDULER].owned(request[OWNER], req.job_id)
    token, expires = request.app[SIGNER_KEY].mint(request[OWNER], req.job_id)
    return json_response(
        TokenResponse(token, datetime.fromtimestamp(expires, UTC), req.job_id), status=201
    )


def _last_event_id(request: web.Request) -> int:
    raw = request.headers.get("Last-Event-ID") or request.query.get("last_event_id") or "0"
    if not _DIGITS.fullmatch(raw):  # ASCII only: str.isdigit() takes '²', which int() refuses
        raise BadRequest("last_event_id: must be a non-negative integer")
    return int(raw)


async def _write(resp: _Stream, data: bytes = b"") -> bool:
    """False when the client is gone: the stream then ends. A client that stops reading is
    cut by the response's own ping, which aborts the connection after SEND_TIMEOUT_S (a
    timer around every write would cost more than the write). The first write also sends
    the headers and the retry line."""
    data, resp.head = resp.head + data, b""
    if not data:
        return True
    try:
        await resp.write(data)
    except (ConnectionResetError, RuntimeError):
        return False
    return True


@routes.get("/scrape/events/{job_id}")
async def job_events(request: web.Request) -> web.StreamResponse:
    job_id = request.match_info["job_id"]
    scope = request.get(TOKEN_JOB)
    if scope is not None and scope != job_id:
        raise NotFound(f"job {job_id[:80]} not found")
    bus, store = request.app[BUS], request.app[STORE]
    if bus.live_owner(job_id) != request[OWNER]:  # not running here for this caller: ask
        await request.app[SCHEDULER].owned(request[OWNER], job_id)
    last = _last_event_id(request)
    sub = bus.subscribe_job(job_id)  # before the replay: what is published meanwhile waits
    try:
        async with _open(request) as resp:
            last, live = await _replay(resp, bus, store, job_id, last)
            if last < 0:
                return resp
            if not live:
                job = await store.get_job(job_id)
                if job is None or not job.status.is_active:
                    # Ended: its `done` is stored, perhaps after the first replay's read.
                    await _replay(resp, bus, store, job_id, last)
                    return resp
            await _follow(request, resp, sub, last)
            return resp
    finally:
        bus.unsubscribe(sub)


class _Stream(EventSourceResponse):
    """The headers wait for the first write, which starts with the retry line: opening a
    stream and sending its history costs one socket write, not three (a thousand streams
    joining a running job add up)."""

    _send_headers_immediately = False
    head = b"retry: %d\n\n" % RETRY_MS  # what the first write starts with
    sink: Sink | None = None  # once live: the fan-out helper writes this stream
    handler_task: asyncio.Task[object] | None = None  # to stop a replay at shutdown
    peer: asyncio.Transport | None = None  # the client connection

    async def _ping(self) -> None:
        """aiohttp-sse's keepalive, except that a live stream's goes the way its events go:
        two writers on one socket would interleave their chunks."""
        while True:
            await asyncio.sleep(self._ping_interval)
            if self.sink is not None:
                if not self.sink(PING_CHUNK):
                    break
                continue
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await self.write(PING)
            except TimeoutError:
                self._abort_transport()
                break
            except (ConnectionResetError, RuntimeError):  # RuntimeError: written after EOF
                break


@contextlib.asynccontextmanager
async def _open(request: web.Request) -> AsyncIterator[_Stream]:
    async with sse_response(
        request, ping_interval=PING_S, send_timeout=SEND_TIMEOUT_S, response_cls=_Stream
    ) as resp:
        resp.handler_task = asyncio.current_task()
        resp.peer = request.transport
        request.app[STREAMS].add(resp)
        yield resp


async def _replay(
    resp: _Stream, bus: EventBus, store: Store, job_id: str, last: int
) -> tuple[int, bool]:
    """Send the history after `last`: from the store until the job's ring reaches back far
    enough, then from the ring. The new last id (-1 when the stream is over), and whether the
    ring answered (the job was live then: its later batches are waiting on the bus)."""
    while True:
        if bus.closed:  # the daemon is stopping: the client resumes from here later
            return -1, False
        recent = bus.recent(job_id, last)  # no await between this read and `last` moving
        if recent is not None:
            frames, last = recent
            if not await _write(resp, frames):
                return -1, True
            return last, True
        rows = await store.events_after(job_id, last, REPLAY_PAGE)
        if not rows:
            return (last if await _write(resp) else -1), False
        if not await _write(resp, b"".join(frame for _, _, frame in rows)):
            return -1, False
        last, name, _ = rows[-1]
        if name == "done":
            return -1, False


async def _follow(request: web.Request, resp: _Stream, sub: Subscription, last: int) -> None:
    """The live tail: once the transport has sent the history, the socket goes to the
    fan-out helper, which writes every later batch (and the keepalives); when the stream
    ends, the helper lets go and the response ends here, or the connection is cut."""
    transport, fanout = request.transport, request.app[FANOUT]
    sock = None if transport is None else transport.get_extra_info("socket")
    if transport is None or sock is None or not await _drained(transport):
        sub.end(dropped=True)
        return
    with contextlib.suppress(OSError):  # the kernel's share of a slow client, bounded too
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
    wid = fanout.attach(sock, lambda: _cut(sub, transport))
    if not wid:
        _cut(sub, transport)
        return
    resp.sink = functools.partial(fanout.write, wid)
    sub.go_live(resp.sink, last)
    await _until_over(resp, sub)  # the sink stays: keepalives must not take the transport
    if sub.ended.done() and not sub.dropped:  # `done` sent, or the daemon is stopping
        grace = SHUTDOWN_GRACE_S if request.app[BUS].closed else SEND_TIMEOUT_S
        with contextlib.suppress(TimeoutError):
            if await asyncio.wait_for(fanout.end(wid), grace):
                return
    fanout.drop(wid)
    _cut(sub, transport)


async def _drained(transport: asyncio.Transport) -> bool:
    """Wait until the transport has sent everything (the helper's writes must come after)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SEND_TIMEOUT_S
    while transport.get_write_buffer_size():
        if transport.is_closing() or loop.time() > deadline:
            return False
        await asyncio.sleep(DRAIN_POLL_S)
    return not transport.is_closing()


def _cut(sub: Subscription, transport: asyncio.Transport) -> None:
    """A client that left, or took too little (more than MAX_UNSENT_BYTES waited for it):
    the connection is cut; it resumes with Last-Event-ID, so it can neither grow our memory
    nor slow anyone else."""
    sub.end(dropped=True)
    transport.abort()


async def _until_over(resp: _Stream, sub: Subscription) -> None:
    """Until `done` was sent, the subscriber was dropped, the daemon stops, or the client left
    (the response's ping notices that)."""
    gone = asyncio.ensure_future(resp.wait())
    try:
        await asyncio.wait([sub.ended, gone], return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()


@routes.get("/scrape/events")
async def all_events(request: web.Request) -> web.StreamResponse:
    if request.get(TOKEN_JOB) is not None:
        raise Unauthorized("this stream token is scoped to one job; mint one without job_id")
    owner = request[OWNER]
    bus, store = request.app[BUS], request.app[STORE]
    sub = bus.subscribe_owner(owner)
    try:
        async with _open(request) as resp:
            for status in (JobStatus.IN_PROGRESS, JobStatus.PENDING):
                for job in await store.list_jobs(owner, status, 100, None):
                    snap = await store.snapshot(job.job_id)
                    if snap is None:
                        continue
                    view = StatusResponse(**status_view(snap.job, snap.errors, snap.warnings))
                    if not await _write(resp, status_frame(encode(view))):
                        return resp
            if not await _write(resp):  # the headers, if no status went yet
                return resp
            await _follow(request, resp, sub, 0)
            return resp
    finally:
        bus.unsubscribe(sub)


async def close_streams(app: web.Application) -> None:
    """On shutdown: end every open stream at once, so none holds shutdown up. A live one
    ends cleanly (the fan-out helper gets SHUTDOWN_GRACE_S to send what it holds); one still
    replaying its history (perhaps waiting on the store, or on a slow client) is cut and its
    handler cancelled: the client resumes with Last-Event-ID once the daemon is back."""
    app[BUS].close()
    streams: weakref.WeakSet[EventSourceResponse] = app[STREAMS]
    for resp in list(streams):
        if isinstance(resp, _Stream) and resp.sink is None:
            if resp.peer is not None:
                resp.peer.abort()
            if resp.handler_task not in (None, asyncio.current_task()):
                resp.handler_task.cancel()
            continue
        try:
            resp.stop_streaming()
        except RuntimeError:
            pass


async def stop_fanout(app: web.Application) -> None:
    """on_cleanup, once the streams have ended: the fan-out helper exits."""
    await app[FANOUT].close()
