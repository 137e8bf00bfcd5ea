"""The live streams' writer: a helper process that writes each live batch to every subscriber.

A live job's batch goes to a thousand sockets; each write is 10-20 µs of CPU, most of it the
kernel's, and on the event loop that is time the crawl does not get. So once a stream has
replayed its history, the daemon passes a duplicate of the client's socket to this process
(SCM_RIGHTS over a Unix socket) and from then on sends it each batch once, with the list of
streams it is for; the writes happen on another core. The daemon keeps its own end of the
socket, to notice the client leave and to end the HTTP response when the helper is done.

The helper is stdlib only and starts in milliseconds. It dies with the daemon (its control
socket closes); when it dies first, every stream it held ends as dropped (the clients resume
with Last-Event-ID) and the next stream starts a new one.

Control messages, daemon to helper: a 9-byte header (kind, a, b), then:
  ATTACH   (id, 0)            the socket rides on this message's first byte
  SEND     (ids, len)         ids as uint32, then the bytes to write to each
  END      (ids, 0)           write what is pending, close, answer ENDED (or GONE)
  DROP     (ids, 0)           close now, no answer
Helper to daemon, 5 bytes: ENDED or GONE (the client left, or took too little: more than
`max_unsent` bytes were waiting for it), and the id.
"""

from __future__ import annotations

import array
import asyncio
import collections
import contextlib
import errno
import logging
import os
import selectors
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

ATTACH, SEND, END, DROP = 1, 2, 3, 4
ENDED, GONE = 5, 6
_HEAD = struct.Struct("<BII")
_REPLY = struct.Struct("<BI")
_READ_BYTES = 1 << 18
_FDS_PER_READ = 256
STOP_WAIT_S = 2.0
# Control bytes waiting for the helper beyond what its socket's kernel buffer holds. A helper
# that is alive but does not read (stopped, starved) lets this grow: past it, the helper is
# taken for stalled, killed, and its streams end as dropped (clients resume from the store
# with Last-Event-ID); the next stream starts a new helper.
MAX_QUEUED_BYTES = 16 << 20
KILL_WAIT_S = 0.1


def _ids(wids: list[int]) -> bytes:
    return array.array("I", wids).tobytes()


class Fanout:
    """The daemon's side: attach a stream's socket, write to streams (consecutive writes of
    the same bytes become one message), end or drop them. Never blocks the loop."""

    def __init__(self, max_unsent: int, max_queued: int = MAX_QUEUED_BYTES) -> None:
        self.max_unsent = max_unsent
        self.max_queued = max_queued
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctl: socket.socket | None = None
        self._queue: collections.deque[tuple[bytes, int]] = collections.deque()  # (bytes, fd)
        self._queued = 0  # bytes in _queue
        self._writing = False
        self._replies = bytearray()
        self._streams: dict[int, Callable[[], None]] = {}  # id -> called when it is gone
        self._ending: dict[int, asyncio.Future[bool]] = {}
        self._next_id = 0
        self._data: bytes | None = None  # the open group: bytes, and the streams to get them
        self._group: list[int] = []
        self._closed = False

    def attach(self, sock: socket.socket, gone: Callable[[], None]) -> int:
        """Hand the helper a socket whose response headers and history were written and
        whose transport has nothing left to send. `gone` runs if the helper gives up on it.
        0: no helper (it cannot start, or the daemon is stopping)."""
        self._start()
        if self._ctl is None:
            return 0
        self._next_id += 1
        wid = self._next_id
        self._streams[wid] = gone
        self._close_group()
        self._put(_HEAD.pack(ATTACH, wid, 0), os.dup(sock.fileno()))
        return wid

    def write(self, wid: int, data: bytes) -> bool:
        """Queue `data` for a stream; False if it is gone."""
        if wid not in self._streams:
            return False
        if data is not self._data:
            self._close_group()
            self._data = data
            asyncio.get_running_loop().call_soon(self._close_group)
        self._group.append(wid)
        return True

    def end(self, wid: int) -> asyncio.Future[bool]:
        """Once what was written is sent, the helper lets go of the socket: True, and the
        daemon may end the response. False: the client is gone or the helper died."""
        fut = asyncio.get_running_loop().create_future()
        if self._streams.pop(wid, None) is None or self._ctl is None:
            fut.set_result(False)
            return fut
        self._ending[wid] = fut
        self._close_group()
        self._put(_HEAD.pack(END, 1, 0) + _ids([wid]))
        return fut

    def drop(self, wid: int) -> None:
        """Let go of the socket now (the daemon aborts the connection)."""
        if self._streams.pop(wid, None) is not None and self._ctl is not None:
            self._close_group()
            self._put(_HEAD.pack(DROP, 1, 0) + _ids([wid]))
        fut = self._ending.pop(wid, None)
        if fut is not None and not fut.done():
            fut.set_result(False)

    def streams(self) -> int:
        return len(self._streams)

    def helper_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def queued(self) -> int:
        """Bytes waiting for the helper to read them (at most max_queued)."""
        return self._queued

    def _close_group(self) -> None:
        if self._data is None:
            return
        data, wids = self._data, self._group
        self._data, self._group = None, []
        live = [w for w in wids if w in self._streams]
        if live and self._ctl is not None:
            self._put(_HEAD.pack(SEND, len(live), len(data)) + _ids(live) + data)

    # ------------------------------------------------------------------ the helper process

    def _start(self) -> None:
        if self._ctl is not None or self._closed:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "skopd.fanout", str(theirs.fileno()), str(self.max_unsent)],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=env,
                close_fds=True,
            )
        except OSError:
            log.exception("cannot start the live streams' writer")
            ours.close()
            return
        finally:
            theirs.close()
        ours.setblocking(False)
        self._ctl = ours
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)

    def _put(self, data: bytes, fd: int = -1) -> None:
        self._queue.append((data, fd))
        self._queued += len(data)
        if self._queued > self.max_queued:
            self._stalled()
        elif not self._writing:
            self._send()

    def _stalled(self) -> None:
        """The helper has not read its socket for max_queued bytes: it is alive but stuck.
        Kill it (a helper that woke up later would write stale batches), end its streams."""
        log.warning(
            "the live streams' writer took no data for %d bytes: restarting it, its %d "
            "streams resume from the store",
            self._queued,
            len(self._streams),
        )
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(KILL_WAIT_S)  # SIGKILL ends even a stopped process at once
        self._lost()

    def _send(self) -> None:
        ctl = self._ctl
        while ctl is not None and self._queue:
            data, fd = self._queue[0]
            try:
                if fd >= 0:
                    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                    sent = ctl.sendmsg([data], rights)
                    os.close(fd)  # the helper has its own now
                    self._queue[0] = (data[sent:], -1)
                else:
                    sent = ctl.send(data)
                    self._queue[0] = (data[sent:], -1)
                self._queued -= sent
            except BlockingIOError:
                break
            except OSError:
                self._lost()
                return
            if not self._queue[0][0]:
                self._queue.popleft()
        loop = asyncio.get_running_loop()
        if ctl is not None and self._queue and not self._writing:
            self._writing = True
            loop.add_writer(ctl.fileno(), self._send)
        elif ctl is not None and not self._queue and self._writing:
            self._writing = False
            loop.remove_writer(ctl.fileno())

    def _read(self) -> None:
        assert self._ctl is not None
        try:
            data = self._ctl.recv(_READ_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._replies += data
        whole = len(self._replies) - len(self._replies) % _REPLY.size
        for kind, wid in _REPLY.iter_unpack(self._replies[:whole]):
            fut = self._ending.pop(wid, None)
            if fut is not None:
                if not fut.done():
                    fut.set_result(kind == ENDED)
            else:
                gone = self._streams.pop(wid, None)
                if gone is not None:
                    gone()
        del self._replies[:whole]

    def _lost(self) -> None:
        """The helper died (or is being stopped): every stream it held is gone."""
        ctl, self._ctl = self._ctl, None
        if ctl is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(ctl.fileno())
            if self._writing:
                loop.remove_writer(ctl.fileno())
            ctl.close()
        self._writing = False
        for _, fd in self._queue:
            if fd >= 0:
                os.close(fd)
        self._queue.clear()
        self._queued = 0
        self._replies.clear()
        self._data, self._group = None, []
        streams, self._streams = self._streams, {}
        ending, self._ending = self._ending, {}
        for fut in ending.values():
            if not fut.done():
                fut.set_result(False)
        for gone in streams.values():
            gone()
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(0)  # reap it if it is already gone
            if self._proc.returncode is not None:
                self._proc = None

    async def close(self) -> None:
        """Stop the helper (daemon shutdown): its sockets close, it exits."""
        self._closed = True
        proc = self._proc
        self._lost()
        if proc is None:
            return
        for _ in range(int(STOP_WAIT_S / 0.02)):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.02)
        else:
            proc.kill()
            proc.wait()
        self._proc = None


# ---------------------------------------------------------------------------- the helper


class _Out:
    __slots__ = ("ending", "fd", "pending")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = bytearray()
        self.ending = False


class _Helper:
    def __init__(self, ctl: socket.socket, max_unsent: int) -> None:
        self.ctl = ctl
        self.max_unsent = max_unsent
        self.sel = selectors.DefaultSelector()
        self.sel.register(ctl, selectors.EVENT_READ, None)
        self.inbox = bytearray()
        self.fds: collections.deque[int] = collections.deque()
        self.outs: dict[int, _Out] = {}
        self.replies = bytearray()
        self.replying = False  # waiting for the control socket to take the replies

    def run(self) -> None:
        while True:
            for key, events in self.sel.select():
                if key.data is None:
                    if events & selectors.EVENT_READ and not self._take():
                        return
                    if events & selectors.EVENT_WRITE:
                        self._reply()
                else:
                    self._flush(key.data)

    def _take(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.ctl, _READ_BYTES, _FDS_PER_READ)
        except BlockingIOError:
            return True
        except OSError:
            return False
        self.fds.extend(fds)
        if not data:
            return False
        self.inbox += data
        buf, at = bytes(self.inbox), 0
        while len(buf) - at >= _HEAD.size:
            kind, a, b = _HEAD.unpack_from(buf, at)
            ids_end = at + _HEAD.size + 4 * (a if kind != ATTACH else 0)
            end = ids_end + (b if kind == SEND else 0)
            if len(buf) < end:
                break
            wids = array.array("I")
            wids.frombytes(buf[at + _HEAD.size : ids_end])
            if kind == ATTACH:
                fd = self.fds.popleft()
                os.set_blocking(fd, False)
                self.outs[a] = _Out(fd)
            elif kind == SEND:
                payload = buf[ids_end:end]
                for wid in wids:
                    self._write(wid, payload)
            elif kind == END:
                for wid in wids:
                    self._end(wid)
            elif kind == DROP:
                for wid in wids:
                    self._close(wid)
            at = end
        del self.inbox[:at]
        self._reply()
        return True

    def _write(self, wid: int, data: bytes) -> None:
        out = self.outs.get(wid)
        if out is None:
            return
        if out.pending:
            out.pending += data
            if len(out.pending) > self.max_unsent:
                self._gone(wid)
            return
        try:
            sent = os.write(out.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._gone(wid)
            return
        if sent < len(data):
            out.pending += data[sent:]
            self.sel.register(out.fd, selectors.EVENT_WRITE, wid)

    def _flush(self, wid: int) -> None:
        out = self.outs[wid]
        try:
            sent = os.write(out.fd, out.pending)
        except BlockingIOError:
            return
        except OSError:
            self._gone(wid)
            return
        del out.pending[:sent]
        if not out.pending:
            self.sel.unregister(out.fd)
            if out.ending:
                self._close(wid)
                self.replies += _REPLY.pack(ENDED, wid)
        self._reply()

    def _end(self, wid: int) -> None:
        out = self.outs.get(wid)
        if out is None:
            self.replies += _REPLY.pack(GONE, wid)
        elif out.pending:
            out.ending = True
        else:
            self._close(wid)
            self.replies += _REPLY.pack(ENDED, wid)

    def _gone(self, wid: int) -> None:
        self._close(wid)
        self.replies += _REPLY.pack(GONE, wid)

    def _close(self, wid: int) -> None:
        out = self.outs.pop(wid, None)
        if out is None:
            return
        if out.pending:
            self.sel.unregister(out.fd)
        os.close(out.fd)

    def _reply(self) -> None:
        if not self.replies:
            return
        try:
            sent = self.ctl.send(self.replies)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            return
        del self.replies[:sent]
        if bool(self.replies) != self.replying:
            self.replying = not self.replying
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.replying else 0)
            self.sel.modify(self.ctl, events, None)


def main(argv: list[str]) -> None:
    ctl = socket.socket(fileno=int(argv[0]))
    ctl.setblocking(False)
    _Helper(ctl, int(argv[1])).run()


if __name__ == "__main__":
    main(sys.argv[1:])
