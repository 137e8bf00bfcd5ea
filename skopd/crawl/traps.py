"""Crawler traps: URL shapes that generate pages without end, and pages seen before.

The checks read a link's de-duplication key (`urls.normalize_url`), which is seen once per
job, so a count per path or pattern counts distinct URLs. Each check is one pass over the
URL; `TrapGuard` keeps the per-job counters and what it stopped, and saves them with the
crawl's checkpoint (`state`, `restore`), so a resumed crawl goes on counting where it was.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import time
from collections import Counter

import msgspec

URL_LENGTH = "url_length"
QUERY_VARIANTS = "query_variants"
REPEATED_SEGMENTS = "repeated_segments"
CALENDAR = "calendar"
DUPLICATE_CONTENT = "duplicate_content"

MAX_QUERIES_PER_PATH = 100  # above the usual pagination, far below a session-id trap
MAX_SEGMENT_REPEATS = 2  # /a/b/a/b/a/b: "a" a third time is a loop
MAX_DATE_CHAIN = 100  # date-like links found on date-like pages, per URL pattern
EARLIEST_YEAR = 1900
YEARS_AHEAD = 10
# What the checkpoint keeps (it is written with every flush): the paths and patterns with
# the highest counts (those nearest their limit), and the newest page digests. Up to these
# sizes it is exact; a bigger guard is saved at most every SAVE_BIG_EVERY_S.
MAX_SAVED_COUNTS = 4096
MAX_SAVED_CONTENTS = 8192  # 128 KB of digests
SAVE_BIG_EVERY_S = 2.0
DIGEST_BYTES = 8
PAIR_BYTES = 2 * DIGEST_BYTES  # a page's body digest, then its URL's

# A year and a month (2024-06, 2024/6, 2024_06, 2024.06, and so full dates too), or a
# year parameter (?year=2024): one pass over the URL.
_DATE = re.compile(
    r"(?<![0-9])([12][0-9]{3})[-/_.](?:0?[1-9]|1[0-2])(?![0-9])"
    r"|[?&;](?i:year|yr|jahr|annee|anno|jaar|ano|rok)=([0-9]{1,6})(?![0-9])"
)
_DIGITS = re.compile(r"[0-9]+")


def years(key: str) -> list[int]:
    """Years of the date-like parts of a URL: year-month pairs and year= parameters."""
    return [int(m.group(1) or m.group(2)) for m in _DATE.finditer(key)]


def date_pattern(key: str) -> str:
    """The URL with every number replaced: one pattern per calendar view."""
    return _DIGITS.sub("#", key)


def repeated_segment(key: str) -> bool:
    """A path segment occurring more than MAX_SEGMENT_REPEATS times: a relative-link loop."""
    path = key.partition("?")[0]
    start = path.find("/", path.find("://") + 3)
    if start == -1 or path.count("/", start) <= MAX_SEGMENT_REPEATS:
        return False
    counts: dict[str, int] = {}
    for segment in path[start + 1 :].split("/"):
        if segment:
            n = counts[segment] = counts.get(segment, 0) + 1
            if n > MAX_SEGMENT_REPEATS:
                return True
    return False


class TrapState(msgspec.Struct, array_like=True):
    """A TrapGuard's counters as the checkpoint keeps them."""

    queries: dict[str, int]
    chains: dict[str, int]
    contents: bytes  # per page, oldest first: its body's digest, then its URL's


def _digest(data: bytes) -> bytes:
    # Stable across processes (hash() is salted per process); 64 bits are plenty for one
    # job's pages. SHA-1 here is a checksum, not a defence: it is twice blake2b's speed
    # (13 against 31 µs for a 25 KB page).
    return hashlib.sha1(data, usedforsecurity=False).digest()[:DIGEST_BYTES]


def _highest(counts: Counter[str]) -> dict[str, int]:
    if len(counts) <= MAX_SAVED_COUNTS:
        return dict(counts)
    return dict(heapq.nlargest(MAX_SAVED_COUNTS, counts.items(), key=lambda kv: kv[1]))


class TrapGuard:
    """A job's trap checks; `stopped` counts the URLs (and pages) each kind held back."""

    def __init__(
        self,
        max_url_length: int,
        year_now: int,
        max_queries_per_path: int = MAX_QUERIES_PER_PATH,
        max_date_chain: int = MAX_DATE_CHAIN,
    ) -> None:
        self.max_url_length = max_url_length
        self.first_year = EARLIEST_YEAR
        self.last_year = year_now + YEARS_AHEAD
        self.max_queries = max_queries_per_path
        self.max_chain = max_date_chain
        self.stopped: Counter[str] = Counter()
        self._queries: Counter[str] = Counter()
        self._chains: Counter[str] = Counter()
        self._contents: dict[bytes, bytes] = {}  # body digest -> URL digest
        # The same pairs as they came, so the checkpoint is one slice, not a join per flush.
        self._packed = bytearray()
        self._saved: msgspec.Raw | None = None  # what checkpoint() gave last, and when
        self._saved_at = 0.0
        self._changed = False  # since then

    def page_link(self, url: str, key: str, from_dated_page: bool) -> str | None:
        """The trap that stops a link to a page, or None. Call once per distinct key."""
        kind = (
            self._shape(url, key)
            or self._calendar(key, from_dated_page)
            or self._query_variant(key)
        )
        return self._stop(kind)

    def document_link(self, url: str, key: str) -> str | None:
        """Documents end the chain, so only the shapes no server means are refused."""
        return self._stop(self._shape(url, key))

    def dated(self, url: str) -> bool:
        return _DATE.search(url) is not None

    def duplicate_content(self, body: bytes, url: str) -> bool:
        """Whether an earlier page at another URL had exactly these bytes (its links are then
        known). The same URL read again (a resumed crawl choosing its links anew) is not.
        What the crawl stops for it, it counts in `stopped` itself (see copy_stopped)."""
        digest, where = _digest(body), _digest(url.encode())
        seen = self._contents.get(digest)
        if seen is not None:
            return seen != where
        self._contents[digest] = where
        self._packed += digest + where
        if len(self._packed) > 4 * PAIR_BYTES * MAX_SAVED_CONTENTS:
            del self._packed[: -PAIR_BYTES * MAX_SAVED_CONTENTS]
        self._changed = True
        return False

    def copy_stopped(self) -> None:
        """A page found to be a copy (duplicate_content) was not followed."""
        self.stopped[DUPLICATE_CONTENT] += 1

    def state(self) -> TrapState:
        """The counters as the checkpoint keeps them (bounded: see MAX_SAVED_COUNTS)."""
        return TrapState(
            _highest(self._queries),
            _highest(self._chains),
            bytes(self._packed[-PAIR_BYTES * MAX_SAVED_CONTENTS :]),
        )

    def checkpoint(self) -> msgspec.Raw:
        """state(), encoded: again only when something changed, and once the guard is too
        big to save whole, at most every SAVE_BIG_EVERY_S (it rides in every flush)."""
        now = time.monotonic()
        if self._saved is not None and (
            not self._changed or (self._big() and now - self._saved_at < SAVE_BIG_EVERY_S)
        ):
            return self._saved
        self._saved = msgspec.Raw(msgspec.msgpack.encode(self.state()))
        self._saved_at, self._changed = now, False
        return self._saved

    def _big(self) -> bool:
        return (
            len(self._queries) > MAX_SAVED_COUNTS
            or len(self._chains) > MAX_SAVED_COUNTS
            or len(self._contents) > MAX_SAVED_CONTENTS
        )

    def restore(self, state: TrapState) -> None:
        """Go on from a checkpoint's counters (a resumed crawl)."""
        self._queries.update(state.queries)
        self._chains.update(state.chains)
        raw = state.contents[: len(state.contents) // PAIR_BYTES * PAIR_BYTES]
        for i in range(0, len(raw), PAIR_BYTES):
            self._contents[raw[i : i + DIGEST_BYTES]] = raw[i + DIGEST_BYTES : i + PAIR_BYTES]
        self._packed += raw
        self._changed = True

    def _stop(self, kind: str | None) -> str | None:
        if kind is not None:
            self.stopped[kind] += 1
        return kind

    def _shape(self, url: str, key: str) -> str | None:
        if len(url) > self.max_url_length:
            return URL_LENGTH
        if repeated_segment(key):
            return REPEATED_SEGMENTS
        return None

    def _calendar(self, key: str, from_dated_page: bool) -> str | None:
        found = years(key)
        if not found:
            return None
        if any(not self.first_year <= y <= self.last_year for y in found):
            return CALENDAR
        if from_dated_page:
            pattern = date_pattern(key)
            self._chains[pattern] += 1
            self._changed = True
            if self._chains[pattern] > self.max_chain:
                return CALENDAR
        return None

    def _query_variant(self, key: str) -> str | None:
        path, _, query = key.partition("?")
        if not query:
            return None
        self._queries[path] += 1
        self._changed = True
        return QUERY_VARIANTS if self._queries[path] > self.max_queries else None

    def summary(self) -> list[str]:
        """One warning per kind of trap met, with its count."""
        messages = {
            URL_LENGTH: f"links longer than crawler.max_url_length ({self.max_url_length} "
            "characters) were not followed",
            QUERY_VARIANTS: f"links were not followed: more than {self.max_queries} query "
            "strings on one path (a crawler trap: session ids, endless filters or sorting)",
            REPEATED_SEGMENTS: "links were not followed: a path segment repeated "
            f"{MAX_SEGMENT_REPEATS + 1} or more times (a crawler trap such as /a/b/a/b/a/b)",
            CALENDAR: f"links were not followed: dates outside {self.first_year}-"
            f"{self.last_year}, or more than {self.max_chain} date-to-date links of one "
            "URL pattern (a calendar trap)",
            DUPLICATE_CONTENT: "pages had the same content as an earlier page; their links "
            "were not followed",
        }
        return [
            f"{self.stopped[kind]} {text}" for kind, text in messages.items() if self.stopped[kind]
        ]
