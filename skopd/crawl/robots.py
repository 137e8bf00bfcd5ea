"""robots.txt: fetched once per origin and job through the Downloader, parsed by protego.

What a robots.txt answer means follows RFC 9309: 2xx is parsed; 4xx (404 included) means
everything is allowed; 5xx, 429 and network failures are retried a little, then the origin
is treated as fully disallowed for the rest of the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp
from protego import Protego

from skopd.crawl.fetch import Downloader, FetchError, RetryPolicy, describe, read_limited

MAX_ROBOTS_BYTES = 512 * 1024
MAX_CRAWL_DELAY_S = 60.0
# Everything that says "the server is not answering now" is retried before giving up.
UNAVAILABLE_KINDS = frozenset(
    {"timeout", "connect_timeout", "connection_error", "connection_reset"}
)
ROBOTS_RETRY = RetryPolicy(
    retries=2, statuses=frozenset({408, 429, *range(500, 600)}), kinds=UNAVAILABLE_KINDS
)


class Robots:
    """One origin's rules for our user agent."""

    __slots__ = ("agent", "crawl_delay", "origin", "parser", "problem", "sitemaps")

    def __init__(
        self,
        origin: str,
        agent: str,
        parser: Protego | None = None,
        crawl_delay: float = 0.0,
        sitemaps: tuple[str, ...] = (),
        problem: str = "",
    ) -> None:
        self.origin = origin
        self.agent = agent
        self.parser = parser  # None: nothing is disallowed
        self.crawl_delay = crawl_delay
        self.sitemaps = sitemaps
        self.problem = problem  # why the whole origin is disallowed; "" when it is not

    def allows(self, url: str) -> bool:
        if self.problem:
            return False
        return self.parser is None or bool(self.parser.can_fetch(url, self.agent))


def parse_robots(origin: str, body: bytes, agent: str) -> Robots:
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff")
    parser = Protego.parse(text)
    delay = parser.crawl_delay(agent) or 0.0
    sitemaps = tuple(dict.fromkeys(parser.sitemaps))
    # No group applies to us (or none says Disallow): skip protego on every URL.
    everything = parser.can_fetch(f"{origin}/", agent) and "disallow" not in text.lower()
    return Robots(
        origin,
        agent,
        None if everything else parser,
        min(float(delay), MAX_CRAWL_DELAY_S),
        sitemaps,
    )


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of an absolute URL, lowercased."""
    scheme, _, rest = url.partition("://")
    end = len(rest)
    for stop in "/?#":
        index = rest.find(stop, 0, end)
        if index != -1:
            end = index
    return f"{scheme.lower()}://{rest[:end].lower()}"


class RobotsCache:
    """A job's robots.txt files, one fetch per origin however many workers ask at once.

    `respect` False still reads robots.txt (for its Sitemap lines) but obeys none of it.
    """

    def __init__(
        self,
        http: Downloader,
        delay_s: float,
        respect: bool,
        warn: Callable[[str], None],
    ) -> None:
        self.http = http
        self.agent = http.cfg.user_agent
        self.delay_s = delay_s
        self.respect = respect
        self.warn = warn
        self.deadline: float | None = None
        self._rules: dict[str, Robots] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def cached(self, origin: str) -> Robots | None:
        return self._rules.get(origin)

    async def get(self, origin: str) -> Robots:
        rules = self._rules.get(origin)
        if rules is not None:
            return rules
        lock = self._locks.setdefault(origin, asyncio.Lock())
        async with lock:
            rules = self._rules.get(origin)
            if rules is None:
                rules = self._rules[origin] = await self._load(origin)
                self._locks.pop(origin, None)
        return rules

    async def _load(self, origin: str) -> Robots:
        rules = await self._fetch(origin)
        if not self.respect:
            return Robots(origin, self.agent, sitemaps=rules.sitemaps)
        if rules.problem:
            self.warn(
                f"robots.txt of {origin} could not be fetched ({rules.problem}); "
                "nothing there was crawled"
            )
        elif rules.crawl_delay > 0:
            self.warn(
                f"robots.txt of {origin} asks for a Crawl-delay of {rules.crawl_delay:g} s; "
                "requests to it are spaced at least that far apart"
            )
        return rules

    async def _fetch(self, origin: str) -> Robots:
        url = f"{origin}/robots.txt"
        try:
            async with self.http.get(
                url, delay_s=self.delay_s, deadline=self.deadline, retry=ROBOTS_RETRY
            ) as resp:
                if resp.status in ROBOTS_RETRY.statuses:
                    return self._unavailable(origin, f"HTTP {resp.status}")
                if resp.status >= 300:  # 4xx, or a redirect that was not followed
                    return Robots(origin, self.agent)
                body, _ = await read_limited(resp, MAX_ROBOTS_BYTES)
        except FetchError as exc:
            if exc.kind in UNAVAILABLE_KINDS:
                return self._unavailable(origin, exc.message)
            # A refused address or a bad redirect: the pages' own requests report it.
            return Robots(origin, self.agent)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return self._unavailable(origin, describe(exc))
        return parse_robots(origin, body, self.agent)

    def _unavailable(self, origin: str, why: str) -> Robots:
        tries = ROBOTS_RETRY.retries + 1
        return Robots(origin, self.agent, problem=f"{why}, after up to {tries} tries")
