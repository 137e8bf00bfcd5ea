"""A forward proxy on 127.0.0.1 through which Chromium makes every connection.

Chromium resolves and connects by itself, so the crawler's address policy (no loopback,
private, link-local or metadata addresses unless `crawler.allow_private_networks`) would not
apply to what a rendered page loads: its scripts, XHR, fetch(), iframes. Launched with
`--proxy-server` pointing here (and `<-loopback>` in the bypass list, which removes
Chromium's implicit bypass of loopback), Chromium hands every request to this proxy by host
name; the proxy resolves the name through the policy and connects only to an address the
policy allows, the one it checked (no second lookup to rebind).

Plain http requests arrive in absolute form (`GET http://host/path HTTP/1.1`): each gets
its own upstream connection, closed after the answer. https and WebSocket arrive as
`CONNECT host:port` and are tunnelled as opaque bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Final, Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from skopd.crawl.netpolicy import AddressPolicy, parse_address

log = logging.getLogger(__name__)

_HEAD_LIMIT: Final = 64 * 1024
_HEAD_TIMEOUT_S: Final = 30.0
_CONNECT_TIMEOUT_S: Final = 10.0
_CHUNK: Final = 65536
# Hop-by-hop headers of the client's request that must not travel upstream.
_HOP_HEADERS: Final = frozenset(
    {b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive"}
)


class Refused(Exception):
    """The policy does not let the browser reach this host."""


class Destinations(Protocol):
    async def addresses(self, host: str, port: int) -> list[str]:
        """The IP addresses the browser may connect to for host:port; Refused if none."""
        ...


class PolicyDestinations:
    """The crawler's address policy (netpolicy), with its guarded resolver: a name is
    resolved once, here, and only the addresses the policy allows are dialled."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._resolver = policy.resolver(resolver or aiohttp.ThreadedResolver())

    async def addresses(self, host: str, port: int) -> list[str]:
        problem = self._policy.host_problem(host)
        if problem is not None:
            raise Refused(problem)
        literal = parse_address(host)
        if literal is not None:
            return [str(literal)]  # host_problem checked it
        try:
            results = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        except OSError as exc:
            raise Refused(str(exc) or f"{host} does not resolve") from exc
        return [r["host"] for r in results]


class ForwardProxy:
    """The proxy server; `url` is what Chromium's --proxy-server gets."""

    def __init__(self, policy: Destinations) -> None:
        self._policy = policy
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self.url = ""

    async def start(self) -> str:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT
            )
            port = self._server.sockets[0].getsockname()[1]
            self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._handlers):
            task.cancel()
        if self._handlers:
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._exchange(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(_HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        line, _, rest = head.partition(b"\r\n")
        parts = line.split(b" ")
        if len(parts) != 3:
            await _answer(writer, 400, "malformed request line")
            return
        method, target, version = parts
        path = b""
        if method == b"CONNECT":
            host, port = _split_authority(target.decode("latin-1"), 443)
        else:
            host, port, origin_form = _absolute(target.decode("latin-1"))
            path = origin_form.encode("latin-1")
        if not host:
            await _answer(writer, 400, "the proxy needs an absolute http URL or CONNECT")
            return
        try:
            upstream = await self._connect(host, port)
        except Refused as exc:
            log.info("browser request refused", extra={"host": host, "reason": str(exc)})
            await _answer(writer, 403, f"refused by skopd: {exc}")
            return
        except (OSError, TimeoutError) as exc:
            await _answer(writer, 502, f"cannot connect to {host}:{port}: {exc}")
            return
        up_reader, up_writer = upstream
        try:
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                up_writer.write(b" ".join((method, path, version)) + b"\r\n")
                up_writer.write(_request_headers(rest))
            await _pipe(reader, writer, up_reader, up_writer, method != b"CONNECT")
        finally:
            up_writer.close()

    async def _connect(
        self, host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self._policy.addresses(host, port)
        if not addresses:
            raise Refused(f"{host} has no allowed address")
        failure: BaseException | None = None
        for address in addresses:
            try:
                async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                    return await asyncio.open_connection(address, port, limit=_HEAD_LIMIT)
            except (OSError, TimeoutError) as exc:
                failure = exc
        assert failure is not None
        raise failure


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
    plain_http: bool,
) -> None:
    """Copy both ways until either side closes."""
    back = _copy_response(up_reader, writer) if plain_http else _copy(up_reader, writer)
    tasks = [asyncio.ensure_future(_copy(reader, up_writer)), asyncio.ensure_future(back)]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while chunk := await source.read(_CHUNK):
        sink.write(chunk)
        await sink.drain()


async def _copy_response(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """The answer, its head told that the connection closes after it (one request each)."""
    try:
        head = await source.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        head = b""
    except asyncio.IncompleteReadError as exc:
        head = exc.partial
    if head.endswith(b"\r\n\r\n"):
        line, _, rest = head.partition(b"\r\n")
        kept = [h for h in rest.split(b"\r\n") if h and not _is_hop(h)]
        head = b"\r\n".join([line, *kept, b"Connection: close", b"", b""])
    sink.write(head)
    await _copy(source, sink)


def _request_headers(raw: bytes) -> bytes:
    kept = [h for h in raw.split(b"\r\n") if h and not _is_hop(h)]
    return b"\r\n".join([*kept, b"Connection: close", b"", b""])


def _is_hop(header: bytes) -> bool:
    name = header.partition(b":")[0].strip().lower()
    return name in _HOP_HEADERS


def _absolute(target: str) -> tuple[str, int, str]:
    """(host, port, origin-form target) of an absolute http URL; ("", 0, "") otherwise."""
    try:
        parts = urlsplit(target)
        port = parts.port or 80
    except ValueError:
        return "", 0, ""
    if parts.scheme != "http" or not parts.hostname:
        return "", 0, ""
    path = parts.path or "/"
    return parts.hostname, port, f"{path}?{parts.query}" if parts.query else path


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{authority}")
        return parts.hostname or "", parts.port or default_port
    except ValueError:
        return "", 0


async def _answer(writer: asyncio.StreamWriter, status: int, message: str) -> None:
    reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}[status]
    body = message.encode("utf-8", "replace")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    with contextlib.suppress(OSError):
        await writer.drain()
