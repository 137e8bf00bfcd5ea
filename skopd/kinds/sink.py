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
CHUNK_CHARS = 2000

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
    """Saves pages in the order they were fetched, each URL once, `max_saved` at most."""

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
        self.saved: set[str] = set()  # normalized URLs (the content is in the store only)
        self._lock = asyncio.Lock()

    @property
    def full(self) -> bool:
        return self.max_saved is not None and len(self.saved) >= self.max_saved

    def has(self, url: str) -> bool:
        return urls.normalize_url(url) in self.saved

    async def page(self, page: Page, body: bytes, depth: int) -> list[Link]:
        key = urls.normalize_url(page.url)
        if key in self.saved or self.full:
            return []
        if len(body) <= INLINE_BYTES:
            title, markdown, chunks = convert(body, page.url)
        else:
            title, markdown, chunks = await asyncio.to_thread(convert, body, page.url)
        async with self._lock:  # positions in the order pages are saved
            if key in self.saved or self.full:
                return []
            content = PageContent(
                position=next(self.positions),
                url=page.url,
                title=title or page.title,
                markdown=markdown,
                chunks=chunks,
                success=True,
                error=None,
                scraped_at=utcnow(),
            )
            self.saved.add(key)
            await self.store.save_page(self.job_id, content)
        if self.choose is None or self.full:
            return []
        return await self.choose(page, body, content)
