"""The downloader: one HTTP client for every job, a global request pool and per-host slots.

Redirects are followed here, hop by hop, so every hop is checked (scheme, address, and the
caller's gate: robots.txt) and counted against `max_redirects`; the address check itself
sits in the resolver, so a DNS name that resolves to a forbidden address is refused on the
address actually connected to.

Transient failures are retried here too: 429 and 503 slow their host down for a while and
wait for its Retry-After; other transient answers and failures back off exponentially.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from skopd.config import CrawlerConfig
from skopd.crawl.netpolicy import AddressPolicy, BlockedAddress

REDIRECTS = frozenset({301, 302, 303, 307, 308})
TRANSIENT_STATUSES = frozenset({408, 429, 502, 503, 504})
TRANSIENT_KINDS = frozenset({"connect_timeout", "connection_reset"})
SLOW_DOWN_STATUSES = frozenset({429, 503})
MAX_RETRY_WAIT_S = 60.0
BACKOFF_BASE_S = 0.5
SLOW_DOWN_FOR_S = 60.0  # a host stays slowed this long after its last 429/503
MIN_PENALTY_S = 0.5
MAX_PENALTY_S = 5.0

# Called before each hop with its URL: returns the pause between requests to that host,
# or raises FetchError to refuse the hop (robots.txt).
Gate = Callable[[URL], Awaitable[float]]


class RetryPolicy(NamedTuple):
    """Answers with `statuses` and failures of `kinds` are retried, at most `retries` times."""

    retries: int
    statuses: frozenset[int] = TRANSIENT_STATUSES
    kinds: frozenset[str] = TRANSIENT_KINDS


class FetchError(Exception):
    """A request that produced no usable response; `kind` becomes the JobError's type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _HostSlot:
    __slots__ = ("next_at", "penalty_s", "penalty_until", "sem", "users")

    def __init__(self, concurrency: int) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.next_at = 0.0
        self.users = 0
        self.penalty_s = 0.0  # the extra pause of a host that answered 429/503
        self.penalty_until = 0.0

    def delay(self, delay_s: float, now: float) -> float:
        return delay_s if self.penalty_until <= now else max(delay_s, self.penalty_s)

    def slow_down(self, retry_after: float | None) -> None:
        """Space requests further apart for a while (doubling on repeats), and pause the
        whole host for its Retry-After when that is short enough to wait for."""
        now = time.monotonic()
        current = self.penalty_s if self.penalty_until > now else 0.0
        self.penalty_s = min(MAX_PENALTY_S, max(MIN_PENALTY_S, 2 * current, retry_after or 0))
        self.penalty_until = now + SLOW_DOWN_FOR_S
        if retry_after and retry_after <= MAX_RETRY_WAIT_S:
            self.next_at = max(self.next_at, now + retry_after)


class Downloader:
    """`resolver` replaces the system resolver (tests map names without asking DNS)."""

    def __init__(self, cfg: CrawlerConfig, resolver: AbstractResolver | None = None) -> None:
        self.cfg = cfg
        self.policy = AddressPolicy(
            cfg.allow_private_networks, cfg.allowed_hosts, cfg.allowed_networks
        )
        self._resolver = resolver
        self._pool = asyncio.Semaphore(cfg.concurrency)
        self._slots: dict[str, _HostSlot] = {}
        self._session: aiohttp.ClientSession | None = None
        self.retry = RetryPolicy(cfg.max_retries)

    async def start(self) -> None:
        policy = self.policy
        connector = aiohttp.TCPConnector(
            limit=self.cfg.concurrency,
            limit_per_host=self.cfg.per_host_concurrency,
            resolver=policy.resolver(self._resolver or aiohttp.ThreadedResolver()),
            ttl_dns_cache=60,
            enable_cleanup_closed=True,
            # Every socket is checked on the address it is about to dial.
            socket_factory=None if policy.open else policy.socket_factory,
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
    async def _slot(
        self, host: str, delay_s: float, pooled: bool = True
    ) -> AsyncIterator[_HostSlot]:
        slot = self._slots.get(host)
        if slot is None:
            if len(self._slots) > 4096:
                self._prune()
            slot = self._slots[host] = _HostSlot(self.cfg.per_host_concurrency)
        slot.users += 1
        try:
            async with slot.sem:
                now = time.monotonic()
                delay = slot.delay(delay_s, now)
                wait = slot.next_at - now
                if delay > 0 or wait > 0:
                    slot.next_at = max(slot.next_at, now) + delay
                    if wait > 0:
                        await asyncio.sleep(wait)
                if not pooled:
                    yield slot
                    return
                async with self._pool:
                    yield slot
        finally:
            slot.users -= 1

    @asynccontextmanager
    async def hold(self, url: str, delay_s: float) -> AsyncIterator[None]:
        """One of `url`'s host slots (and its pause) for requests made elsewhere: a render.

        Not one of the global pool's: renders have their own bound (the browser's tabs)."""
        async with self._slot(_parse(url).host_port_subcomponent or "", delay_s, pooled=False):
            yield

    def _prune(self) -> None:
        now = time.monotonic()
        idle = [
            h
            for h, s in self._slots.items()
            if s.users == 0 and s.next_at < now and s.penalty_until < now
        ]
        for host in idle:
            del self._slots[host]

    def _check_target(self, url: URL) -> None:
        if url.scheme not in ("http", "https"):
            raise FetchError("unsupported_scheme", f"only http and https are crawled: {url}")
        host = url.raw_host or ""
        if not host:
            raise FetchError("invalid_url", f"no host in {url}")
        # IP literals in any spelling are refused here; names when they are resolved and
        # again on the socket, on the address actually dialled.
        problem = self.policy.host_problem(host)
        if problem is not None:
            kind = "invalid_url" if "not a valid host" in problem else "forbidden_address"
            raise FetchError(kind, problem)

    @asynccontextmanager
    async def get(
        self,
        url: str,
        *,
        delay_s: float = 0.0,
        stream: bool = False,
        gate: Gate | None = None,
        deadline: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """GET `url`, following redirects; yields the final response, unread.

        `stream` responses (document downloads) get per-read timeouts and the longer total
        deadline `download_timeout_s`, so a body dripping a byte at a time still ends.
        `gate`, when given, is asked for every hop and replaces `delay_s`. No retry waits
        past `deadline` (a `time.monotonic()`).
        """
        timeout = (
            aiohttp.ClientTimeout(
                total=self.cfg.download_timeout_s,
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
            delay = await gate(current) if gate is not None else delay_s
            async with self._send(current, timeout, delay, retry or self.retry, deadline) as resp:
                location = resp.headers.get("Location") if resp.status in REDIRECTS else None
                if location is None:
                    yield resp
                    return
            try:
                current = current.join(_parse(location.strip()))
            except (ValueError, FetchError) as exc:
                raise FetchError("invalid_redirect", f"bad redirect Location {location!r}") from exc
            if str(current) in seen:
                raise FetchError("redirect_loop", f"redirect loop at {current}")
        raise FetchError(
            "too_many_redirects", f"more than {self.cfg.max_redirects} redirects from {url}"
        )

    @asynccontextmanager
    async def _send(
        self,
        url: URL,
        timeout: aiohttp.ClientTimeout,
        delay_s: float,
        retry: RetryPolicy,
        deadline: float | None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """One hop, retried as `retry` says; yields the response it settled on."""
        host = url.host_port_subcomponent or ""
        attempt = 0
        while True:
            async with self._slot(host, delay_s) as slot:
                try:
                    resp = await _request(self.session, url, timeout)
                except FetchError as exc:
                    wait = _wait_after_failure(exc, attempt, retry, deadline)
                    if wait is None:
                        raise
                else:
                    try:
                        wait = _wait_after_answer(resp, slot, attempt, retry, deadline)
                    except BaseException:
                        resp.release()
                        raise
                    if wait is None:
                        try:
                            yield resp
                        finally:
                            resp.release()
                        return
                    resp.release()
            attempt += 1
            if wait > 0:
                await asyncio.sleep(wait)


def _wait_after_answer(
    resp: aiohttp.ClientResponse,
    slot: _HostSlot,
    attempt: int,
    retry: RetryPolicy,
    deadline: float | None,
) -> float | None:
    """How long to wait before asking again, or None to keep this answer.

    A Retry-After wait is served by the host's slot (every request to the host waits), so
    0 is returned for it; a backoff is this request's own.
    """
    if resp.status not in retry.statuses:
        return None
    after = None
    if resp.status in SLOW_DOWN_STATUSES:
        after = retry_after(header(resp, "Retry-After"))
        slot.slow_down(after)
    wait = after if after is not None else _backoff(attempt)
    if attempt >= retry.retries or not _fits(wait, deadline):
        return None
    return 0.0 if after is not None else wait


def _wait_after_failure(
    exc: FetchError, attempt: int, retry: RetryPolicy, deadline: float | None
) -> float | None:
    if exc.kind not in retry.kinds or attempt >= retry.retries:
        return None
    wait = _backoff(attempt)
    return wait if _fits(wait, deadline) else None


def _backoff(attempt: int) -> float:
    """Exponential, with jitter so that requests failed together do not return together."""
    return float(BACKOFF_BASE_S * 2**attempt * random.uniform(0.5, 1.5))


def _fits(wait: float, deadline: float | None) -> bool:
    if wait > MAX_RETRY_WAIT_S:
        return False
    return deadline is None or time.monotonic() + wait < deadline


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    # Headers arrive decoded: "²" or "١٢" pass str.isdigit() but are no HTTP delay, and
    # the date parser's int() reads other scripts' digits too. Only ASCII is HTTP.
    if not value.isascii():
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


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
    except aiohttp.ConnectionTimeoutError as exc:
        raise FetchError("connect_timeout", f"timed out connecting to {url.host}") from exc
    except TimeoutError as exc:
        # Not retried by default: the server has the request and is slow; asking again
        # doubles its load, and request_timeout_s already says how long to wait.
        raise FetchError("timeout", f"timed out fetching {url}") from exc
    except aiohttp.ClientConnectorError as exc:
        if _blocked(exc.os_error):
            raise FetchError("forbidden_address", str(exc.os_error)) from exc
        raise FetchError("connection_error", f"cannot connect to {url.host}: {exc}") from exc
    except aiohttp.ClientResponseError as exc:
        raise FetchError("bad_response", f"bad response from {url}: {exc.message}") from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        raise FetchError("connection_reset", f"connection to {url.host} was lost: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise FetchError("http_error", f"request to {url} failed: {exc}") from exc


def _blocked(error: BaseException | None) -> bool:
    """A refusal by the address policy (aiohappyeyeballs may merge several into one)."""
    return isinstance(error, BlockedAddress) or "refused by the address policy" in str(error)


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
    if isinstance(exc, TimeoutError):
        return (
            "timed out before the whole answer arrived (crawler.request_timeout_s for pages, "
            "crawler.download_timeout_s for documents)"
        )
    return f"{type(exc).__name__}: {exc}"


def failure_kind(exc: BaseException, default: str) -> str:
    """The JobError type of a failure while reading an answer."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "bad_response"
    return default


def header(resp: aiohttp.ClientResponse, name: str) -> str | None:
    value: Any = resp.headers.get(name)
    return value if isinstance(value, str) else None
