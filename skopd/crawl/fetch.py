"""The downloader: one HTTP client for every job, a global request pool and per-host slots.

Redirects are followed here, hop by hop, so every hop is checked (scheme, address) and
counted against `max_redirects`; the address check itself sits in the resolver, so a DNS
name that resolves to a forbidden address is refused on the address actually connected to.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from skopd.config import CrawlerConfig

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class FetchError(Exception):
    """A request that produced no usable response; `kind` becomes the JobError's type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class BlockedAddress(OSError):
    pass


def forbidden_address(ip: str) -> bool:
    """Loopback, private, link-local, CGNAT, multicast, reserved or unspecified."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return (
        not addr.is_global
        or addr.is_multicast
        or addr.is_reserved
        or addr.is_loopback
        or addr.is_link_local
        or addr.is_private
        or addr.is_unspecified
    )


class GuardedResolver(AbstractResolver):
    """Drops forbidden addresses from every resolution; none left is a refusal."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed = [r for r in results if not forbidden_address(r["host"])]
        if not allowed:
            raise BlockedAddress(
                f"{host} resolves to a private, loopback or reserved address "
                f"({results[0]['host'] if results else 'none'}); refused "
                "(crawler.allow_private_networks is false)"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class _HostSlot:
    __slots__ = ("next_at", "sem", "users")

    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.next_at = 0.0
        self.users = 0


class Downloader:
    def __init__(self, cfg: CrawlerConfig) -> None:
        self.cfg = cfg
        self._pool = asyncio.Semaphore(cfg.concurrency)
        self._slots: dict[str, _HostSlot] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        resolver: AbstractResolver = aiohttp.ThreadedResolver()
        if not self.cfg.allow_private_networks:
            resolver = GuardedResolver(resolver)
        connector = aiohttp.TCPConnector(
            limit=self.cfg.concurrency,
            limit_per_host=self.cfg.per_host_concurrency,
            resolver=resolver,
            ttl_dns_cache=60,
            enable_cleanup_closed=True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.cfg.user_agent, "Accept-Language": "*"},
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            max_line_size=16384,
            max_field_size=16384,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "downloader is not started"
        return self._session

    @asynccontextmanager
    async def _slot(self, host: str, delay_s: float) -> AsyncIterator[None]:
        slot = self._slots.get(host)
        if slot is None:
            if len(self._slots) > 4096:
                self._prune()
            slot = self._slots[host] = _HostSlot(self.cfg.per_host_concurrency)
        slot.users += 1
        try:
            async with slot.sem:
                if delay_s > 0:
                    wait = slot.next_at - time.monotonic()
                    slot.next_at = max(slot.next_at, time.monotonic()) + delay_s
                    if wait > 0:
                        await asyncio.sleep(wait)
                async with self._pool:
                    yield
        finally:
            slot.users -= 1

    def _prune(self) -> None:
        now = time.monotonic()
        for host in [h for h, s in self._slots.items() if s.users == 0 and s.next_at < now]:
            del self._slots[host]

    def _check_target(self, url: URL) -> None:
        if url.scheme not in ("http", "https"):
            raise FetchError("unsupported_scheme", f"only http and https are crawled: {url}")
        host = url.raw_host or ""
        if not host:
            raise FetchError("invalid_url", f"no host in {url}")
        if not self.cfg.allow_private_networks:
            try:
                ipaddress.ip_address(host.strip("[]"))
            except ValueError:
                return  # a name: the resolver checks the addresses it resolves to
            if forbidden_address(host.strip("[]")):
                raise FetchError(
                    "forbidden_address",
                    f"{host} is a private, loopback or reserved address; refused "
                    "(crawler.allow_private_networks is false)",
                )

    @asynccontextmanager
    async def get(
        self, url: str, *, delay_s: float = 0.0, stream: bool = False
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET `url`, following redirects; yields the final response, unread.

        `stream` responses (document downloads) get per-read timeouts instead of a total
        deadline; the job's own timeout bounds them.
        """
        timeout = (
            aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.cfg.request_timeout_s,
                sock_read=self.cfg.request_timeout_s,
            )
            if stream
            else aiohttp.ClientTimeout(total=self.cfg.request_timeout_s)
        )
        current = _parse(url)
        seen: set[str] = set()
        for _hop in range(self.cfg.max_redirects + 1):
            self._check_target(current)
            seen.add(str(current))
            async with self._slot(current.host_port_subcomponent or "", delay_s):
                resp = await _request(self.session, current, timeout)
                try:
                    location = resp.headers.get("Location") if resp.status in REDIRECTS else None
                    if location is None:
                        yield resp
                        return
                finally:
                    resp.release()
            try:
                current = current.join(_parse(location.strip()))
            except (ValueError, FetchError) as exc:
                raise FetchError("invalid_redirect", f"bad redirect Location {location!r}") from exc
            if str(current) in seen:
                raise FetchError("redirect_loop", f"redirect loop at {current}")
        raise FetchError(
            "too_many_redirects", f"more than {self.cfg.max_redirects} redirects from {url}"
        )


def _parse(url: str) -> URL:
    try:
        return URL(url, encoded="%" in url)
    except (ValueError, TypeError) as exc:
        raise FetchError("invalid_url", f"invalid URL {url!r}: {exc}") from exc


async def _request(
    session: aiohttp.ClientSession, url: URL, timeout: aiohttp.ClientTimeout
) -> aiohttp.ClientResponse:
    try:
        return await session.get(url, allow_redirects=False, timeout=timeout)
    except TimeoutError as exc:
        raise FetchError("timeout", f"timed out fetching {url}") from exc
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, BlockedAddress):
            raise FetchError("forbidden_address", str(exc.os_error)) from exc
        raise FetchError("connection_error", f"cannot connect to {url.host}: {exc}") from exc
    except aiohttp.ClientResponseError as exc:
        raise FetchError("bad_response", f"bad response from {url}: {exc.message}") from exc
    except aiohttp.ClientError as exc:
        raise FetchError("http_error", f"request to {url} failed: {exc}") from exc


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Read at most `limit` decoded bytes; the flag says whether the body was cut."""
    length = resp.content_length
    if length is not None and length <= limit and not resp.headers.get("Content-Encoding"):
        return await resp.read(), False
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks)[:limit], True
    return b"".join(chunks), False


def describe(exc: BaseException) -> str:
    if isinstance(exc, FetchError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def header(resp: aiohttp.ClientResponse, name: str) -> str | None:
    value: Any = resp.headers.get(name)
    return value if isinstance(value, str) else None
