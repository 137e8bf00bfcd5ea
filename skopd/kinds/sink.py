"""The crawl's page sink for the kinds that answer with pages: each fetched HTML page is
turned into Markdown and chunks (off the event loop when large) and saved at once."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable

from skopd.crawl import urls
from skopd.crawl.extract import Link, Page
from skopd.models import ChunkOut, PageContent, utcnow
from skopd.store import Store

INLINE_BYTES = 4 * 1024  # converted on the loop below this; a thread hop costs more

# Given the page, its body and its saved content: the links the crawl may follow.
Chooser = Callable[[Page, bytes, PageContent], Awaitable[list[Link]]]


def convert(body: bytes, url: str) -> tuple[str, str, list[ChunkOut]]:
    """(title, markdown, chunks) of an HTML page."""
    from skopd.content.chunks import chunk_markdown
    from skopd.content.markdown import page_content

    content = page_content(body, url)
    chunks = [ChunkOut(c.index, c.heading, c.text) for c in chunk_markdown(content.markdown)]
    return content.title, content.markdown, chunks


class ContentSink:
    """Saves pages in the order they were fetched, each URL once, `max_saved` at most.

    A page is keyed by urls.route_key: a client-side route (`/docs/#/guide`) is a page of
    its own; any other fragment is dropped (`normalize_url`)."""

    def __init__(
        self,
        store: Store,
        job_id: str,
        choose: Chooser | None = None,
        max_saved: int | None = None,
        first_position: int = 0,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.choose = choose
        self.max_saved = max_saved
        self.positions = itertools.count(first_position)
        self.saved: set[str] = set()  # route keys (the content is in the store only)
        # Saved before a restart, but their links were never followed (the daemon stopped
        # before the crawl recorded the page): fetched again, they choose again.
        self._unchosen: set[str] = set()
        self._lock = asyncio.Lock()

    @property
    def full(self) -> bool:
        return self.max_saved is not None and len(self.saved) >= self.max_saved

    def has(self, url: str) -> bool:
        return urls.route_key(url) in self.saved

    async def restore(self, recorded: set[str]) -> None:
        """Continue after a restart: the pages saved before count, and are not saved again.
        `recorded`: route keys of the pages the crawl recorded (and followed)."""
        rows = await self.store.saved_pages(self.job_id)
        for _, url, success in rows:
            key = urls.route_key(url)
            if success:
                self.saved.add(key)
                if key not in recorded:
                    self._unchosen.add(key)
        last = max((position for position, _, _ in rows), default=None)
        if last is not None:
            self.positions = itertools.count(last + 1)

    async def page(self, page: Page, body: bytes, depth: int) -> list[Link]:
        key = urls.route_key(page.url)
        if key in self._unchosen:
            return await self._choose_again(key, page, body)
        if key in self.saved or self.full:
            return []
        converted = await _converted(body, page.url)
        async with self._lock:  # positions in the order pages are saved
            if key in self.saved or self.full:
                return []
            content = _content(next(self.positions), page, converted)
            self.saved.add(key)
            await self.store.save_page(self.job_id, content)
        if self.choose is None or self.full:
            return []
        return await self.choose(page, body, content)

    async def _choose_again(self, key: str, page: Page, body: bytes) -> list[Link]:
        """A page saved before a restart whose links were never followed: as when it was
        saved, but not saved twice."""
        self._unchosen.discard(key)
        if self.choose is None or self.full:
            return []
        content = _content(-1, page, await _converted(body, page.url))
        return await self.choose(page, body, content)


def _content(position: int, page: Page, converted: tuple[str, str, list[ChunkOut]]) -> PageContent:
    """A fetched page's saved content, from its (title, markdown, chunks)."""
    title, markdown, chunks = converted
    return PageContent(
        position=position,
        url=page.url,
        title=title or page.title,
        markdown=markdown,
        chunks=chunks,
        success=True,
        error=None,
        scraped_at=utcnow(),
    )


async def _converted(body: bytes, url: str) -> tuple[str, str, list[ChunkOut]]:
    if len(body) <= INLINE_BYTES:
        return convert(body, url)
    return await asyncio.to_thread(convert, body, url)
