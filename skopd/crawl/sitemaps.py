"""Sitemaps: the URLs a site lists for crawlers, read within fixed bounds.

Found through robots.txt `Sitemap:` lines and /sitemap.xml; sitemap indexes are followed.
Gzip is recognised by its magic bytes, whatever the name or headers say, and decoded with a
cap on the decoded size. lxml parses each file as it arrives, entities and network off, and
reading stops as soon as the job has enough URLs.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable

import aiohttp
from lxml import etree

from skopd.crawl.fetch import Downloader, FetchError, Gate, describe

MAX_FILES = 10  # per job, indexes included
MAX_URLS = 5000  # per job
MAX_BYTES = 16 * 1024 * 1024  # decoded, per file
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 65536
_ROOTS = frozenset({"urlset", "sitemapindex"})
_ENTRIES = frozenset({"url", "sitemap"})


class SitemapError(Exception):
    """A file that cannot be read as a sitemap."""


class SitemapReader:
    """One sitemap file, fed in chunks: collects its <loc> values, at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kind = ""  # "urlset" or "sitemapindex", once the root is read
        self.locs: list[str] = []
        self.cut = False  # stopped early: `limit` URLs or MAX_BYTES decoded
        self._head = b""
        self._gunzip: zlib._Decompress | None = None
        self._sniffed = False
        self._size = 0
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            huge_tree=False,
            recover=True,
        )

    def feed(self, data: bytes) -> None:
        if self.cut:
            return
        if not self._sniffed:
            self._head += data
            if len(self._head) < len(GZIP_MAGIC):
                return
            data, self._head, self._sniffed = self._head, b"", True
            if data.startswith(GZIP_MAGIC):
                self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self._gunzip is None:
            self._take(data)
            return
        # In pieces: a small compressed chunk may hold megabytes, and parsing stops early.
        while data and not self.cut:
            try:
                piece = self._gunzip.decompress(data, CHUNK)
            except zlib.error as exc:
                raise SitemapError(f"bad gzip data: {exc}") from exc
            data = self._gunzip.unconsumed_tail
            if not piece:
                break
            self._take(piece)

    def _take(self, data: bytes) -> None:
        room = MAX_BYTES - self._size
        if len(data) > room:
            data, self.cut = data[:room], True
        self._size += len(data)
        self._parser.feed(data)
        self._collect()

    def close(self) -> None:
        if not self._sniffed and self._head:
            self._sniffed = True
            self._parser.feed(self._head)
        try:
            self._parser.close()
        except etree.XMLSyntaxError:
            pass  # recover mode: what was read stands
        self._collect()
        if self.kind not in _ROOTS:
            found = f"<{self.kind}>" if self.kind else "no XML"
            raise SitemapError(f"not a sitemap ({found})")

    def _collect(self) -> None:
        for event, element in self._parser.read_events():
            if not isinstance(element, etree._Element) or not isinstance(element.tag, str):
                continue  # start/end events carry elements; comments and PIs are skipped
            tag = element.tag
            name = tag.rpartition("}")[2]
            if event == "start":
                if not self.kind:
                    self.kind = name
                    if name not in _ROOTS:
                        raise SitemapError(f"not a sitemap (<{name}>)")
            elif name == "loc":
                self._loc(element)
            elif name in _ENTRIES:
                element.clear()  # keep memory flat however long the file is
                parent = element.getparent()
                while parent is not None and element.getprevious() is not None:
                    del parent[0]

    def _loc(self, element: etree._Element) -> None:
        parent = element.getparent()
        if parent is None or str(parent.tag).rpartition("}")[2] not in _ENTRIES:
            return  # <image:loc> and the like
        text = (element.text or "").strip()
        if not text or self.cut:
            return
        self.locs.append(text)
        if len(self.locs) >= self.limit:
            self.cut = True


class SitemapWalk:
    """A job's sitemap files, breadth first: at most MAX_FILES files and MAX_URLS URLs."""

    def __init__(
        self,
        http: Downloader,
        gate: Gate,
        deadline: float | None,
        in_scope: Callable[[str], bool],
        report: Callable[[str, str], None],
    ) -> None:
        self.http = http
        self.gate = gate
        self.deadline = deadline
        self.in_scope = in_scope
        self.report = report  # (sitemap url, what went wrong)
        self.files = 0
        self.urls = 0
        self.truncated = False

    async def entries(
        self, listed: tuple[str, ...], guessed: str
    ) -> AsyncIterator[tuple[str, list[str]]]:
        """(sitemap url, the page and document URLs it lists), file by file.

        The guessed /sitemap.xml is tried only when robots.txt lists none, and fails quietly.
        """
        queue: deque[tuple[str, bool]] = deque((u, False) for u in listed if self.in_scope(u))
        if not queue:
            queue.append((guessed, True))
        queued = {u for u, _ in queue}
        while queue:
            if self.files >= MAX_FILES or self.urls >= MAX_URLS:
                self.truncated = True
                return
            url, quiet = queue.popleft()
            self.files += 1
            reader = await self._read(url, quiet)
            if reader is None:
                continue
            self.truncated |= reader.cut
            if reader.kind == "sitemapindex":
                for loc in reader.locs:
                    if loc not in queued and self.in_scope(loc):
                        queued.add(loc)
                        queue.append((loc, False))
                continue
            self.urls += len(reader.locs)
            yield url, reader.locs

    async def _read(self, url: str, quiet: bool) -> SitemapReader | None:
        reader = SitemapReader(MAX_URLS - self.urls)
        try:
            async with self.http.get(url, gate=self.gate, deadline=self.deadline) as resp:
                if resp.status >= 400:
                    raise SitemapError(f"HTTP {resp.status}")
                async for chunk in resp.content.iter_chunked(CHUNK):
                    reader.feed(chunk)
                    if reader.cut:
                        break
            reader.close()
        except SitemapError as exc:
            problem = str(exc)
        except FetchError as exc:
            problem = exc.message
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = describe(exc)
        else:
            return reader
        if not quiet:
            self.report(url, problem)
        return None
